"""A slow eMSP costs only its own callers (issue 13, item 3).

Real gunicorn started with ``ops/gunicorn.conf.py`` (2 workers x 16 threads, as deployed),
``hub worker`` beside it, real partner servers on 127.0.0.1. One eMSP answers
authorizations only after 10 s while ``HUB_FORWARD_TIMEOUT`` is 2 s; 40 callers send it
authorizations for 10 s. Meanwhile another CPO pushes EVSE PATCHes at 10/s and a healthy
eMSP's authorizations go through: all of those must succeed. The slow eMSP's callers get
4002 (timed out) or 4003 (refused at once by the bulkhead or the open circuit).

The latencies are printed (``pytest -s``), not asserted: timing belongs in ops/bench.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid

import requests

from tests import ocpi_examples as ex
from tests.conftest import wait_until
from tests.e2e.deployed import start_deployed
from tests.integration.test_forwarding import HUB, Cpo, stamp
from tests.integration.test_tokens import emsp_answering
from tests.partner import role

DURATION = 10.0
SLOW_CALLERS = 40
EVSE = "EVSE-BLR-0001-1"
# How long the other partners' clients wait for an answer: twice the hub's forward timeout.
# An answer later than that is a failure for them (a charger gives up), not a slow success.
PATIENCE = 4.0


def headers_for(partner, cc: str, pid: str, to: tuple[str, str]) -> dict:
    token = base64.b64encode(partner.hub_token.encode()).decode()
    return {"Authorization": f"Token {token}", "OCPI-from-country-code": cc, "OCPI-from-party-id": pid,
            "OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]}


class Outcomes:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[str, list[tuple[float, int, int | None, str]]] = {}

    def add(self, kind: str, seconds: float, http_status: int, status_code: int | None, message: str) -> None:
        with self.lock:
            self.rows.setdefault(kind, []).append((seconds, http_status, status_code, message))

    def report(self) -> str:
        lines = []
        for kind, rows in sorted(self.rows.items()):
            times = sorted(r[0] for r in rows)
            codes: dict[object, int] = {}
            for r in rows:
                codes[r[2]] = codes.get(r[2], 0) + 1
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            lines.append(f"{kind:>14}: {len(rows):4d} answers, codes {codes}, median {times[len(times) // 2]:.3f} s,"
                         f" p99 {p99:.3f} s, max {times[-1]:.3f} s")
        return "\n".join(lines)


def call(session, outcomes: Outcomes, kind: str, method: str, url: str, headers: dict, body,
         timeout: float = 30) -> None:
    started = time.perf_counter()
    try:
        reply = session.request(method, url, json=body, headers={**headers, "X-Correlation-ID": str(uuid.uuid4())},
                                timeout=timeout)
        envelope = reply.json()
        outcomes.add(kind, time.perf_counter() - started, reply.status_code, envelope.get("status_code"),
                     envelope.get("status_message") or "")
    except (requests.RequestException, ValueError) as exc:
        outcomes.add(kind, time.perf_counter() - started, 0, None, f"{type(exc).__name__}: {exc}")


def paced(every: float, until: float, action) -> None:
    """Run ``action`` every ``every`` seconds (or as soon as the previous one ends) until ``until``."""
    session = requests.Session()
    while time.monotonic() < until:
        started = time.monotonic()
        action(session)
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def test_a_slow_emsp_costs_only_its_own_callers(settings, processes):
    hub = start_deployed(settings, processes, HUB_FORWARD_TIMEOUT="2")
    authorizer = hub.connect_partner([role("CPO", "IN", "ECP")])
    pusher_partner = hub.connect_partner([role("CPO", "IN", "PSH")])
    healthy = emsp_answering(hub, "EMP")
    slow = emsp_answering(hub, "SLO")
    pusher = Cpo(hub, pusher_partner, pid="PSH")
    body = {**ex.location(id="LOC1", last_updated=stamp(0)), "party_id": "PSH"}
    assert pusher.push("PUT", "locations/receiver/IN/PSH/LOC1", body).status_code == 201
    auth_url = f"{hub.url}/ocpi/2.2.1/tokens/sender/ALLOW1/authorize"
    to_healthy = headers_for(authorizer, "IN", "ECP", ("IN", "EMP"))
    to_slow = headers_for(authorizer, "IN", "ECP", ("IN", "SLO"))
    # Both eMSPs answer before the slow one turns slow (the parties are connected and routable).
    for headers in (to_healthy, to_slow):
        assert wait_until(lambda h=headers: requests.post(auth_url, headers=h, timeout=10).json()
                          .get("data", {}).get("allowed") == "ALLOWED", timeout=20)
    slow.delay = 10.0

    outcomes = Outcomes()
    patch_url = f"{hub.url}/ocpi/2.2.1/locations/receiver/IN/PSH/LOC1/{EVSE}"
    push_headers = {**headers_for(pusher_partner, "IN", "PSH", ("IN", "CIH")), **HUB}
    counter = iter(range(1, 100000))
    lock = threading.Lock()

    def push(session) -> None:
        with lock:
            n = next(counter)
        call(session, outcomes, "push", "PATCH", patch_url, push_headers,
             {"status": ("CHARGING", "AVAILABLE")[n % 2], "last_updated": stamp(n)}, PATIENCE)

    until = time.monotonic() + DURATION
    threads = [threading.Thread(target=paced, args=(1.0, until, lambda s: call(
        s, outcomes, "slow eMSP", "POST", auth_url, to_slow, None))) for _ in range(SLOW_CALLERS)]
    threads.append(threading.Thread(target=paced, args=(0.1, until, push)))
    threads += [threading.Thread(target=paced, args=(0.4, until, lambda s: call(
        s, outcomes, "healthy eMSP", "POST", auth_url, to_healthy, None, PATIENCE))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("\nslow-partner scenario (HUB_FORWARD_TIMEOUT=2, eMSP answering after 10 s):\n" + outcomes.report())

    pushes, fine, slowed = outcomes.rows["push"], outcomes.rows["healthy eMSP"], outcomes.rows["slow eMSP"]
    assert len(pushes) >= DURATION * 5 and len(fine) >= DURATION * 2  # the load really ran
    assert [r for r in pushes if r[1:3] != (200, 1000)] == []
    assert [r for r in fine if r[1:3] != (200, 1000)] == []
    assert len(healthy.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")) >= len(fine)
    # The slow eMSP's callers: timed out (4002) or refused at once (4003), and never an error.
    assert {r[1:3] for r in slowed} <= {(200, 4002), (200, 4003)}, {r[1:3] for r in slowed}
    refused_at_once = [r for r in slowed if r[2] == 4003]
    assert any("HUB_REALTIME_CONCURRENCY" in r[3] for r in refused_at_once), outcomes.report()
    assert any("circuit open" in r[3] for r in refused_at_once), outcomes.report()
    # Fewer calls reached the slow eMSP than were asked of it: the bulkhead held the rest back.
    reached = len(slow.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")) - 1
    assert reached < len(slowed) // 4, (reached, len(slowed))
