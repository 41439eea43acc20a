"""Two ``hub worker`` processes share the deliveries to several eMSPs.

The hub runs as in production: ``hub web`` under gunicorn and two ``hub worker``
processes on one database, with a short ``HUB_LEASE_SECONDS``. A CPO pushes
EVSE status PATCHes over HTTP; several eMSP test servers receive them. What the
eMSPs observe is asserted: every object's messages in order, never two
requests for one object at the same time, the final state of every Location,
a backlog collapsed into the current state after an eMSP's outage, and nothing
lost when one worker is killed with SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter

import pytest

from tests import ocpi_examples as ex
from tests.conftest import HubUnderTest, _answers, wait_until
from tests.e2e.test_resilience import in_order, replay
from tests.integration.test_forwarding import Cpo, stamp
from tests.partner import Partner, role

EVSE = "EVSE-BLR-0001-1"
LOCATIONS = 6
LEASE_SECONDS = "3"
STATUSES = ("CHARGING", "AVAILABLE", "BLOCKED", "OUTOFORDER")


class WatchingEmsp(Partner):
    """An eMSP test server that notes how many requests for one object it is answering at once."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.in_flight: Counter = Counter()
        self.most_at_once: Counter = Counter()
        self.accepted: list = []  # Location messages answered with success, in the order received
        self._watch = threading.Lock()

    def _handle(self, req, resp, path: str) -> None:
        key = "/".join(req.path.split("/receiver/")[1].split("/")[:3]) if "/receiver/" in req.path else None
        if key is None:
            return super()._handle(req, resp, path)
        with self._watch:
            self.in_flight[key] += 1
            self.most_at_once[key] = max(self.most_at_once[key], self.in_flight[key])
            failing = self.fail_with
            count = len(self.received)
        try:
            return super()._handle(req, resp, path)
        finally:
            with self._watch:
                self.in_flight[key] -= 1
                if not failing and "/locations/receiver/" in req.path:
                    record = next(r for r in self.received[count:] if r.path == req.path)
                    self.accepted.append(record)

    def delivered(self) -> list:
        """The Location messages this eMSP answered with success, in the order it answered them."""
        with self._watch:
            return list(self.accepted)


@pytest.fixture
def two_workers(settings, processes):
    """``hub web`` and two ``hub worker`` processes; returns (hub, [worker processes])."""
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    env.update({"HUB_STILL_ALIVE_AFTER": "2", "HUB_LEASE_SECONDS": LEASE_SECONDS, "HUB_LOG_LEVEL": "INFO"})
    port = settings.extra["port"]
    processes.start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env)
    workers = [processes.start(["worker"], env) for _ in range(2)]
    url = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: _answers(url + "/health"), timeout=30), "hub web did not come up\n" + processes.log_tail()
    return HubUnderTest(settings, url), workers


def connect(hub, emsps: int, **options) -> tuple[list[WatchingEmsp], Cpo, list[Partner]]:
    partners = []
    for n in range(emsps):
        r = role("EMSP", "IN", f"EM{n}")
        token_a = hub.onboard("EMSP", "IN", f"EM{n}")["token_a"]
        partner = WatchingEmsp(roles=[r], **options).start()
        hub.register(partner, token_a)
        partners.append(partner)
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    return partners, Cpo(hub, cpo_partner), [*partners, cpo_partner]


def push_locations(cpo: Cpo) -> dict:
    current = {}
    for n in range(LOCATIONS):
        location = ex.location(id=f"L{n}", last_updated=stamp(0))
        answer = cpo.push("PUT", f"locations/receiver/IN/ECP/L{n}", location)
        assert answer.status_code == 201, answer.text
        current[f"IN/ECP/L{n}"] = location
    return current


def push_statuses(cpo: Cpo | list[Cpo], current: dict, first: int, count: int) -> list[str]:
    """``count`` EVSE status PATCHes spread over the Locations; returns their correlation ids.
    Given several ``Cpo`` clients (one per web node), each PATCH goes to the next one in turn."""
    cpos = cpo if isinstance(cpo, list) else [cpo]
    ids = []
    for n in range(first, first + count):
        key = f"IN/ECP/L{n % LOCATIONS}"
        patch = {"status": STATUSES[n % len(STATUSES)], "last_updated": stamp(n)}
        correlation = f"push-{n}"
        answer = cpos[n % len(cpos)].push("PATCH", f"locations/receiver/{key}/{EVSE}", patch,
                                          correlation_id=correlation)
        assert answer.status_code == 200 and answer.json()["status_code"] == 1000, answer.text
        for evse in current[key]["evses"]:
            if evse["uid"] == EVSE:
                evse.update(patch)
        current[key]["last_updated"] = patch["last_updated"]
        ids.append(correlation)
    return ids


def holds(emsp: WatchingEmsp, current: dict) -> bool:
    return replay(emsp.delivered()) == current


def attempts_logged(processes, worker) -> int:
    """Delivery attempts a worker process logged (one line each, ``hub.deliveries``)."""
    index = processes.children.index(worker)
    text = next(processes.logs.glob(f"{index}-*.log")).read_text(errors="replace")
    return len(re.findall(r"delivery \d+ attempt \d+", text))


def pending(settings) -> int:
    import psycopg

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        return conn.execute("SELECT count(*) FROM hub_deliveries WHERE state = 'PENDING'").fetchone()[0]


def test_two_workers_share_the_lanes_in_order_and_collapse_a_backlog(two_workers, settings, processes):
    hub, workers = two_workers
    emsps, cpo, partners = connect(hub, 4, delay=0.01)
    try:
        current = push_locations(cpo)
        ids = push_statuses(cpo, current, 1, 160)
        assert wait_until(lambda: all(holds(e, current) for e in emsps), timeout=90), processes.log_tail()
        for emsp in emsps:
            got = emsp.delivered()
            assert in_order(got), f"{emsp.roles[0]['party_id']} received an object's messages out of order"
            assert set(ids) <= {r.header("X-Correlation-ID") for r in got}  # every message, as pushed
            assert max(emsp.most_at_once.values()) == 1, emsp.most_at_once  # never two at once per object
        sent = [attempts_logged(processes, w) for w in workers]
        assert all(sent), f"each worker process sends a share: {sent}"

        # One eMSP refuses for a while (HTTP 503): its rows wait, then collapse into the current state.
        slow = emsps[0]
        slow.fail_with = 503
        before = len(slow.delivered())
        ids = push_statuses(cpo, current, 1000, 60)
        assert wait_until(lambda: all(holds(e, current) for e in emsps[1:]), timeout=60), processes.log_tail()
        slow.fail_with = None
        assert wait_until(lambda: holds(slow, current), timeout=90), processes.log_tail()
        after = slow.delivered()[before:]
        assert len(after) < len(ids), "the backlog was sent message by message instead of collapsing"
        assert any(r.method == "PUT" for r in after), "no current state (PUT) was sent after the outage"
        assert in_order(slow.delivered()) and max(slow.most_at_once.values()) == 1
        assert wait_until(lambda: pending(settings) == 0, timeout=30)
    finally:
        for partner in partners:
            partner.stop()


def test_killing_one_of_two_workers_loses_nothing(two_workers, settings, processes):
    hub, workers = two_workers
    emsps, cpo, partners = connect(hub, 3, delay=0.03)
    try:
        current = push_locations(cpo)
        assert wait_until(lambda: all(holds(e, current) for e in emsps), timeout=60), processes.log_tail()
        ids = push_statuses(cpo, current, 1, 90)
        # Kill a worker while both are sending (it holds leased rows, maybe a call in flight).
        assert wait_until(lambda: all(attempts_logged(processes, w) > 10 for w in workers), timeout=60)
        victim, survivor = workers
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        ids += push_statuses(cpo, current, 1000, 60)
        time.sleep(0.5)
        assert wait_until(lambda: all(holds(e, current) for e in emsps), timeout=90), processes.log_tail()
        for emsp in emsps:
            got = emsp.delivered()
            assert set(ids) <= {r.header("X-Correlation-ID") for r in got}, "a message was lost"
            assert in_order(got)
            assert max(emsp.most_at_once.values()) == 1, emsp.most_at_once
        assert survivor.poll() is None
        assert wait_until(lambda: pending(settings) == 0, timeout=30)
    finally:
        for partner in partners:
            partner.stop()
