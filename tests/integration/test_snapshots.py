"""Snapshots: a bounded cold load, a cache that can be lost or corrupted without changing what
partners see, and the operator commands that rebuild and check it (real PostgreSQL)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from hub.domain.objects import Location
from hub.infra.database import connect as db_connect
from hub.infra.snapshots import SNAPSHOTS_TABLE, encode
from hub.services.application import Hub
from hub.services.schema import SCHEMA_VERSION
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.integration.test_forwarding import received, stamp
from tests.integration.test_pulls import DC_EVSE, accepted, patch_evse, put_location, settle
from tests.integration.test_pulls import connect as connect  # noqa: F401 (fixture)

EVERY = 5


@pytest.fixture
def settings(settings):
    """Snapshots every 5 events and no aggregate cache: every load goes to the store."""
    return replace(settings, snapshot_every=EVERY, aggregate_cache_size=0,
                   extra={**settings.extra, "HUB_SNAPSHOT_EVERY": str(EVERY), "HUB_AGGREGATE_CACHE_SIZE": "0"})


def sql(settings, statement: str, params=()) -> list:
    with db_connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def write_history(settings, events: int, object_id: str = "LOC-LONG") -> Location:
    """A Location with ``events`` events (a PUT, then EVSE status PATCHes), written by the hub's
    application; its snapshots taken as they fall due."""
    app = Hub(settings, settings.database_url, pool_size=2)
    try:
        location = Location(country_code="IN", party_id="ECP", object_id=object_id,
                            body=ex.location(party_id="ECP", id=object_id, last_updated=stamp(0)), message={})
        app.save(location)
        for n in range(1, events):
            location.patch_evse(DC_EVSE, {"status": ("CHARGING", "AVAILABLE")[n % 2],
                                          "last_updated": stamp(n)}, {})
            if n % 7 == 0 or n == events - 1:  # several events per save, as batches do
                app.save(location)
        assert app.snapshotter.flush()
        return location
    finally:
        app.close()


class Counted:
    """Rows a recorder returns from ``select_events`` (wraps the real recorder's method)."""

    def __init__(self, recorder) -> None:
        self.rows = 0
        self._select = recorder.select_events
        recorder.select_events = self

    def __call__(self, *args, **kwargs):
        rows = self._select(*args, **kwargs)
        self.rows += len(rows)
        return rows


def test_a_long_history_loads_from_a_snapshot_and_a_bounded_tail(settings):
    written = write_history(settings, 1000)
    (latest,) = sql(settings, f"SELECT max(originator_version), count(*) FROM {SNAPSHOTS_TABLE}"
                    " WHERE originator_id = %s", (written.id,))
    assert latest[0] > 1000 - 2 * EVERY and latest[1] == 1  # older snapshots are pruned

    app = Hub(settings, settings.database_url, pool_size=1)  # a fresh process: nothing cached
    try:
        events, snapshots = Counted(app.events.recorder), Counted(app.snapshots.recorder)
        loaded = app.repository.get(written.id)
        assert loaded.version == 1000 and loaded.body == written.body
        assert snapshots.rows == 1
        assert events.rows == 1000 - latest[0] <= 2 * EVERY  # not the 1,000 of the log
    finally:
        app.close()

    # Without snapshots (HUB_SNAPSHOT_EVERY=0) the same load replays the whole log.
    plain = Hub(replace(settings, snapshot_every=0), settings.database_url, pool_size=1)
    try:
        events = Counted(plain.events.recorder)
        assert plain.repository.get(written.id).body == written.body
        assert events.rows == 1000
    finally:
        plain.close()


@pytest.mark.parametrize("damage", ["corrupt", "unknown topic", "other shape", "deleted"])
def test_a_lost_or_unreadable_snapshot_changes_nothing_partners_see(hub, worker, settings, connect, damage):
    em1, ecp = connect("EMSP", "EM1"), connect("CPO", "ECP")
    put_location(ecp, "LOC-S", stamp(1))
    for n in range(2, 2 + 2 * EVERY):
        patch_evse(ecp, "LOC-S", ("CHARGING", "AVAILABLE")[n % 2], stamp(n))
    assert hub.ctx.app.snapshotter.flush()
    location_id = Location.create_id("IN", "ECP", "LOC-S")
    assert sql(settings, f"SELECT count(*) FROM {SNAPSHOTS_TABLE} WHERE originator_id = %s", (location_id,)) \
        == [(1,)]
    if damage == "corrupt":
        sql(settings, f"UPDATE {SNAPSHOTS_TABLE} SET state = %s", (b"\x00not json{",))
    elif damage == "unknown topic":
        sql(settings, f"UPDATE {SNAPSHOTS_TABLE} SET topic = 'hub.domain.gone:Nothing'")
    elif damage == "other shape":  # taken by another version of the Location class
        (state,) = sql(settings, f"SELECT state FROM {SNAPSHOTS_TABLE}")[0]
        changed = re.sub(rb'("__hub_shape__": ?")', rb"\g<1>0", bytes(state))
        assert changed != bytes(state)
        sql(settings, f"UPDATE {SNAPSHOTS_TABLE} SET state = %s", (changed,))
    else:
        sql(settings, f"DELETE FROM {SNAPSHOTS_TABLE}")

    patch_evse(ecp, "LOC-S", "OUTOFORDER", stamp(50))  # loads the Location: must not be refused
    answer = ecp.push("GET", "locations/receiver/IN/ECP/LOC-S")
    assert answer.status_code == 200, answer.text
    held = answer.json()["data"]
    assert held["evses"][0]["status"] == "OUTOFORDER" and held["last_updated"] == stamp(50)
    settle(worker)
    served = em1.get("locations/sender/LOC-S")
    assert served.status_code == 200 and served.json()["data"] == held
    forwarded = wait_until(lambda: [r for r in received(em1.partner, "locations", "PATCH")
                                    if r.body.get("status") == "OUTOFORDER"])
    assert forwarded and forwarded[0].body == {"status": "OUTOFORDER", "last_updated": stamp(50)}


def test_check_names_and_replaces_a_snapshot_that_disagrees_with_the_log(settings):
    written = write_history(settings, 3 * EVERY + 2, "LOC-ALTERED")
    clean = run_hub(settings, "snapshots", "check", "--json")
    assert json.loads(clean.stdout)["disagreed"] == 0 and json.loads(clean.stdout)["checked"] >= 1

    # An altered snapshot: readable, of the right shape, but not what the log says.
    app = Hub(settings, settings.database_url, pool_size=1)
    try:
        (version,) = sql(settings, f"SELECT originator_version FROM {SNAPSHOTS_TABLE}"
                         " WHERE originator_id = %s", (written.id,))[0]
        forged = app.repository.get(written.id, version=version)
        forged.body = {**forged.body, "name": "Forged", "last_updated": "2099-01-01T00:00:00Z"}
        stored = encode(app.mapper, forged)
        sql(settings, f"UPDATE {SNAPSHOTS_TABLE} SET state = %s WHERE originator_id = %s",
            (stored.state, written.id))
        assert app.repository.get(written.id).body["name"] == "Forged"  # what the check is for
    finally:
        app.close()

    found = run_hub(settings, "snapshots", "check", ok=False)
    assert found.returncode == 1, found.stderr
    assert str(written.id) in found.stdout and str(version) in found.stdout
    assert "differs from the log in body" in found.stdout and "1 replaced" in found.stdout

    again = run_hub(settings, "snapshots", "check", "--json")
    assert json.loads(again.stdout)["disagreed"] == 0
    app = Hub(settings, settings.database_url, pool_size=1)
    try:
        assert app.repository.get(written.id).body == written.body
    finally:
        app.close()


def test_migrate_adds_the_snapshot_table_and_rebuild_refills_it(settings):
    written = write_history(settings, 4 * EVERY, "LOC-MIGRATE")
    sql(settings, f"DROP TABLE {SNAPSHOTS_TABLE}")  # a database from before snapshots
    sql(settings, "UPDATE hub_schema SET version = 2 WHERE component = 'hub'")

    app = Hub(settings, settings.database_url, pool_size=1)  # loads still work, from the log
    try:
        assert app.repository.get(written.id).body == written.body
    finally:
        app.close()

    run_hub(settings, "migrate")
    run_hub(settings, "migrate")  # idempotent
    assert sql(settings, f"SELECT count(*) FROM {SNAPSHOTS_TABLE}") == [(0,)]
    # The schema is brought to the current version (3 added snapshots; later versions add more).
    assert sql(settings, "SELECT version FROM hub_schema WHERE component = 'hub'") == [(SCHEMA_VERSION,)]

    # A load that had to read the whole history asks for a snapshot of it.
    app = Hub(settings, settings.database_url, pool_size=1)
    try:
        assert app.repository.get(written.id).body == written.body
        assert app.snapshotter.flush()
    finally:
        app.close()
    assert sql(settings, f"SELECT originator_version FROM {SNAPSHOTS_TABLE}") == [(4 * EVERY,)]

    rebuilt = run_hub(settings, "snapshots", "rebuild", "--progress")
    assert "1 snapshots written from the log for 1 aggregates" in rebuilt.stdout
    assert "snapshots: 1/1 (100.0%" in rebuilt.stderr  # progress
    dropped = json.loads(run_hub(settings, "snapshots", "rebuild", "--drop", "--json").stdout)
    assert dropped["dropped"] == 1 and dropped["written"] == 1 and dropped["aggregates"] == 1
    status = json.loads(run_hub(settings, "snapshots", "status", "--json").stdout)
    assert status["snapshots"] == 1 and status["every"] == EVERY
    assert sql(settings, f"SELECT originator_version FROM {SNAPSHOTS_TABLE}") == [(4 * EVERY,)]


def test_snapshots_stay_out_of_the_log_and_the_chain(settings):
    write_history(settings, 3 * EVERY, "LOC-CHAIN")
    assert sql(settings, f"SELECT count(*) FROM {SNAPSHOTS_TABLE}")[0][0] >= 1
    assert sql(settings, "SELECT count(*) FROM hub_events WHERE topic LIKE '%%Snapshot%%'") == [(0,)]
    (events, links) = sql(settings, "SELECT (SELECT count(*) FROM hub_events),"
                          " (SELECT count(*) FROM hub_audit_chain)")[0]
    assert events == links == 3 * EVERY
    verified = run_hub(settings, "audit", "verify")
    assert verified.returncode == 0


def test_accepted_pushes_do_not_wait_for_a_failing_snapshot_write(hub, settings, connect):
    ecp = connect("CPO", "ECP")
    sql(settings, f"ALTER TABLE {SNAPSHOTS_TABLE} RENAME TO hub_snapshots_away")  # every write fails
    put_location(ecp, "LOC-F", stamp(1))
    for n in range(2, 2 + 2 * EVERY):
        patch_evse(ecp, "LOC-F", "CHARGING" if n % 2 else "AVAILABLE", stamp(n))
    hub.ctx.app.snapshotter.flush()
    assert hub.ctx.app.snapshotter.failed >= 1
    accepted(ecp.push("GET", "locations/receiver/IN/ECP/LOC-F"))
