"""3. Fan-out: one CPO's broadcast pushes delivered to every connected eMSP.

One CPO pushes EVSE status PATCHes (``OCPI-to`` = the hub: broadcast) through
``hub web``; ``hub worker`` forwards each to ``emsps`` eMSP test servers.

- Latency: pushes at a steady rate; for each, the time from the CPO receiving
  the hub's answer to the last eMSP receiving the PATCH (p50, p99). Goal: p99
  under 250 ms.
- Throughput: a burst of pushes; deliveries per second from the first push to
  the last receipt. Baseline: the same requests (same URLs, headers, bodies)
  sent by one client with a pooled ``requests.Session``, in a process of its
  own as the worker is. Goal: hub ≥ 0.5 × baseline.

Every push addresses a different Location, so deliveries are not held back by
the per-object ordering and never collapse into a current-state PUT.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

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
from ops.bench.processes import HubProcesses
from tests import ocpi_examples as ex
from tests.partner import Partner

SIZES = {
    "smoke": {"emsps": 4, "locations": 20, "rate": 5.0, "seconds": 2.0, "burst": 20},
    "full": {"emsps": 20, "locations": 300, "rate": 2.0, "seconds": 30.0, "burst": 200},
}
EVSE_UID = "EVSE-BLR-0001-1"


class Arrivals:
    """When each eMSP server received each correlation id (``time.monotonic``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {}

    def partner(self, r: dict) -> Partner:
        partner = Partner(roles=[r])
        original = partner.answer

        def answer(record):
            if "/locations/receiver/" in record.path:
                now = time.monotonic()
                corr = record.header("X-Correlation-ID")
                with self.lock:
                    self.times.setdefault(corr, []).append(now)
            return original(record)

        partner.answer = answer
        return partner

    def complete(self, ids: list[str], expected: int) -> int:
        with self.lock:
            return sum(1 for i in ids if len(self.times.get(i, ())) >= expected)

    def wait(self, ids: list[str], expected: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.complete(ids, expected) == len(ids):
                return True
            time.sleep(0.05)
        return False

    def last(self, corr: str) -> float | None:
        with self.lock:
            times = self.times.get(corr)
            return max(times) if times else None

    def all_times(self, ids: list[str]) -> list[float]:
        with self.lock:
            return [t for i in ids for t in self.times.get(i, ())]

    def count(self, ids: list[str]) -> int:
        with self.lock:
            return sum(len(self.times.get(i, ())) for i in ids)


def run(db, size: str) -> Result:
    cfg = SIZES[size]
    n_emsps = cfg["emsps"]
    result = Result("fanout", f"one CPO's broadcast pushes delivered to {n_emsps} eMSPs vs one direct client",
                    size)
    hub = HubProcesses(db.url, "fanout")
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
        hub.wait_quiet()
        arrivals = Arrivals()
        emsps = hub.connect_partners([emsp(f"E{i:02d}") for i in range(n_emsps)], factory=arrivals.partner)
        hub.wait_quiet()
        log(f"fanout: 1 CPO, {n_emsps} eMSPs, {cfg['locations']} Locations")

        pushed = 0

        def push(corr: str) -> tuple[float, float, str, dict]:
            nonlocal pushed
            pushed += 1
            loc = f"L{pushed % cfg['locations']:04d}"
            path = f"/IN/CPF/{loc}/{EVSE_UID}"
            body = {"status": ("CHARGING", "AVAILABLE")[pushed % 2], "last_updated": stamp(1000 + pushed)}
            sent = time.monotonic()
            status, _, answer = client.request("PATCH", "/ocpi/2.2.1/locations/receiver" + path, body,
                                               push_headers("CPF", correlation_id=corr))
            assert status == 200 and json.loads(answer)["status_code"] == 1000, answer[:300]
            return sent, time.monotonic(), path, body

        # Latency at a steady rate.
        log(f"fanout: latency, {cfg['rate']:.0f} pushes/s for {cfg['seconds']:.0f} s")
        answered: dict[str, float] = {}
        interval = 1.0 / cfg["rate"]
        due = time.monotonic()
        end = due + cfg["seconds"]
        while due < end:
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            corr = "lat-" + uuid.uuid4().hex
            _, answered[corr], _, _ = push(corr)
            due += interval
        ids = list(answered)
        complete = arrivals.wait(ids, n_emsps, timeout=120)
        e2e = [(arrivals.last(i) - answered[i]) * 1000 for i in ids if arrivals.complete([i], n_emsps)]

        # Throughput: a burst.
        hub.wait_quiet()
        log(f"fanout: throughput, a burst of {cfg['burst']} pushes ({cfg['burst'] * n_emsps} deliveries)")
        meter = hub.cpu_meter().start()
        burst: list[tuple[str, str, dict]] = []
        first_sent = None
        for _ in range(cfg["burst"]):
            corr = "burst-" + uuid.uuid4().hex
            sent, _, path, body = push(corr)
            first_sent = first_sent or sent
            burst.append((corr, path, body))
        burst_ids = [b[0] for b in burst]
        burst_complete = arrivals.wait(burst_ids, n_emsps, timeout=600)
        last = max(arrivals.last(i) or 0 for i in burst_ids)
        delivered = arrivals.count(burst_ids)
        cpu = meter.stop()
        hub_rate = delivered / (last - first_sent)

        # Baseline: the same requests from one client with a pooled session, in its own process.
        pushes = []
        for corr, path, body in burst:
            data = json.dumps(body, separators=(",", ":"))
            pushes.append([
                ["PATCH", f"{p.base}/ocpi/2.2.1/locations/receiver{path}",
                 {"Authorization": token_header(p.token_for_hub), "Content-Type": "application/json",
                  "X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": "direct-" + corr,
                  "OCPI-from-country-code": "IN", "OCPI-from-party-id": "CIH",
                  "OCPI-to-country-code": "IN", "OCPI-to-party-id": p.roles[0]["party_id"]}, data]
                for p in emsps])
        log(f"fanout: baseline, one client sending the same {len(pushes) * n_emsps} requests")
        done = subprocess.run([sys.executable, "-m", "ops.bench.direct"], input=json.dumps({"pushes": pushes}),
                              capture_output=True, text=True, cwd=ROOT, check=True)
        direct = json.loads(done.stdout)
        direct_rate = len(pushes) * n_emsps / direct["elapsed"]

        p99 = percentile(e2e, 99)
        result.add(
            Row("end-to-end latency p50 (CPO answer → last eMSP)", percentile(e2e, 50),
                percentile(direct["push_ms"], 50), "ms"),
            Row("end-to-end latency p99", p99, percentile(direct["push_ms"], 99), "ms", goal="< 250 ms",
                met=p99 is not None and p99 < 250 and complete),
            Row("deliveries/s (burst)", hub_rate, direct_rate, "/s", goal="≥ 0.50",
                met=hub_rate >= 0.5 * direct_rate and burst_complete),
        )
        result.note(f"latency: {len(ids)} pushes at {cfg['rate']:.0f}/s, each to {n_emsps} eMSPs; "
                    f"{len(e2e)} reached all of them" + ("" if complete else " (the others timed out)")
                    + "; baseline latency = one client sending the push to the eMSPs one after another")
        result.note(f"throughput: {cfg['burst']} pushes as fast as one CPO client could ({delivered} "
                    f"deliveries received of {cfg['burst'] * n_emsps}); the baseline client sent "
                    f"{len(pushes) * n_emsps} in {direct['elapsed']:.1f} s, {direct['failed']} failed")
        result.note(cpu + " (burst; 'bench client' includes the eMSP servers)")
        client.close()
        return result
    finally:
        hub.close()
