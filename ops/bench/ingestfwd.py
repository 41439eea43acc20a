"""Forwarding under maximum ingest: deliveries keep flowing while CPOs push as fast as the hub accepts.

``clients`` CPO platforms (ingest's clients: one thread each, keep-alive
``http.client``) PATCH their EVSEs through ``hub web`` as fast as it answers,
for ``seconds``; every PATCH is a broadcast, forwarded by ``hub worker`` to one
eMSP test server.

Measured over the push phase: accepted messages/s (the baseline) and
deliveries/s received by the eMSP. Goal: deliveries ≥ 0.5 × accepted. The
backlog when the pushes stop (pending deliveries, events the forwarding
dispatcher has not read yet) and the time it takes to drain are printed.
"""

from __future__ import annotations

import json
import threading
import time

from ops.bench.common import Http, Result, Row, cpo, emsp, log, push_headers, run_threads, stamp
from ops.bench.fanload import EVSE_UID, Quiet
from ops.bench.processes import HubProcesses
from tests import ocpi_examples as ex
from tests.partner import Partner

SIZES = {
    "smoke": {"clients": 4, "locations": 5, "seconds": 3.0},
    "full": {"clients": 4, "locations": 50, "seconds": 20.0},
}
DISPATCHER = "dispatch-objects"


class Counting(Partner):
    """An eMSP test server that notes when it answered each Location message."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.at: list[float] = []

    def answer(self, record):
        if "/locations/receiver/" in record.path:
            with self._lock:
                self.at.append(time.monotonic())
        return super().answer(record)


def backlog(conn) -> tuple[int, int]:
    """(pending deliveries, events the forwarding dispatcher has not read)."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM hub_deliveries WHERE state = 'PENDING'),"
        " (SELECT coalesce(max(notification_id), 0) FROM hub_events)"
        " - (SELECT position FROM hub_tracking WHERE name = %s)", (DISPATCHER,)).fetchone()


def run(db, size: str) -> Result:
    cfg = SIZES[size]
    clients = cfg["clients"]
    result = Result("ingestfwd", f"forwarding to one eMSP while {clients} CPO clients push at full speed", size)
    hub = HubProcesses(db.url, "ingestfwd")
    try:
        hub.migrate()
        hub.start_web()
        hub.start_worker()
        parties = [f"F{i:02d}" for i in range(clients)]
        partners = hub.connect_partners([cpo(p) for p in parties])

        def setup(i: int) -> None:
            client = Http(hub.url, partners[i].hub_token)
            for n in range(cfg["locations"]):
                body = ex.location(party_id=parties[i], id=f"L{n:04d}", last_updated=stamp(1))
                status, _, answer = client.request(
                    "PUT", f"/ocpi/2.2.1/locations/receiver/IN/{parties[i]}/L{n:04d}", body,
                    push_headers(parties[i]))
                assert status == 201, (status, answer[:300])
            client.close()

        run_threads(clients, setup)
        quiet = Quiet(hub)
        quiet.wait()
        (receiver,) = hub.connect_partners([emsp("EMF")], factory=lambda r: Counting(roles=[r]))
        quiet.wait()
        log(f"ingestfwd: {clients} CPO clients push for {cfg['seconds']:.0f} s; 1 eMSP receives")

        accepted = [0] * clients
        refused: list[str] = []
        lock = threading.Lock()

        def push(i: int) -> None:
            client = Http(hub.url, partners[i].hub_token)
            deadline = time.monotonic() + cfg["seconds"]
            n = 0
            while time.monotonic() < deadline:
                n += 1
                path = f"/ocpi/2.2.1/locations/receiver/IN/{parties[i]}/L{n % cfg['locations']:04d}/{EVSE_UID}"
                body = {"status": ("CHARGING", "AVAILABLE")[n % 2], "last_updated": stamp(1000 + n)}
                status, _, payload = client.request("PATCH", path, body, push_headers(parties[i]))
                answer = json.loads(payload)
                if status == 200 and answer.get("status_code") == 1000:
                    accepted[i] += 1
                else:
                    with lock:
                        refused.append(f"{status} {answer.get('status_code')}")
            client.close()

        before = len(receiver.at)
        meter = hub.cpu_meter().start()
        started = time.monotonic()
        run_threads(clients, push)
        stopped = time.monotonic()
        cpu = meter.stop()
        elapsed = stopped - started
        delivered = sum(1 for t in receiver.at[before:] if started <= t <= stopped)
        pending, unread = backlog(quiet.conn)
        quiet.wait(timeout=600)
        drained = time.monotonic() - stopped
        quiet.close()
        total = sum(accepted)
        in_rate, out_rate = total / elapsed, delivered / elapsed
        result.add(
            Row("deliveries/s to the eMSP while pushing", out_rate, in_rate, "/s", goal="≥ 0.50",
                met=out_rate >= 0.5 * in_rate),
            Row("backlog when the pushes stopped (pending deliveries)", pending, unit=""),
            Row("backlog when the pushes stopped (events not yet dispatched)", unread, unit=""),
            Row("time to drain the backlog after the pushes stopped", drained, unit="s"),
        )
        result.note(f"{total} PATCHes accepted in {elapsed:.1f} s by {clients} clients "
                    f"({len(refused)} refused); baseline = accepted msg/s; {delivered} delivered meanwhile; "
                    f"delivered in all {len(receiver.at) - before}")
        result.note(cpu)
        return result
    finally:
        hub.close()
