"""Scale: EVSE PATCHes spread over a national-size network, every cache cold.

The dataset: ``cpos`` CPOs × ``locations`` Locations, each Location a PUT then
``history - 1`` EVSE status PATCHes, written through the hub's application by
``loaders`` processes (``ops/bench/scale_dataset.py``: the push service itself,
or the Location aggregate saved by ``Hub.save``); ``emsps`` eMSPs registered,
so every PATCH of the measured phases is forwarded. The projections then catch
up in a ``hub worker``, and the generated pushes count as forwarded (as in
``dataset.py``).

Measured, each phase after ``hub web`` and ``hub worker`` were restarted
(every cache cold): the first EVSE PATCH on long-history Locations vs fresh
ones; then ``clients`` closed-loop CPO clients PATCHing EVSEs of Locations
drawn at random from ALL Locations for ``seconds``. Baseline (same run, same
clients, same duration, processes restarted cold again): 10 Locations with
short histories. Goal: accepted msg/s ≥ 0.9 × baseline.

Environment: ``HUB_BENCH_SCALE_HISTORY``, ``HUB_BENCH_SCALE_LOCATIONS`` (per
CPO) and ``HUB_BENCH_SCALE_WRITER`` (``pushes`` or ``domain``) override the
size; ``HUB_BENCH_SCALE_KEEP=1`` keeps the schema (its name is printed); ``HUB_BENCH_SCALE_SCHEMA=<name>`` reuses a kept dataset (no
generation); ``HUB_BENCH_SCALE_PYSPY=<file>`` records a py-spy profile
(collapsed stacks) of one web worker during the all-Locations phase.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid

import psycopg

from hub.infra.config import Settings
from ops.bench.common import (
    ROOT,
    Http,
    Result,
    Row,
    cpo,
    emsp,
    gather_loaders,
    log,
    percentile,
    push_headers,
    run_threads,
    stamp,
    token_header,
)
from ops.bench.meters import cpu_seconds, pyspy
from ops.bench.processes import HubProcesses
from ops.bench.scale_dataset import EVSES, STATUSES, cpo_party, load, location_id, writer_text
from tests.partner import Partner

SIZES = {
    "smoke": {"cpos": 2, "locations": 150, "history": 10, "emsps": 2, "loaders": 2, "writer": "pushes",
              "clients": 4, "seconds": 3.0, "probes": 3, "probe_history": 50},
    "full": {"cpos": 5, "locations": 4_000, "history": 300, "emsps": 3, "loaders": 2, "writer": "domain",
             "clients": 8, "seconds": 30.0, "probes": 5, "probe_history": 2_000},
}
BASELINE_CPO, BASELINE_LOCATIONS, SHORT_HISTORY = "SBL", 10, 4
META = "bench_scale_meta"


class Network:
    """The schema with the national network, its partners, and the hub's processes on it."""

    def __init__(self, db, cfg: dict) -> None:
        self.cfg = cfg
        self.hub = HubProcesses(db.url, "scale")
        self.tokens: dict[str, str] = {}
        self.generated_events = 0
        self.generation_seconds = 0.0
        self.reused = False

    def connect(self, attempts: int = 60) -> psycopg.Connection:
        """A connection to the schema, waiting while the machine's PostgreSQL has none free."""
        for attempt in range(attempts):
            try:
                return self.hub.connect_db()
            except psycopg.OperationalError as exc:
                if attempt == attempts - 1:
                    raise
                log(f"scale: no PostgreSQL connection ({str(exc).strip()[-60:]}); trying again in 5 s")
                time.sleep(5)
        raise AssertionError("unreachable")

    # Generation ------------------------------------------------------------------------
    def generate(self) -> None:
        hub, cfg = self.hub, self.cfg
        hub.migrate()
        hub.start_web()
        cpos = [cpo_party(i) for i in range(cfg["cpos"])] + [BASELINE_CPO]
        for party, partner in zip(cpos, hub.connect_partners([cpo(p) for p in cpos]), strict=True):
            self.tokens[party] = partner.hub_token
        hub.connect_partners([emsp(f"M{i:02d}") for i in range(cfg["emsps"])])
        hub.stop("web")
        total = cfg["cpos"] * cfg["locations"] * cfg["history"]
        loaders = cfg["loaders"]
        share = -(-cfg["locations"] // loaders)
        log(f"scale: generating {cfg['cpos']} CPOs × {cfg['locations']:,} Locations × {cfg['history']} events "
            f"= {total:,} events with {loaders} loader processes ({writer_text(cfg['writer'])})")
        with self.connect() as conn:
            (head0,) = conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()
        started = time.monotonic()
        children = []
        for i in range(loaders):
            slices = [[cpo_party(c), i * share, min(share, cfg["locations"] - i * share)]
                      for c in range(cfg["cpos"]) if cfg["locations"] - i * share > 0]
            job = json.dumps({"env": hub.env, "slices": slices, "history": cfg["history"], "writer": cfg["writer"]})
            child = subprocess.Popen([sys.executable, "-m", "ops.bench.scale_dataset"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
            child.stdin.write(job)
            child.stdin.close()
            children.append(child)
        try:
            last = (started, 0)
            while any(c.poll() is None for c in children):
                time.sleep(1 if self.cfg["history"] < 50 else 15)
                with self.connect() as conn:
                    (head,) = conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()
                now, done = time.monotonic(), head - head0
                rate = (done - last[1]) / max(now - last[0], 1e-9)
                average = done / max(now - started, 1e-9)
                log(f"scale: {done:,} of {total:,} events ({100 * done / total:.0f} %), {rate:,.0f} events/s now, "
                    f"{average:,.0f} on average, ETA {(total - done) / max(average, 1e-9) / 60:.1f} min")
                last = (now, done)
        except BaseException:  # the progress reading failed or was interrupted: stop the loaders
            for child in children:
                child.kill()
                child.wait()
            raise
        written = gather_loaders(children, "scale")
        self.generation_seconds = time.monotonic() - started
        self.generated_events = written
        log(f"scale: {written:,} events written in {self.generation_seconds:.0f} s "
            f"({written / self.generation_seconds:,.0f} events/s)")
        self.mark_dispatched()
        self._save_meta()

    def mark_dispatched(self) -> None:
        """The dispatchers' positions go to the head of the log, as a live worker would have left them
        after forwarding the generated pushes when they came in (the one write outside the hub's code)."""
        from scheduler.worker import dispatchers

        with self.connect() as conn:
            conn.execute(
                "INSERT INTO hub_tracking (name, position) SELECT name, (SELECT max(notification_id)"
                " FROM hub_events) FROM unnest(%s::text[]) AS name"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()",
                ([d.name for d in dispatchers()],))

    # Keeping and reusing a dataset -------------------------------------------------------
    def _save_meta(self) -> None:
        hub = self.hub
        meta = {"cfg": {k: self.cfg[k] for k in ("cpos", "locations", "history", "emsps")},
                "tokens": self.tokens, "secret_key": hub.env["HUB_SECRET_KEY"], "port": hub.port,
                "events": self.generated_events, "seconds": self.generation_seconds,
                "partners": [{"roles": p.roles, "port": p.port, "token_for_hub": p.token_for_hub}
                             for p in hub.partners]}
        with self.connect() as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {META} (meta jsonb NOT NULL)")
            conn.execute(f"DELETE FROM {META}")
            conn.execute(f"INSERT INTO {META} (meta) VALUES (%s::jsonb)", (json.dumps(meta),))

    def reuse(self, schema: str) -> None:
        """Point at a kept schema: its settings, tokens and partner servers (on their old ports)."""
        hub = self.hub
        hub.schema = schema
        hub.env["HUB_DATABASE_SCHEMA"] = schema
        with self.connect() as conn:
            (meta,) = conn.execute(f"SELECT meta FROM {META}").fetchone()
        hub.env["HUB_SECRET_KEY"] = meta["secret_key"]
        hub.settings = Settings.from_env(hub.env)
        hub.port = meta["port"]
        hub.url = hub.env["HUB_BASE_URL"] = f"http://127.0.0.1:{hub.port}"
        self.cfg.update(meta["cfg"])
        self.tokens = meta["tokens"]
        self.generated_events, self.generation_seconds = meta["events"], meta["seconds"]
        for p in meta["partners"]:
            hub.partners.append(Partner(roles=p["roles"], port=p["port"], token_for_hub=p["token_for_hub"]).start())
        hub.migrate()
        self.reused = True
        log(f"scale: reusing schema {schema}: {meta['cfg']}, {self.generated_events:,} events generated")

    # Processes -----------------------------------------------------------------------------
    def start(self) -> None:
        self.hub.start_web()
        self.hub.start_worker()

    def restart_cold(self) -> None:
        self.hub.stop("web")
        self.hub.stop("worker")
        self.start()

    def catch_up(self, timeout: float = 3600) -> None:
        """Let the worker bring every follower to the head of the log, with progress."""
        deadline, started = time.monotonic() + timeout, time.monotonic()
        told = started
        while time.monotonic() < deadline:
            try:  # the machine's PostgreSQL may be short of connections for a moment
                lag = self.hub.follower_lag()
                behind = max(lag.values(), default=1)
                quiet = behind <= 0 and not self.hub.pending_deliveries()
            except psycopg.OperationalError as exc:
                log(f"scale: could not read the followers' positions ({exc}); trying again")
                time.sleep(5)
                continue
            if quiet:
                log(f"scale: worker at the head of the log after {time.monotonic() - started:.0f} s")
                return
            if time.monotonic() - told > 10:
                told = time.monotonic()
                log(f"scale: waiting for the worker: its slowest follower is {behind:,} events behind, "
                    f"{self.hub.pending_deliveries():,} deliveries pending")
            time.sleep(10 if behind > 10_000 else 0.5)
        log("scale: the worker did not catch up in time; measuring anyway")


# Clients -------------------------------------------------------------------------------
def now_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def patch(client: Http, token: str, party: str, loc: str, rng: random.Random) -> tuple[int, dict]:
    evse = rng.choice(EVSES)
    body = {"status": rng.choice(STATUSES), "last_updated": now_stamp()}
    headers = {**push_headers(party), "Authorization": token_header(token)}
    status, _, payload = client.request("PATCH", f"/ocpi/2.2.1/locations/receiver/IN/{party}/{loc}/{evse}",
                                        body, headers)
    return status, json.loads(payload)


def drive(url: str, tokens: dict, targets: list[tuple[str, str]], clients: int, seconds: float) -> dict:
    """Closed-loop clients PATCHing EVSEs of random ``targets`` for ``seconds``."""
    accepted, latencies, refused, stale = [0] * clients, [[] for _ in range(clients)], [], [0]
    lock = threading.Lock()

    def client_loop(i: int) -> None:
        rng = random.Random(i * 7919 + int(time.time()))
        client = Http(url)
        deadline = time.monotonic() + seconds
        while (t0 := time.monotonic()) < deadline:
            party, loc = rng.choice(targets)
            status, answer = patch(client, tokens[party], party, loc, rng)
            if status == 200 and answer.get("status_code") == 1000:
                accepted[i] += 1
                latencies[i].append((time.monotonic() - t0) * 1000)
                if answer.get("status_message"):
                    with lock:
                        stale[0] += 1
            else:
                with lock:
                    refused.append(f"{status} {answer.get('status_code')} {answer.get('status_message')}")
        client.close()

    started = time.monotonic()
    run_threads(clients, client_loop)
    elapsed = time.monotonic() - started
    lat = [x for xs in latencies for x in xs]
    return {"rate": sum(accepted) / elapsed, "count": sum(accepted), "elapsed": elapsed, "refused": refused,
            "stale": stale[0], "p50": percentile(lat, 50), "p99": percentile(lat, 99)}


def hub_cpu(hub: HubProcesses) -> float:
    """CPU seconds used so far by the live hub web (master and workers) and hub worker processes."""
    return sum(cpu_seconds(p) for p in [*hub.web_pids(), *hub.worker_pids()])


# The benchmark -------------------------------------------------------------------------
def run(db, size: str) -> Result:
    cfg = dict(SIZES[size])
    for key in ("history", "locations", "writer"):
        if os.environ.get(f"HUB_BENCH_SCALE_{key.upper()}"):
            value = os.environ[f"HUB_BENCH_SCALE_{key.upper()}"]
            cfg[key] = value if key == "writer" else int(value)
    result = Result("scale", "EVSE PATCHes over a national network, caches cold, vs 10 short Locations", size)
    net = Network(db, cfg)
    keep = os.environ.get("HUB_BENCH_SCALE_KEEP") == "1" or bool(os.environ.get("HUB_BENCH_SCALE_SCHEMA"))
    hub = net.hub
    try:
        if os.environ.get("HUB_BENCH_SCALE_SCHEMA"):
            net.reuse(os.environ["HUB_BENCH_SCALE_SCHEMA"])
        else:
            net.generate()
        cfg = net.cfg
        net.start()
        net.catch_up()
        run_id = uuid.uuid4().hex[:4].upper()

        # Locations with the long history (2,000 events), for the first-PATCH probes only,
        # written while the worker is stopped and counted as forwarded, like the dataset.
        hub.stop("worker")
        longest = [location_id(n, f"H{run_id}") for n in range(cfg["probes"])]
        load(hub.env, [[BASELINE_CPO, 0, cfg["probes"]]], cfg["probe_history"], "domain", f"H{run_id}")
        net.mark_dispatched()
        hub.start_worker()
        net.catch_up(timeout=300)

        # Short-history Locations of this run: the baseline's 10 and the fresh ones of the probes.
        short = [f"B{run_id}{n:02d}" for n in range(BASELINE_LOCATIONS + cfg["probes"])]
        client, rng = Http(hub.url, net.tokens[BASELINE_CPO]), random.Random(1)
        from tests import ocpi_examples as ex

        for loc in short:
            body = ex.location(party_id=BASELINE_CPO, id=loc, last_updated=stamp(1))
            status, _, answer = client.request("PUT", f"/ocpi/2.2.1/locations/receiver/IN/{BASELINE_CPO}/{loc}",
                                               body, push_headers(BASELINE_CPO))
            assert status in (200, 201), (status, answer[:300])
            for _ in range(SHORT_HISTORY - 1):
                patch(client, net.tokens[BASELINE_CPO], BASELINE_CPO, loc, rng)
        client.close()
        net.catch_up(timeout=300)
        everywhere = [(cpo_party(c), location_id(n)) for c in range(cfg["cpos"]) for n in range(cfg["locations"])]

        # Phase 1: caches cold; first PATCHes, then the clients over all Locations.
        log("scale: restarting hub web and hub worker (caches cold)")
        net.restart_cold()
        firsts: dict[str, list[float]] = {"long": [], "fresh": [], "longest": []}
        probe_rng = random.Random()
        for k in range(cfg["probes"]):
            for kind, (party, loc) in (("fresh", (BASELINE_CPO, short[BASELINE_LOCATIONS + k])),
                                       ("long", probe_rng.choice(everywhere)),
                                       ("longest", (BASELINE_CPO, longest[k]))):
                probe = Http(hub.url)
                t0 = time.monotonic()
                status, answer = patch(probe, net.tokens[party], party, loc, probe_rng)
                firsts[kind].append((time.monotonic() - t0) * 1000)
                probe.close()
                assert status == 200 and answer.get("status_code") == 1000, (status, answer)
        log(f"scale: {cfg['clients']} clients PATCHing over all {len(everywhere):,} Locations "
            f"for {cfg['seconds']:.0f} s")
        profiler = None
        if os.environ.get("HUB_BENCH_SCALE_PYSPY") and hub.web_worker_pids():
            profiler = pyspy(hub.web_worker_pids()[0], cfg["seconds"], os.environ["HUB_BENCH_SCALE_PYSPY"])
        meter, spent = hub.cpu_meter().start(), hub_cpu(hub)
        wide = drive(hub.url, net.tokens, everywhere, cfg["clients"], cfg["seconds"])
        cpu_wide = meter.stop()
        if profiler is not None:
            profiler.wait(timeout=120)
        net.catch_up(timeout=300)
        wide["cpu"] = (hub_cpu(hub) - spent) / max(wide["count"], 1) * 1000

        # Phase 2 (baseline): the same clients on 10 short Locations, processes restarted cold again.
        log("scale: restarting hub web and hub worker (caches cold) for the baseline")
        net.restart_cold()
        meter, spent = hub.cpu_meter().start(), hub_cpu(hub)
        narrow = drive(hub.url, net.tokens, [(BASELINE_CPO, loc) for loc in short[:BASELINE_LOCATIONS]],
                       cfg["clients"], cfg["seconds"])
        cpu_narrow = meter.stop()
        net.catch_up(timeout=300)
        narrow["cpu"] = (hub_cpu(hub) - spent) / max(narrow["count"], 1) * 1000

        long_first, fresh_first = percentile(firsts["long"], 50), percentile(firsts["fresh"], 50)
        result.add(
            Row("accepted messages/s", wide["rate"], narrow["rate"], "msg/s", goal="≥ 0.90",
                met=wide["rate"] >= 0.9 * narrow["rate"]),
            Row("answer latency p50", wide["p50"], narrow["p50"], "ms"),
            Row("answer latency p99", wide["p99"], narrow["p99"], "ms"),
            Row("CPU of hub web + hub worker per accepted PATCH", wide["cpu"], narrow["cpu"], "ms"),
            Row(f"first PATCH after restart, {cfg['history']}-event vs fresh Location (median)",
                long_first, fresh_first, "ms"),
            Row(f"first PATCH after restart, {cfg['probe_history']:,}-event vs fresh Location (median)",
                percentile(firsts["longest"], 50), fresh_first, "ms"),
        )
        if not net.reused:
            result.add(Row("dataset generation", net.generated_events / max(net.generation_seconds, 1e-9),
                           unit="events/s"))
        total_locations = len(everywhere) + BASELINE_LOCATIONS + cfg["probes"]
        result.note(f"network: {cfg['cpos']} CPOs × {cfg['locations']:,} Locations, each 1 PUT + "
                    f"{cfg['history'] - 1} EVSE status PATCHes ({net.generated_events:,} events written in "
                    f"{net.generation_seconds:.0f} s by {cfg['loaders']} processes, {writer_text(cfg['writer'])}"
                    + (", reused from a kept schema" if net.reused else "")
                    + f"); {cfg['emsps']} eMSPs receive every PATCH; {total_locations:,} Locations in all")
        result.note(f"all Locations: {wide['count']} PATCHes accepted in {wide['elapsed']:.1f} s "
                    f"({wide['stale']} answered as stale), {len(wide['refused'])} not accepted"
                    + (f" (first: {wide['refused'][0]})" if wide["refused"] else ""))
        result.note(f"baseline: {narrow['count']} accepted in {narrow['elapsed']:.1f} s "
                    f"({narrow['stale']} answered as stale), {len(narrow['refused'])} not accepted"
                    + (f" (first: {narrow['refused'][0]})" if narrow["refused"] else ""))
        result.note("first PATCHes after restart, ms: " + "; ".join(
            f"{kind} " + ", ".join(f"{x:.0f}" for x in firsts[kind]) for kind in ("fresh", "long", "longest"))
            + f" (fresh: {SHORT_HISTORY} events, long: {cfg['history']}, longest: {cfg['probe_history']:,})")
        result.note(f"all Locations: {cpu_wide}")
        result.note(f"baseline: {cpu_narrow}")
        if keep:
            result.note(f"dataset kept in schema {hub.schema}: reuse it with HUB_BENCH_SCALE_SCHEMA={hub.schema}")
        return result
    finally:
        if keep:
            hub.keep_schema = True
            log(f"scale: keeping schema {hub.schema} (HUB_BENCH_SCALE_SCHEMA={hub.schema} reuses it; "
                f"DROP SCHEMA \"{hub.schema}\" CASCADE when done)")
        hub.close()
