"""1. Ingest: EVSE status PATCHes and Session PATCHes from concurrent CPO clients.

Hub: ``clients`` CPO platforms (one thread each, keep-alive ``http.client``)
PATCH their own EVSEs and Sessions through ``hub web`` (gunicorn) as fast as
the hub answers, while ``hub worker`` follows the log as in production.
Counted: answers HTTP 200 with status 1000 (never a stale-push answer: every
PATCH carries a newer ``last_updated``).

The hub runs twice in the same run, each time with fresh ``hub web`` and
``hub worker`` processes: with group commit off (every request its own
transaction), then as deployed (on); the batching line says how many
requests shared a transaction. ``HUB_BENCH_INGEST_COMPARE=off`` skips the
first. ``HUB_BENCH_INGEST_PYSPY=<prefix>`` records py-spy profiles (collapsed
stacks) of one web worker and of ``hub worker`` during the last hub phase, into
``<prefix>.web`` and ``<prefix>.worker``. Concurrency: ``HUB_BENCH_INGEST_CLIENTS``, ``_WEB_WORKERS``, ``_THREADS``.

Baseline: the same number of threads, each with its own connection, doing one
``INSERT`` of the same JSON payload + ``COMMIT`` per message on the same
PostgreSQL. Goal: hub ≥ 0.25 × baseline; 0.5 × is the ambition.

Also in the same run, the stack's floor (``ops/bench/floor.py``): the same
clients PATCH the same bodies to a Falcon app under the same gunicorn settings
that only parses each body and does that ``INSERT+COMMIT``. It is the most a hub
on this stack could accept on this machine before doing any work of its own.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

from ops.bench.common import Http, Result, Row, cpo, emsp, log, percentile, push_headers, run_threads, stamp
from ops.bench.meters import pyspy
from ops.bench.processes import HubProcesses
from tests import ocpi_examples as ex

SIZES = {
    "smoke": {"clients": 4, "locations": 5, "sessions": 5, "seconds": 3.0, "web_workers": 2, "threads": 16},
    "full": {"clients": 8, "locations": 50, "sessions": 50, "seconds": 20.0, "web_workers": 2, "threads": 16},
}
EVSE_UID = "EVSE-BLR-0001-1"
STATUSES = ("CHARGING", "AVAILABLE", "BLOCKED", "AVAILABLE")


def evse_patch(n: int) -> dict:
    return {"status": STATUSES[n % len(STATUSES)], "last_updated": stamp(10_000 + n)}


def session_patch(n: int) -> dict:
    return {"kwh": round(0.5 * n, 2), "status": "ACTIVE", "last_updated": stamp(10_000 + n)}


def messages(client: int, locations: int, sessions: int, first: int = 0):
    """The endless sequence of (path, body) one CPO client PATCHes: EVSEs and Sessions alternately
    (each later phase starts at a higher ``first``, so its ``last_updated`` are newer)."""
    party = f"C{client:02d}"
    n = first
    while True:
        n += 1
        if n % 2:
            loc = (n // 2) % locations
            yield f"/ocpi/2.2.1/locations/receiver/IN/{party}/L{loc:04d}/{EVSE_UID}", evse_patch(n)
        else:
            ses = (n // 2) % sessions
            yield f"/ocpi/2.2.1/sessions/receiver/IN/{party}/S{ses:04d}", session_patch(n)


def _switch_env(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value not in ("off", "false", "no", "0")


def _config(size: str) -> dict:
    """The size's figures; concurrency can be raised from the environment (HUB_BENCH_INGEST_CLIENTS,
    HUB_BENCH_INGEST_WEB_WORKERS, HUB_BENCH_INGEST_THREADS) to see how batches grow with it."""
    cfg = dict(SIZES[size])
    for key in ("clients", "web_workers", "threads"):
        value = os.environ.get(f"HUB_BENCH_INGEST_{key.upper()}")
        if value:
            cfg[key] = int(value)
    return cfg


@dataclass
class Phase:
    rate: float
    accepted: int
    elapsed: float
    first: float
    second: float
    latencies: list[float]
    refused: list[str]
    cpu: str
    batching: str
    hub_cpu_seconds: float = 0.0


def _push_phase(hub: HubProcesses, cfg: dict, parties: list[str], partners: list, first: int,
                rate: float | None = None) -> Phase:
    """Every client PATCHes as fast as the hub answers for ``cfg['seconds']``; with ``rate``, the
    clients together offer that many PATCHes a second instead (each at its share, never in a burst
    to catch up), so that two phases compare CPU per push at the same load."""
    clients = len(parties)
    accepted_at: list[list[float]] = [[] for _ in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    refused: list[str] = []
    lock = threading.Lock()
    with hub.connect_db() as conn:
        (head,) = conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()

    def push(i: int, seconds: float, first: int, measure: bool = True) -> None:
        party = parties[i]
        client = Http(hub.url, partners[i].hub_token)
        source = messages(i, cfg["locations"], cfg["sessions"], first)
        deadline = time.monotonic() + seconds
        interval = clients / rate if rate else 0.0
        due = time.monotonic() + interval * i / clients
        while True:
            if interval:
                time.sleep(max(0.0, due - time.monotonic()))
                due = max(due + interval, time.monotonic())
            now = time.monotonic()
            if now >= deadline:
                break
            path, body = next(source)
            # Locations are broadcast (OCPI-to = the hub); Sessions go by open routing.
            headers = push_headers(party, to=None) if "/sessions/" in path else push_headers(party)
            status, _, payload = client.request("PATCH", path, body, headers)
            done = time.monotonic()
            answer = json.loads(payload)
            if not measure:
                continue
            if status == 200 and answer.get("status_code") == 1000 and not answer.get("status_message"):
                accepted_at[i].append(done)
                latencies[i].append((done - now) * 1000)
            else:
                with lock:
                    refused.append(f"{status} {answer.get('status_code')} {answer.get('status_message')}")
        client.close()

    # Every phase starts on freshly started processes. A warm-up of the same traffic, not measured,
    # loads the web workers' caches and gunicorn's threads first: without it the first phase after
    # a restart batched half as many requests per transaction as later ones and cost more per push.
    warmup = min(5.0, cfg["seconds"] / 4)
    run_threads(clients, lambda i: push(i, warmup, first, measure=False))
    # Each phase is charged with its own work: the previous phase's backlog (deliveries, followers)
    # is done before the meter starts, and the meter runs on until this phase's is done too, and
    # one more round of the worker's tree (every 2 s). Without this, a phase whose worker fell
    # behind handed its work to the next phase's figure.
    hub.wait_quiet(timeout=300)
    profilers = []
    prefix = os.environ.get("HUB_BENCH_INGEST_PYSPY")
    if prefix and hub.web_worker_pids():
        profilers = [pyspy(hub.web_worker_pids()[0], cfg["seconds"], prefix + ".web"),
                     pyspy(hub.worker_pids()[0], cfg["seconds"], prefix + ".worker")]
    meter = hub.cpu_meter().start()
    started = time.monotonic()
    run_threads(clients, lambda i: push(i, cfg["seconds"], first + 500_000))
    elapsed = time.monotonic() - started
    hub.wait_quiet(timeout=300)
    time.sleep(2.5)
    cpu = meter.stop()
    for profiler in profilers:
        if profiler is not None:
            profiler.wait(timeout=120)
    times = sorted(t for ts in accepted_at for t in ts)
    half = started + elapsed / 2
    return Phase(
        rate=len(times) / elapsed, accepted=len(times), elapsed=elapsed,
        first=sum(1 for t in times if t < half) / (elapsed / 2),
        second=sum(1 for t in times if t >= half) / (elapsed / 2),
        latencies=[x for xs in latencies for x in xs], refused=refused, cpu=cpu,
        batching=_batching(hub, head), hub_cpu_seconds=getattr(meter, "hub_seconds", 0.0),
    )


def _restart(hub: HubProcesses, cfg: dict, env: dict | None = None) -> None:
    """Fresh ``hub web`` and ``hub worker`` processes with ``env`` added (each phase starts cold)."""
    hub.stop("web")
    hub.stop("worker")
    hub.start_web(workers=cfg["web_workers"], threads=cfg["threads"], extra_env=env)
    hub.start_worker(extra_env=env)


def _batching(hub: HubProcesses, after: int) -> str:
    """How many requests' records shared each transaction (rows of one transaction share xmin)."""
    with hub.connect_db() as conn:
        requests, transactions = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM hub_events"
            " WHERE notification_id > %s AND topic LIKE %s", (after, "%:Request.Answered")).fetchone()
    if not transactions:
        return "no request recorded"
    return (f"{requests} request records in {transactions} transactions "
            f"({requests / transactions:.2f} requests per transaction)")


def _floor_phase(db, hub: HubProcesses, cfg: dict, parties: list[str]) -> tuple[float, str]:
    """The same clients and bodies against the floor app (parse + INSERT+COMMIT): msg/s and CPU."""
    from ops.bench.floor import FloorServer
    from ops.bench.meters import CpuMeter

    with hub.connect_db() as conn:
        conn.execute("CREATE TABLE floor_ingest (id bigserial PRIMARY KEY, path text NOT NULL,"
                     " payload jsonb NOT NULL)")
    floor = FloorServer(cfg["web_workers"], cfg["threads"],
                        {"FLOOR_DATABASE_URL": db.url, "FLOOR_SCHEMA": hub.schema})
    counts = [0] * len(parties)

    def push(i: int) -> None:
        client = Http(floor.url)
        source = messages(i, cfg["locations"], cfg["sessions"])
        deadline = time.monotonic() + cfg["seconds"]
        while time.monotonic() < deadline:
            path, body = next(source)
            status, _, _ = client.request("PATCH", "/ingest" + path, body)
            if status == 200:
                counts[i] += 1
        client.close()

    try:
        log(f"ingest: the stack's floor, {len(parties)} clients PATCHing for {cfg['seconds']:.0f} s")
        meter = CpuMeter({"floor app": floor.pids}, db.url).start()
        started = time.monotonic()
        run_threads(len(parties), push)
        rate = sum(counts) / (time.monotonic() - started)
        return rate, meter.stop()
    finally:
        floor.close()


def run(db, size: str) -> Result:
    cfg = _config(size)
    result = Result("ingest", "EVSE status + Session PATCHes through hub web vs INSERT+COMMIT", size)
    hub = HubProcesses(db.url, "ingest")
    try:
        hub.migrate()
        hub.start_web(workers=cfg["web_workers"], threads=cfg["threads"])
        hub.start_worker()
        clients = cfg["clients"]
        parties = [f"C{i:02d}" for i in range(clients)]
        partners = hub.connect_partners([cpo(p) for p in parties])
        hub.connect_partners([emsp("EMP")])  # the eMSP of the Sessions' cdr_token
        log(f"ingest: {clients} CPOs and 1 eMSP connected; pushing the CPOs' Locations and Sessions")

        def setup(i: int) -> None:
            party, partner = parties[i], partners[i]
            client = Http(hub.url, partner.hub_token)
            for n in range(cfg["locations"]):
                body = ex.location(party_id=party, id=f"L{n:04d}", last_updated=stamp(1))
                status, _, answer = client.request(
                    "PUT", f"/ocpi/2.2.1/locations/receiver/IN/{party}/L{n:04d}", body, push_headers(party))
                assert status == 201, (status, answer[:300])
            for n in range(cfg["sessions"]):
                body = ex.session(party_id=party, id=f"S{n:04d}", last_updated=stamp(1))
                status, _, answer = client.request(
                    "PUT", f"/ocpi/2.2.1/sessions/receiver/IN/{party}/S{n:04d}", body, push_headers(party, to=None))
                assert status == 201, (status, answer[:300])
            client.close()

        run_threads(clients, setup)
        hub.wait_quiet(timeout=300)

        # Baseline: INSERT + COMMIT of the same payloads, same concurrency.
        with hub.connect_db() as conn:
            conn.execute("CREATE TABLE bench_ingest (id bigserial PRIMARY KEY, payload jsonb NOT NULL)")
        baseline_counts = [0] * clients

        def insert(i: int) -> None:
            from hub.infra.database import connect

            with connect(db.url, hub.schema) as conn:
                source = messages(i, cfg["locations"], cfg["sessions"])
                deadline = time.monotonic() + cfg["seconds"]
                while time.monotonic() < deadline:
                    _, body = next(source)
                    conn.execute("INSERT INTO bench_ingest (payload) VALUES (%s::jsonb)", (json.dumps(body),))
                    conn.commit()
                    baseline_counts[i] += 1

        log(f"ingest: baseline, {clients} connections INSERT+COMMIT for {cfg['seconds']:.0f} s")
        started = time.monotonic()
        run_threads(clients, insert)
        baseline_rate = sum(baseline_counts) / (time.monotonic() - started)
        floor_rate, floor_cpu = _floor_phase(db, hub, cfg, parties)

        # The hub: first with group commit off (each request its own transaction), for the
        # same-run comparison, then as deployed (group commit on).
        compare = _switch_env("HUB_BENCH_INGEST_COMPARE", True)
        phases = {}
        for mode in (("off", "on") if compare else ("on",)):
            if compare:
                _restart(hub, cfg, {"HUB_GROUP_COMMIT": mode})
            log(f"ingest: hub (group commit {mode}), {clients} CPO clients PATCHing for {cfg['seconds']:.0f} s")
            phases[mode] = _push_phase(hub, cfg, parties, partners, first=1_000_000 * len(phases))
        # The transparency log's share: the same with receipts and the worker's tree off (HUB_TLOG=off).
        if _switch_env("HUB_BENCH_INGEST_TLOG", True):
            _restart(hub, cfg, {"HUB_TLOG": "off"})
            log(f"ingest: hub without receipts and tree (HUB_TLOG=off) for {cfg['seconds']:.0f} s")
            phases["tlog off"] = _push_phase(hub, cfg, parties, partners, first=1_000_000 * len(phases))
            # On again right after, so that both sides of the ratio share the machine's load of the moment.
            _restart(hub, cfg)
            log(f"ingest: hub with receipts and tree again for {cfg['seconds']:.0f} s")
            phases["tlog on again"] = _push_phase(hub, cfg, parties, partners, first=1_000_000 * len(phases))
            # And off once more: on, off, on, off, so that a drift of the machine's load over the
            # run weighs on both sides alike.
            _restart(hub, cfg, {"HUB_TLOG": "off"})
            log(f"ingest: hub without receipts and tree again for {cfg['seconds']:.0f} s")
            phases["tlog off again"] = _push_phase(hub, cfg, parties, partners, first=1_000_000 * len(phases))
            # The same comparison at one offered load: as fast as the hub answers, a phase that
            # accepts fewer pushes also batches fewer per transaction and per follower round, which
            # costs CPU per push in itself. Offered: 60 % of the slowest rate so far, both phases.
            paced = 0.6 * min(p.rate for p in phases.values())
            for name, env in (("paced tlog off", {"HUB_TLOG": "off"}), ("paced tlog on", {})):
                _restart(hub, cfg, env)
                log(f"ingest: {name}, {paced:.0f} PATCHes/s offered for {cfg['seconds']:.0f} s")
                phases[name] = _push_phase(hub, cfg, parties, partners, first=1_000_000 * len(phases), rate=paced)
        on = phases["on"]
        if "tlog off" in phases:
            ons, offs = (on, phases["tlog on again"]), (phases["tlog off"], phases["tlog off again"])
            with_tlog = sum(p.hub_cpu_seconds for p in ons) / max(sum(p.accepted for p in ons), 1) * 1e3
            without = sum(p.hub_cpu_seconds for p in offs) / max(sum(p.accepted for p in offs), 1) * 1e3
            result.add(Row("hub CPU per accepted push, receipts and tree on (baseline: off; two phases each,"
                           " alternating)",
                           with_tlog, without,
                           "ms", goal="≤ 1.10", met=with_tlog <= 1.10 * without))
            bare, paced_on = phases["paced tlog off"], phases["paced tlog on"]
            with_tlog = paced_on.hub_cpu_seconds / max(paced_on.accepted, 1) * 1e3
            without = bare.hub_cpu_seconds / max(bare.accepted, 1) * 1e3
            result.add(Row(f"the same at one offered load ({paced:.0f}/s), tree on (baseline: off)",
                           with_tlog, without, "ms", goal="≤ 1.10", met=with_tlog <= 1.10 * without))
        result.add(
            Row("accepted messages/s", on.rate, baseline_rate, "msg/s", goal="≥ 0.25 (ambition 0.50)",
                met=on.rate >= 0.25 * baseline_rate),
            Row("hub answer latency p50", percentile(on.latencies, 50), unit="ms"),
            Row("hub answer latency p99", percentile(on.latencies, 99), unit="ms"),
        )
        result.add(Row("accepted messages/s, the stack's floor (parse + INSERT+COMMIT behind gunicorn)",
                       floor_rate, baseline_rate, "msg/s"),
                   Row("hub's accepted messages/s of the stack's floor", on.rate, floor_rate, "msg/s"))
        if "off" in phases:
            off = phases["off"]
            result.add(
                Row("accepted messages/s, group commit off", off.rate, baseline_rate, "msg/s"),
                Row("hub answer latency p50, group commit off", percentile(off.latencies, 50), unit="ms"),
            )
        result.note(f"{clients} concurrent clients (HUB_BENCH_INGEST_CLIENTS); hub web = gunicorn "
                    f"{cfg['web_workers']} workers × {cfg['threads']} threads (gthread), plus hub worker")
        for mode, phase in phases.items():
            label = {"tlog off": "HUB_TLOG=off, group commit on",
                     "tlog on again": "receipts and tree again, group commit on",
                     "tlog off again": "HUB_TLOG=off again, group commit on",
                     "paced tlog off": "HUB_TLOG=off at one offered load",
                     "paced tlog on": "receipts and tree at that load"}.get(mode, f"group commit {mode}")
            result.note(f"{label}: {phase.accepted} PATCHes accepted in {phase.elapsed:.1f} s "
                        f"(half EVSE status, half Session), {len(phase.refused)} not accepted"
                        + (f" (first: {phase.refused[0]})" if phase.refused else "")
                        + f"; {phase.batching}; rate in the first half {phase.first:.0f}/s, second half "
                        f"{phase.second:.0f}/s")
            result.note(f"{label}: {phase.cpu}")
        result.note(f"the stack's floor: {floor_cpu}")
        lag = hub.follower_lag()
        result.note("worker lag at the end of the run (events not yet followed): "
                    + ", ".join(f"{k} {v}" for k, v in sorted(lag.items())))
        return result
    finally:
        hub.close()

