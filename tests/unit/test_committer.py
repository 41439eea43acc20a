"""Group commit on the in-memory store: batches form, each request gets its own outcome.

The integration tier (``tests/integration/test_group_commit.py``) runs the same
committer on PostgreSQL behind real HTTP.
"""

from __future__ import annotations

import threading
import time

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from hub.services import committer as group
from hub.services.application import Hub, UnitOfWork
from hub.services.committer import Committer, Pending, committer_of, enabled, split


class Meter(Aggregate):
    """A test aggregate (module level, so its topic can be read back)."""

    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.value: object = 0

    @event("Read")
    def read(self, value: object) -> None:
        self.value = value


class Gated(Committer):
    """A committer whose first batch waits until ``hold`` more requests are waiting, so
    that the next batch deterministically holds them all; it logs every transaction."""

    def __init__(self, app: Hub, hold: int) -> None:
        super().__init__(app)
        self.hold = hold
        self.entered = threading.Event()
        self.transactions: list[list[str]] = []

    def _record(self, members):
        names = [agg.name for m in members for agg in m.events.aggregates.values()]
        self.transactions.append(names)
        if len(self.transactions) == 1:
            self.entered.set()
            deadline = time.monotonic() + 10
            while len(self._waiting) < self.hold and time.monotonic() < deadline:
                time.sleep(0.001)
        return super()._record(members)


def gated(app: Hub, hold: int) -> Gated:
    app.__dict__["_group_committer"] = committer = Gated(app, hold)
    return committer


def commit_in_thread(app: Hub, meter: Meter, outcomes: dict) -> threading.Thread:
    def run() -> None:
        uow = UnitOfWork(app)
        uow.add(meter)
        uow.after_commit.append(lambda position: outcomes.setdefault(f"{meter.name}:callback", position))
        try:
            outcomes[meter.name] = uow.commit()
        except Exception as exc:  # noqa: BLE001 (the outcome under test)
            outcomes[meter.name] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def run_batch(app: Hub, committer: Gated, first: Meter, others: list[Meter]) -> dict:
    """``first`` leads a batch of its own (held), while ``others`` queue into the next one."""
    outcomes: dict = {}
    threads = [commit_in_thread(app, first, outcomes)]
    assert committer.entered.wait(5)
    threads += [commit_in_thread(app, meter, outcomes) for meter in others]
    for thread in threads:
        thread.join(10)
    return outcomes


def stored(app: Hub, meter: Meter) -> Meter:
    return app.repository.get(meter.id)


def test_requests_waiting_during_a_write_share_the_next_transaction(app):
    committer = gated(app, hold=3)
    meters = [Meter(name) for name in ("a", "b", "c", "d")]
    outcomes = run_batch(app, committer, meters[0], meters[1:])
    assert committer.transactions[0] == ["a"]
    assert sorted(committer.transactions[1]) == ["b", "c", "d"] and len(committer.transactions) == 2
    # Each request got the log position of its own event, and its callbacks ran with it.
    positions = {name: outcomes[name] for name in "abcd"}
    assert sorted(positions.values()) == [1, 2, 3, 4]
    for name, position in positions.items():
        assert outcomes[f"{name}:callback"] == position
        notification = app.notification_log.select(position, 1)[0]
        assert notification.originator_id == next(m.id for m in meters if m.name == name)
    assert (committer.batches, committer.requests) == (2, 4)


def test_a_version_conflict_fails_only_its_own_request_after_one_retry(app):
    meters = [Meter(name) for name in ("a", "b", "c", "d")]
    app.save(*meters)
    # Another process moves c to version 2 after this one loaded it: its Read is refused.
    loaded = {m.name: stored(app, m) for m in meters}
    elsewhere = stored(app, meters[2])
    elsewhere.read("from elsewhere")
    app.save(elsewhere)
    for name, meter in loaded.items():
        meter.read(f"{name} read")
    committer = gated(app, hold=3)
    outcomes = run_batch(app, committer, loaded["a"], [loaded["b"], loaded["c"], loaded["d"]])

    assert isinstance(outcomes["c"], IntegrityError)
    assert "c:callback" not in outcomes
    assert all(isinstance(outcomes[name], int) for name in "abd")
    batch = committer.transactions[1]
    # The batch failed as a whole, then each member was written alone, in the batch's order.
    assert sorted(batch) == ["b", "c", "d"] and committer.transactions[2:] == [[name] for name in batch]
    assert {name: stored(app, m).value for name, m in loaded.items()} == {
        "a": "a read", "b": "b read", "c": "from elsewhere", "d": "d read"}


def test_an_event_that_cannot_be_stored_fails_only_its_own_request(app):
    meters = [Meter(name) for name in ("a", "b", "c", "d")]
    app.save(*meters)
    loaded = {m.name: stored(app, m) for m in meters}
    for name, meter in loaded.items():
        meter.read(object() if name == "b" else f"{name} read")  # the transcoder refuses object()
    committer = gated(app, hold=3)
    outcomes = run_batch(app, committer, loaded["a"], [loaded["b"], loaded["c"], loaded["d"]])

    assert isinstance(outcomes["b"], TypeError)
    assert all(isinstance(outcomes[name], int) for name in "acd")
    assert [stored(app, m).value for m in meters] == ["a read", 0, "c read", "d read"]


def test_a_request_alone_is_written_at_once_and_keeps_its_error():
    app = Hub.in_memory()
    meter = Meter("a")
    app.save(meter)
    first, second = stored(app, meter), stored(app, meter)
    first.read(1)
    second.read(2)
    uow = UnitOfWork(app)
    uow.add(first)
    assert uow.commit() == 2
    uow = UnitOfWork(app)
    uow.add(second)
    with pytest.raises(IntegrityError):
        uow.commit()
    committer = committer_of(app)
    assert committer is not None and (committer.batches, committer.requests) == (2, 2)


def test_object_locks_are_held_until_the_request_has_its_own_outcome(app):
    """A second request for the same object cannot load it before the first is committed."""
    committer = gated(app, hold=1)
    meter = Meter("a")
    app.save(meter)
    seen: list = []

    def first() -> None:
        uow = UnitOfWork(app)
        uow.hold(meter.id)
        loaded = stored(app, meter)
        loaded.read("first")
        uow.add(loaded)
        uow.commit()

    def second() -> None:
        uow = UnitOfWork(app)
        uow.hold(meter.id)  # waits for first's commit
        loaded = stored(app, meter)
        seen.append(loaded.value)
        loaded.read("second")
        uow.add(loaded)
        uow.commit()

    one = threading.Thread(target=first)
    one.start()
    assert committer.entered.wait(5)
    other = Meter("other")  # fills the gate's hold while second waits for the lock
    outcomes: dict = {}
    two = threading.Thread(target=second)
    two.start()
    commit_in_thread(app, other, outcomes).join(10)
    one.join(10)
    two.join(10)
    assert seen == ["first"] and stored(app, meter).value == "second"


def test_nothing_to_save_opens_no_transaction(app):
    assert UnitOfWork(app).commit() is None
    committer = committer_of(app)
    assert committer is None or committer.batches == 0


def test_recordings_are_split_by_member_in_order():
    members = [Pending(group.ProcessingEvent()) for _ in range(3)]
    for member, count in zip(members, (2, 0, 1), strict=True):
        member.events.events.extend([object()] * count)
    assert split(["r1", "r2", "r3"], members) == [["r1", "r2"], [], ["r3"]]
    assert split([], members) == [[], [], []]
    with pytest.raises(AssertionError):
        split(["r1", "r2"], members)


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("on", True), ("off", False), ("0", False)])
def test_group_commit_is_on_unless_switched_off(value, expected):
    assert enabled({} if value is None else {"HUB_GROUP_COMMIT": value}) is expected


def test_switched_off_every_unit_of_work_saves_alone(monkeypatch):
    monkeypatch.setenv("HUB_GROUP_COMMIT", "off")
    app = Hub.in_memory()
    uow = UnitOfWork(app)
    uow.add(Meter("a"))
    assert uow.commit() == 1
    assert committer_of(app) is None
