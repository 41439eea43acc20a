"""Group commit on PostgreSQL, through real HTTP: what partners and auditors observe.

Concurrent requests of one process share transactions (``hub/services/committer.py``).
To make a shared transaction certain rather than likely, the hub's committer is
replaced by one whose first batch waits until a given number of requests queue
behind it: the next batch then holds them all. Everything else is the real hub.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
from eventsourcing.domain import Aggregate, event

from hub.domain.objects import Location
from hub.infra.chain import verify
from hub.infra.eventlog import EventLog
from hub.services.application import Hub, UnitOfWork
from hub.services.committer import Committer, committer_of
from projections import all_projections
from tests import ocpi_examples as ex
from tests.conftest import wait_until
from tests.integration.test_forwarding import HUB, received, stamp
from tests.partner import role


class Unstorable(Aggregate):
    """A request whose event the event store cannot take (its value cannot be encoded)."""

    @event("Noted")
    def __init__(self, value: object) -> None:
        self.value = value


class Gated(Committer):
    """The real committer, whose first batch waits until ``hold`` requests queue behind it
    (then runs ``meanwhile``); it logs the requests (by X-Request-ID) of every transaction."""

    def __init__(self, app: Hub, hold: int, meanwhile=None) -> None:
        super().__init__(app)
        self.hold, self.meanwhile = hold, meanwhile
        self.entered = threading.Event()
        self.transactions: list[list[str]] = []

    def _record(self, members):
        self.transactions.append([_label(member) for member in members])
        if len(self.transactions) == 1:
            self.entered.set()
            deadline = time.monotonic() + 20
            while len(self._waiting) < self.hold and time.monotonic() < deadline:
                time.sleep(0.002)
            if self.meanwhile is not None:
                self.meanwhile()
        return super()._record(members)


def _label(member) -> str:
    for aggregate in member.events.aggregates.values():
        if hasattr(aggregate, "request_id"):
            return aggregate.request_id
    return type(next(iter(member.events.aggregates.values()))).__name__


def gate(hub, hold: int, meanwhile=None) -> Gated:
    app = hub.ctx.app
    assert committer_of(app) is not None, "group commit is on by default"
    app.__dict__["_group_committer"] = committer = Gated(app, hold, meanwhile)
    return committer


class Client:
    """A CPO back office on its own HTTP connection."""

    def __init__(self, hub, partner, cc: str = "IN", pid: str = "ECP") -> None:
        self.hub, self.partner, self.cc, self.pid = hub, partner, cc, pid

    def push(self, method: str, path: str, body=None, *, request_id: str | None = None, to=HUB):
        headers = {"OCPI-from-country-code": self.cc, "OCPI-from-party-id": self.pid,
                   "X-Request-ID": request_id or str(uuid.uuid4()), **(to or {})}
        return self.hub.call(method, f"/ocpi/2.2.1/{path}", self.partner.hub_token, json=body, headers=headers)


def in_threads(*calls) -> list[threading.Thread]:
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    return threads


def join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()


def db(settings) -> psycopg.Connection:
    conn = psycopg.connect(settings.database_url, autocommit=True)
    conn.execute(f'SET search_path TO "{settings.database_schema}"')
    return conn


def transactions(settings) -> list[tuple[int, int, int, int]]:
    """Each transaction of the log: (first and last notification id, events, Request records)."""
    with db(settings) as conn:
        return conn.execute(
            "SELECT min(notification_id), max(notification_id), count(*),"
            " count(*) FILTER (WHERE topic LIKE '%Request.Answered')"
            " FROM hub_events GROUP BY xmin::text::bigint ORDER BY 1").fetchall()


def assert_log_is_gap_free_and_chained(settings) -> None:
    """Each transaction's events are contiguous and no two interleave; the hash chain holds."""
    spans = transactions(settings)
    for (_, last, *_), (first, *_) in zip(spans, spans[1:], strict=False):
        assert first > last
    for first, last, count, _ in spans:
        assert last - first + 1 == count
    with db(settings) as conn:
        verdict = verify(conn)
    assert verdict.ok, verdict.problem


def request_records(settings) -> dict[str, int]:
    """How many times each request id was recorded."""
    with db(settings) as conn:
        rows = conn.execute("SELECT convert_from(state, 'UTF8')::json->>'request_id', count(*) FROM hub_events"
                            " WHERE topic LIKE '%Request.Answered' GROUP BY 1").fetchall()
    return dict(rows)


def session(session_id: str, kwh: float = 0.0) -> dict:
    return ex.session(id=session_id, kwh=kwh, last_updated=stamp(1))


def test_concurrent_pushes_to_one_object_are_applied_in_their_answer_order(hub, worker, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])  # the eMSP of the sessions' cdr_token
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Client(hub, cpo_partner)
    try:
        for sid in ("S-ONE", "S-A", "S-B", "S-C", "S-D"):
            assert cpo.push("PUT", f"sessions/receiver/IN/ECP/{sid}", session(sid), to=None).status_code == 201
        committer = gate(hub, hold=3)
        answered: list[tuple[float, float]] = []  # (answer time, kwh) of the pushes to S-ONE
        refused: list = []
        lock = threading.Lock()

        def pusher(sid: str, base: int, rounds: int = 10):
            def run() -> None:
                client = Client(hub.__class__(hub.settings, hub.url), cpo_partner)
                for n in range(rounds):
                    kwh = float(base + n)
                    # One last_updated for all: none is stale, every push is applied on the previous one.
                    reply = client.push("PATCH", f"sessions/receiver/IN/ECP/{sid}",
                                        {"kwh": kwh, "last_updated": stamp(2)}, to=None)
                    done = time.monotonic()
                    body = reply.json()
                    with lock:
                        if (reply.status_code, body["status_code"]) != (200, 1000):
                            refused.append(body)
                        elif sid == "S-ONE":
                            answered.append((done, kwh))
            return run

        join(in_threads(*(pusher("S-ONE", 1000 * k) for k in range(1, 5)),
                        *(pusher(sid, 100) for sid in ("S-A", "S-B", "S-C", "S-D"))))

        assert refused == [] and len(answered) == 40
        assert max(len(t) for t in committer.transactions) >= 3  # requests shared transactions
        assert committer.failed == 0  # pushes to one object took turns: none lost a race in this process
        last_answered = max(answered)[1]
        stored = cpo.push("GET", "sessions/receiver/IN/ECP/S-ONE", to=None).json()["data"]
        assert stored["kwh"] == last_answered
        # Forwarded: the eMSP's last copy of the session is the last answered push.
        def last_forwarded():
            got = [r for r in received(emsp, "sessions") if r.path.endswith("/S-ONE")]
            return got and got[-1].body.get("kwh") == last_answered
        assert wait_until(last_forwarded, timeout=30)
        assert_log_is_gap_free_and_chained(settings)
    finally:
        emsp.stop()
        cpo_partner.stop()


def test_concurrent_pushes_to_different_objects_are_all_committed(hub, settings):
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Client(hub, cpo_partner)
    try:
        committer = gate(hub, hold=5)
        answers: dict[str, tuple[int, int]] = {}

        def put(n: int):
            def run() -> None:
                client = Client(hub.__class__(hub.settings, hub.url), cpo_partner)
                for round_ in range(4):
                    lid = f"LOC-{n}-{round_}"
                    reply = client.push("PUT", f"locations/receiver/IN/ECP/{lid}",
                                        ex.location(id=lid, last_updated=stamp(1)), request_id=lid)
                    answers[lid] = (reply.status_code, reply.json()["status_code"])
            return run

        join(in_threads(*(put(n) for n in range(6))))
    finally:
        cpo_partner.stop()

    ids = {f"LOC-{n}-{r}" for n in range(6) for r in range(4)}
    assert answers == {lid: (201, 1000) for lid in ids}
    assert max(len(t) for t in committer.transactions) >= 5
    # One transaction of the log holds several requests' events and records.
    assert max(records for *_, records in transactions(settings)) >= 5
    assert_log_is_gap_free_and_chained(settings)
    assert all(request_records(settings).get(lid) == 1 for lid in ids)
    event_log = EventLog(hub.ctx.app)
    for projection in all_projections():
        event_log.catch_up(projection)
    with db(settings) as conn:
        in_view = {row[0] for row in conn.execute(
            "SELECT object_id FROM view_objects WHERE module = 'locations'").fetchall()}
    assert in_view == ids
    listed = cpo.push("GET", "locations/receiver/IN/ECP/LOC-5-3").json()
    assert listed["data"]["id"] == "LOC-5-3"


def test_a_failed_request_in_a_batch_does_not_fail_the_others(hub, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Client(hub, cpo_partner)
    try:
        for lid in ("LOC-LEAD", "LOC-RACE"):
            assert cpo.push("PUT", f"locations/receiver/IN/ECP/{lid}",
                            ex.location(id=lid, last_updated=stamp(1))).status_code == 201
        for sid in ("S-B", "S-D"):
            assert cpo.push("PUT", f"sessions/receiver/IN/ECP/{sid}", session(sid), to=None).status_code == 201

        def another_process_changes_loc_race() -> None:
            # Another web worker (its own application) stores version N+1 of LOC-RACE after
            # request C loaded version N: C's batch fails on C's version.
            other = Hub(settings, settings.database_url, pool_size=1)
            try:
                location = other.repository.get(Location.key_of("IN", "ECP", "LOC-RACE"))
                location.patch_evse("EVSE-BLR-0001-2", {"status": "BLOCKED", "last_updated": stamp(3)},
                                    {"request_id": "elsewhere"})
                other.save(location)
            finally:
                other.close()

        committer = gate(hub, hold=4, meanwhile=another_process_changes_loc_race)
        answers: dict[str, tuple[int, int]] = {}
        unstorable: list[BaseException] = []

        def push(request_id: str, method: str, path: str, body: dict, to=HUB):
            def run() -> None:
                client = Client(hub.__class__(hub.settings, hub.url), cpo_partner)
                reply = client.push(method, path, body, request_id=request_id, to=to)
                answers[request_id] = (reply.status_code, reply.json()["status_code"])
            return run

        def service_with_an_unstorable_event() -> None:
            uow = UnitOfWork(hub.ctx.app)
            uow.add(Unstorable(object()))
            try:
                uow.commit()
            except Exception as exc:  # noqa: BLE001 (the outcome under test)
                unstorable.append(exc)

        lead = in_threads(push("A", "PATCH", "locations/receiver/IN/ECP/LOC-LEAD/EVSE-BLR-0001-1",
                               {"status": "CHARGING", "last_updated": stamp(2)}))
        assert committer.entered.wait(10)
        others = in_threads(
            push("B", "PATCH", "sessions/receiver/IN/ECP/S-B", {"kwh": 2.0, "last_updated": stamp(2)}, to=None),
            push("C", "PATCH", "locations/receiver/IN/ECP/LOC-RACE/EVSE-BLR-0001-1",
                 {"status": "CHARGING", "last_updated": stamp(2)}),
            push("D", "PATCH", "sessions/receiver/IN/ECP/S-D", {"kwh": 4.0, "last_updated": stamp(2)}, to=None),
            service_with_an_unstorable_event,
        )
        join(lead + others)

        # Every HTTP request got its usual answer; C lost the race once and was applied again.
        assert answers == {name: (200, 1000) for name in "ABCD"}
        assert len(unstorable) == 1 and isinstance(unstorable[0], TypeError)
        batch = committer.transactions[1]
        assert sorted(batch) == ["B", "C", "D", "Unstorable"]
        # The batch failed as a whole; each member was written once more alone, then C's
        # responder ran again on the new version (one more transaction).
        assert committer.transactions[2:6] == [[member] for member in batch]
        assert committer.transactions[6:] == [["C"]] and committer.failed == 1
        assert {k: v for k, v in request_records(settings).items() if k in "ABCD"} == {n: 1 for n in "ABCD"}
        race = cpo.push("GET", "locations/receiver/IN/ECP/LOC-RACE").json()["data"]
        assert {e["uid"]: e["status"] for e in race["evses"]} == {
            "EVSE-BLR-0001-1": "CHARGING", "EVSE-BLR-0001-2": "BLOCKED"}
        for sid, kwh in (("S-B", 2.0), ("S-D", 4.0)):
            assert cpo.push("GET", f"sessions/receiver/IN/ECP/{sid}", to=None).json()["data"]["kwh"] == kwh
        with db(settings) as conn:
            assert conn.execute("SELECT count(*) FROM hub_events WHERE topic LIKE '%Unstorable%'").fetchone() == (0,)
        assert_log_is_gap_free_and_chained(settings)
    finally:
        emsp.stop()
        cpo_partner.stop()
