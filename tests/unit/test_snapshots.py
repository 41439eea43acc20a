"""Snapshots on the in-memory store: when they are due, what makes one unusable, and that a
load reads the snapshot plus the events after it (hub/infra/snapshots.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eventsourcing.persistence import StoredEvent

from hub.domain.objects import Location
from hub.domain.rules import RoutingRule
from hub.infra.config import Settings
from hub.infra.database import cache_env
from hub.infra.snapshots import SHAPE_KEY, Snapshotter, UnusableSnapshot, encode, restore, shape_of, state_of
from hub.services.application import Hub
from tests import ocpi_examples as ex

EVSE = "EVSE-BLR-0001-1"


def hub_every(every: int) -> Hub:
    return Hub.in_memory(replace(Settings.from_env({"HUB_SECRET_KEY": "unit"}), snapshot_every=every))


def location_with(app: Hub, events: int) -> Location:
    location = Location(country_code="IN", party_id="ECP", object_id="L1",
                        body=ex.location(party_id="ECP", id="L1", last_updated="2026-01-01T00:00:00Z"), message={})
    app.save(location)
    for n in range(1, events):
        location.patch_evse(EVSE, {"status": ("CHARGING", "AVAILABLE")[n % 2],
                                   "last_updated": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"}, {})
        app.save(location)
    return location


def test_settings_come_from_the_environment_and_refuse_nonsense():
    settings = Settings.from_env({"HUB_SNAPSHOT_EVERY": "50", "HUB_AGGREGATE_CACHE_SIZE": "10000"})
    assert (settings.snapshot_every, settings.aggregate_cache_size) == (50, 10000)
    assert (Settings.from_env({}).snapshot_every, Settings.from_env({}).aggregate_cache_size) == (20, 2000)
    for key in ("HUB_SNAPSHOT_EVERY", "HUB_AGGREGATE_CACHE_SIZE"):
        for bad in ("-1", "ten", "1.5"):
            with pytest.raises(SystemExit, match=key):
                Settings.from_env({key: bad})


def test_a_cache_size_of_zero_means_no_cache_never_an_unbounded_one():
    assert cache_env(0) == {"AGGREGATE_CACHE_MAXSIZE": ""}  # the library reads "0" as unbounded
    assert cache_env(500)["AGGREGATE_CACHE_MAXSIZE"] == "500"


def test_a_snapshot_is_due_when_a_save_crosses_a_multiple_of_the_interval():
    asked: list = []
    snapshotter = Snapshotter(10, load=lambda _id: None, mapper=None, write=lambda _s: None)
    snapshotter.request = asked.append

    class Agg:
        def __init__(self, version: int) -> None:
            self.version = version

    class Ev:
        def __init__(self, originator_id: str) -> None:
            self.originator_id = originator_id

    snapshotter.after_save({"a": Agg(9), "b": Agg(10), "c": Agg(23), "d": Agg(35)},
                           [Ev("a"), Ev("b"), *[Ev("c")] * 5, Ev("d")])
    assert asked == ["b", "c"]  # a: 8->9; b: 9->10; c: 18->23; d: 34->35


def test_loading_reads_the_snapshot_and_the_events_after_it():
    app = hub_every(10)
    try:
        written = location_with(app, 47)
        assert app.snapshotter.flush()
        snapshots = app.snapshots.recorder.select_events(written.id, desc=True, limit=1)
        assert snapshots and snapshots[0].originator_version >= 40
        read = []
        select = app.events.recorder.select_events
        app.events.recorder.select_events = lambda *a, **k: read.append(select(*a, **k)) or read[-1]
        loaded = app.repository.get(written.id)
        assert state_of(loaded) == state_of(written)
        assert sum(len(rows) for rows in read) == 47 - snapshots[0].originator_version < 10
    finally:
        app.close()


def test_a_snapshot_gives_back_exactly_the_state_and_carries_its_class_shape():
    app = hub_every(10)
    try:
        written = location_with(app, 3)
        stored = encode(app.mapper, written)
        assert state_of(restore(app.mapper, stored)) == state_of(written)
        assert shape_of(Location) != shape_of(RoutingRule)
        assert shape_of(Location).encode() in stored.state and SHAPE_KEY.encode() in stored.state
    finally:
        app.close()


@pytest.mark.parametrize("damage", ["bytes", "topic", "shape", "no shape"])
def test_an_unusable_snapshot_is_refused_by_restore_and_ignored_by_loads(damage):
    app = hub_every(10)
    try:
        written = location_with(app, 12)
        good = encode(app.mapper, written)
        state, topic = good.state, good.topic
        if damage == "bytes":
            state = b"\x00{not json"
        elif damage == "topic":
            topic = "hub.domain.gone:Nothing"
        elif damage == "shape":
            state = state.replace(shape_of(Location).encode(), b"0" * 16)
        else:
            state = state.replace(SHAPE_KEY.encode(), b"__other__")
        bad = StoredEvent(originator_id=good.originator_id, originator_version=good.originator_version + 5,
                          topic=topic, state=state)
        with pytest.raises(UnusableSnapshot):
            restore(app.mapper, bad)
        app.snapshots.recorder.insert_events([bad])  # the latest snapshot is now the bad one
        assert state_of(app.repository.get(written.id)) == state_of(written)
    finally:
        app.close()


def test_a_state_a_snapshot_cannot_carry_is_never_snapshotted():
    app = hub_every(10)
    try:
        written = location_with(app, 2)
        written.body = {**written.body, "evses": tuple(written.body["evses"])}  # JSON gives a list back
        with pytest.raises(ValueError, match="does not give its state back"):
            encode(app.mapper, written)
    finally:
        app.close()


def test_snapshot_failures_never_reach_the_caller():
    def broken_write(_stored):
        raise OSError("disk full")

    app = hub_every(5)
    try:
        app.snapshotter.write = broken_write
        written = location_with(app, 12)  # saves go on
        assert app.snapshotter.flush()
        assert app.snapshotter.failed >= 1 and app.snapshotter.written == 0
        assert state_of(app.repository.get(written.id)) == state_of(written)
    finally:
        app.close()
