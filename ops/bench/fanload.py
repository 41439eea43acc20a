"""Fan-out at load: a CPO's broadcast EVSE updates at a steady rate, to many eMSPs, by 1 and 2 workers.

One CPO pushes EVSE status PATCHes (``OCPI-to`` = the hub: broadcast) through
``hub web`` at ``rate`` per second for ``seconds``; ``hub worker`` forwards each
to ``emsps`` eMSPs (50/s to 20 eMSPs: 1,000 deliveries/s offered). The eMSPs are
keep-alive HTTP/1.1 servers in a process of their own (``ops/bench/emsp_servers.py``),
as production eMSPs are other machines, not threads of the CPO's process.
The same run is made with one ``hub worker`` process, then with two.

- Latency: for each push, the time from the CPO receiving the hub's answer to
  the last eMSP receiving the PATCH (p50, p99). Goal: p99 under 1 s.
- Throughput: the workers are stopped, a backlog of ``burst`` pushes (each to
  every eMSP, each a different Location) is accepted, the workers are started
  again; deliveries/s from the first to the last receipt. Baseline: the same
  requests (URLs, headers, bodies) sent by one process with one thread and one
  pooled ``requests.Session`` per eMSP, all at once (the hub's concurrency: one
  lane per recipient platform). Goal: hub ≥ 0.8 × baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from ops.bench.common import (
    ROOT,
    Http,
    Result,
    Row,
    cpo,
    emsp,
    log,
    percentile,
    push_headers,
    stamp,
    token_header,
)
from ops.bench.emsp_servers import EmspProcess
from ops.bench.meters import CpuMeter
from ops.bench.processes import HubProcesses
from tests import ocpi_examples as ex
from tests.partner import free_port

SIZES = {
    "smoke": {"emsps": 3, "locations": 40, "rate": 10.0, "seconds": 2.0, "burst": 30},
    "full": {"emsps": 20, "locations": 400, "rate": 50.0, "seconds": 30.0, "burst": 300},
}
EVSE_UID = "EVSE-BLR-0001-1"
WORKERS = ("worker", "worker2")


class States:
    """What each eMSP received per Location: (``last_updated``, ``time.monotonic()``) in order.

    A push counts as received by an eMSP at the first message for its Location whose
    ``last_updated`` is not older: the PATCH itself, or a current-state PUT that includes it
    (the hub collapses a recipient's backlog into one PUT when it fell behind).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], list[tuple[str, float]]] = {}
        self.parties: list[str] = []  # the eMSPs' party ids

    def receive(self, party: str, loc: str, last_updated: str, at: float) -> None:
        """One receipt reported by the eMSP servers' process."""
        with self.lock:
            self.seen.setdefault((party, loc), []).append((last_updated, at))

    def reached(self, loc: str, stamp_: str) -> float | None:
        """When the last eMSP received the push (``loc``, ``stamp_``), or None if one has not yet."""
        latest = 0.0
        with self.lock:
            for party in self.parties:
                times = [t for lu, t in self.seen.get((party, loc), ()) if lu >= stamp_]
                if not times:
                    return None
                latest = max(latest, min(times))
        return latest

    def wait(self, pushes: list[tuple[str, str]], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.reached(loc, lu) is not None for loc, lu in pushes):
                return True
            time.sleep(0.1)
        return False

    def receipts(self, since: float) -> list[float]:
        with self.lock:
            return [t for entries in self.seen.values() for _, t in entries if t >= since]


class Pusher:
    """The CPO: EVSE status PATCHes, each to the next Location, each newer than the last.

    Pushes may come from several threads (a paced run keeps its rate though one answer may take
    longer than the interval); each thread has its own keep-alive connection.
    """

    def __init__(self, hub: HubProcesses, token: str, locations: int) -> None:
        self.url, self.token = hub.url, token
        self.local = threading.local()
        self.lock = threading.Lock()
        self.locations = locations
        self.pushed = 0

    def push(self) -> tuple[float, str, str]:
        """One PATCH; returns (answered at, Location id, its last_updated)."""
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = Http(self.url, self.token)
        with self.lock:
            self.pushed += 1
            n = self.pushed
        loc = f"L{n % self.locations:04d}"
        body = {"status": ("CHARGING", "AVAILABLE")[n % 2], "last_updated": stamp(1000 + n)}
        status, _, answer = client.request(
            "PATCH", f"/ocpi/2.2.1/locations/receiver/IN/CPF/{loc}/{EVSE_UID}", body,
            push_headers("CPF", correlation_id=uuid.uuid4().hex))
        assert status == 200 and json.loads(answer)["status_code"] == 1000, answer[:300]
        return time.monotonic(), loc, body["last_updated"]


def paced(pusher: Pusher, states: States, cfg: dict) -> dict:
    """Push at ``rate`` for ``seconds`` (from up to 8 threads); latency from each answer to its
    last receipt."""
    interval = 1.0 / cfg["rate"]
    due = first = time.monotonic()
    end = due + cfg["seconds"]
    futures = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        while due < end:
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            futures.append(pool.submit(pusher.push))
            due += interval
    pushing = time.monotonic() - first
    answered = [f.result() for f in futures]
    complete = states.wait([(loc, lu) for _, loc, lu in answered], timeout=300)
    reached = [(states.reached(loc, lu), at) for at, loc, lu in answered]
    e2e = [(got - at) * 1000 for got, at in reached if got is not None]
    last = max((got for got, _ in reached if got is not None), default=first)
    received = sum(1 for t in states.receipts(first) if t <= last)
    return {"e2e": e2e, "complete": complete, "pushes": len(answered), "reached": len(e2e),
            "push_rate": len(answered) / pushing, "rate": received / max(last - first, 1e-9)}


def drain(hub: HubProcesses, servers: EmspProcess, pusher: Pusher, states: States, cfg: dict,
          workers: int) -> dict:
    """Stop the workers, accept a backlog, start ``workers`` workers; deliveries/s while it drains."""
    for name in WORKERS:
        hub.stop(name)
    burst = [pusher.push() for _ in range(cfg["burst"])]
    meter = worker_meter(hub, servers).start()
    started = time.monotonic()
    for name in WORKERS[:workers]:
        hub.start(name, "worker")
    complete = states.wait([(loc, lu) for _, loc, lu in burst], timeout=600)
    times = states.receipts(started)
    cpu = meter.stop()
    rate = len(times) / max(max(times) - min(times), 1e-9) if len(times) > 1 else None
    return {"burst": burst, "rate": rate, "complete": complete, "delivered": len(times), "cpu": cpu}


class Quiet:
    """``HubProcesses.wait_quiet`` on one connection held for the whole run: on a PostgreSQL
    shared with others, a connection per poll may find no free slot."""

    def __init__(self, hub: HubProcesses) -> None:
        self.hub = hub
        for attempt in range(30):
            try:
                self.conn = hub.connect_db()
                break
            except Exception:  # too many clients: wait for a slot
                if attempt == 29:
                    raise
                time.sleep(2)

    def wait(self, timeout: float = 300) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lagging = self.conn.execute(
                "SELECT count(*) FROM hub_tracking WHERE position < (SELECT coalesce(max(notification_id), 0)"
                " FROM hub_events)").fetchone()[0]
            pending = self.conn.execute("SELECT count(*) FROM hub_deliveries WHERE state = 'PENDING'").fetchone()[0]
            if not lagging and not pending:
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        self.conn.close()


def worker_meter(hub: HubProcesses, servers: EmspProcess) -> CpuMeter:
    def workers():
        return [c.pid for name, c in hub.children.items() if name in WORKERS and c.poll() is None]
    return CpuMeter({"web": hub.web_pids, "workers": workers, "eMSP servers": lambda: [servers.child.pid]},
                    hub.database_url)


def baseline(burst: list, emsps: list) -> dict:
    """The burst's requests, one lane per eMSP, sent by ``ops.bench.direct_lanes``."""
    lanes = []
    for p in emsps:
        lane = []
        for n, (_, loc, lu) in enumerate(burst):
            body = {"status": ("CHARGING", "AVAILABLE")[n % 2], "last_updated": lu}
            lane.append(["PATCH", f"{p.base}/ocpi/2.2.1/locations/receiver/IN/CPF/{loc}/{EVSE_UID}",
                         {"Authorization": token_header(p.token_for_hub), "Content-Type": "application/json",
                          "X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": uuid.uuid4().hex,
                          "OCPI-from-country-code": "IN", "OCPI-from-party-id": "CIH",
                          "OCPI-to-country-code": "IN", "OCPI-to-party-id": p.roles[0]["party_id"]},
                         json.dumps(body, separators=(",", ":"))])
        lanes.append(lane)
    done = subprocess.run([sys.executable, "-m", "ops.bench.direct_lanes"], input=json.dumps({"lanes": lanes}),
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def run(db, size: str) -> Result:
    cfg = SIZES[size]
    n_emsps = cfg["emsps"]
    offered = cfg["rate"] * n_emsps
    result = Result("fanload", f"{cfg['rate']:.0f} broadcast updates/s to {n_emsps} eMSPs, 1 and 2 workers,"
                    " vs one client per eMSP", size)
    hub = HubProcesses(db.url, "fanload")
    states = States()
    roles = [emsp(f"E{i:02d}") for i in range(n_emsps)]
    states.parties = [r["party_id"] for r in roles]
    servers = EmspProcess(roles, [free_port() for _ in roles], states.receive, ROOT)
    try:
        hub.migrate()
        hub.start_web()
        hub.start_worker()
        (cpo_partner,) = hub.connect_partners([cpo("CPF")])
        client = Http(hub.url, cpo_partner.hub_token)
        for n in range(cfg["locations"]):
            status, _, body = client.request(
                "PUT", f"/ocpi/2.2.1/locations/receiver/IN/CPF/L{n:04d}",
                ex.location(party_id="CPF", id=f"L{n:04d}", last_updated=stamp(1)), push_headers("CPF"))
            assert status == 201, (status, body[:300])
        client.close()
        hub.wait_quiet()
        emsps = hub.connect_partners(roles, factory=servers.partner)
        hub.wait_quiet()
        pusher = Pusher(hub, cpo_partner.hub_token, cfg["locations"])
        quiet = Quiet(hub)
        log(f"fanload: 1 CPO, {n_emsps} eMSPs, {cfg['locations']} Locations")

        figures = {}
        for workers in (1, 2):
            if workers == 2:
                hub.start("worker2", "worker")
            quiet.wait()
            log(f"fanload: {workers} worker(s): {cfg['rate']:.0f} pushes/s for {cfg['seconds']:.0f} s")
            meter = worker_meter(hub, servers).start()
            steady = paced(pusher, states, cfg)
            steady["cpu"] = meter.stop()
            log(f"fanload: {workers} worker(s): p50 {percentile(steady['e2e'], 50)} ms, p99 "
                f"{percentile(steady['e2e'], 99)} ms, {steady['rate']:.0f} deliveries/s; {steady['cpu']}")
            quiet.wait()
            log(f"fanload: {workers} worker(s): a backlog of {cfg['burst']} pushes "
                f"({cfg['burst'] * n_emsps} deliveries)")
            figures[workers] = (steady, drain(hub, servers, pusher, states, cfg, workers))
            log(f"fanload: {workers} worker(s): drained at {figures[workers][1]['rate']} deliveries/s")
            quiet.wait()
        burst = figures[1][1]["burst"]
        log(f"fanload: baseline, one client per eMSP sending the same {len(burst) * n_emsps} requests")
        direct = baseline(burst, emsps)
        direct_rate = direct["sent"] / direct["elapsed"]
        quiet.close()

        for workers, (steady, drained) in figures.items():
            p99 = percentile(steady["e2e"], 99)
            result.add(
                Row(f"{workers} worker(s): latency p50 (CPO answer → last eMSP)", percentile(steady["e2e"], 50),
                    unit="ms"),
                Row(f"{workers} worker(s): latency p99", p99, unit="ms", goal="< 1000 ms",
                    met=p99 is not None and p99 < 1000 and steady["complete"]),
                Row(f"{workers} worker(s): deliveries/s at {offered:.0f}/s offered", steady["rate"], offered, "/s"),
                Row(f"{workers} worker(s): deliveries/s (backlog drain)", drained["rate"], direct_rate, "/s",
                    goal="≥ 0.80", met=drained["rate"] is not None and drained["rate"] >= 0.8 * direct_rate
                    and drained["complete"]),
            )
            result.note(f"{workers} worker(s): {steady['pushes']} pushes at {cfg['rate']:.0f}/s "
                        f"({steady['push_rate']:.1f}/s achieved by the bench client), {steady['reached']} reached all "
                        f"{n_emsps} eMSPs; {steady['cpu']}")
            result.note(f"{workers} worker(s), drain: {drained['delivered']} messages received for "
                        f"{cfg['burst'] * n_emsps} deliveries (fewer: a backlog collapsed); {drained['cpu']}")
        result.note(f"baseline: {n_emsps} threads (one per eMSP) sent {direct['sent']} requests in "
                    f"{direct['elapsed']:.2f} s, {direct['failed']} failed")
        return result
    finally:
        hub.close()
        servers.close()
