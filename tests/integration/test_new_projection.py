"""A projection added to a hub that already has a log, caught up from position 0 while pushes keep
being written (docs/operations.md, "Adding a projection").

The new projection here counts each Location's pushes and EVSE updates. Its tables
are created as ``hub migrate`` creates every follower's; it is then built from
position 0, either by ``hub projections rebuild`` in two processes (the function the
command calls) or by the live follower's own batches, while a writer thread keeps
saving Locations through the hub's application. Afterwards its view must hold
exactly what the log says, counted in SQL from ``hub_events``.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from hub.domain.objects import Location
from hub.infra.eventlog import EventLog, Follower
from hub.services.application import Hub
from hub.services.operators import projections as operations
from hub.services.schema import migrate
from projections import all_projections
from tests.e2e.test_parallel_rebuild import bulk
from tests.integration.test_projection_batches import at, message


class LocationActivity(Follower):
    name = "test-location-activity"
    event_classes = (Location.Put, Location.EvsePatched)
    partitioned = True

    def ddl(self) -> list[str]:
        return ["""CREATE TABLE IF NOT EXISTS view_test_activity (
                    object_uuid uuid PRIMARY KEY, events integer NOT NULL, position bigint NOT NULL)"""]

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        counts: dict = {}
        for position, e in events:
            count, _ = counts.get(e.originator_id, (0, 0))
            counts[e.originator_id] = (count + 1, position)
        cur.execute(
            "INSERT INTO view_test_activity SELECT * FROM unnest(%b::uuid[], %b::int[], %b::bigint[])"
            " ON CONFLICT (object_uuid) DO UPDATE SET events = view_test_activity.events + excluded.events,"
            " position = excluded.position",
            (list(counts), [c for c, _ in counts.values()], [p for _, p in counts.values()]))


class Writer:
    """Saves a Location with an EVSE update every few milliseconds until stopped."""

    def __init__(self, app: Hub) -> None:
        self.app, self.saved, self._stop = app, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from tests import ocpi_examples as ex

        template = ex.location(last_updated=at(1))
        while not self._stop.is_set():
            location = Location("IN", "ECP", f"NEW{self.saved:05d}", {**template, "id": f"NEW{self.saved:05d}"},
                                message("PUT", "new"))
            location.patch_evse(template["evses"][0]["uid"], {"status": "CHARGING", "last_updated": at(2)},
                                message("PATCH", "new"))
            self.app.save(location)
            self.saved += 1
            self._stop.wait(0.005)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def truth(app: Hub, projection: Follower) -> list[tuple]:
    with app.pool.connection() as conn:
        return conn.execute(
            "SELECT originator_id, count(*)::int, max(notification_id) FROM hub_events WHERE topic = ANY(%s)"
            " GROUP BY originator_id ORDER BY 1", (projection.topics,)).fetchall()


def activity(app: Hub) -> list[tuple]:
    with app.pool.connection() as conn:
        return conn.execute("SELECT object_uuid, events, position FROM view_test_activity ORDER BY 1").fetchall()


@pytest.fixture
def app(settings):
    app = Hub(settings, settings.database_url)
    bulk(app)  # the log the hub already has
    log = EventLog(app)
    for projection in all_projections():
        log.catch_up(projection)
    yield app
    app.close()


@pytest.mark.parametrize("how", ["rebuild in 2 processes", "live follower"])
def test_a_new_projection_catches_up_from_zero_while_pushes_are_written(settings, app, how):
    new = LocationActivity()
    migrate(settings, settings.database_url, [*all_projections(), new])  # as hub migrate does
    log = EventLog(app)
    assert log.position(new.name) == 0
    with Writer(app) as writer:
        if how == "live follower":
            log.catch_up(new)
        else:
            done = operations.rebuild(app, new, processes=2)
            assert done.processes == 2 and done.events > 0
        caught_up_with = writer.saved
    assert caught_up_with > 0, "nothing was written meanwhile"
    log.catch_up(new)  # what came after: the live follower, from where the catch-up left it
    assert log.position(new.name) == log.head()
    assert activity(app) == truth(app, new)
    assert len(activity(app)) > writer.saved
