"""Load-cost curve: the cold load of one Location as its history grows.

Hub: Locations with 10, 100, 1,000 and 10,000 events (smoke: 10, 100, 1,000), a PUT then
EVSE status PATCHes written through the hub's application (``app.save`` of a few events at
a time, snapshots taken as they fall due, ``HUB_SNAPSHOT_EVERY`` as configured). Each load is
timed in a fresh ``Hub`` (its aggregate cache empty), after one load of another Location so
that connections and code are warm: what a web worker pays for a Location it has not seen
since it started. The median of the repetitions is reported.

Baseline: the same load of the Location with 10 events, in the same run. Goal: the one with
10,000 events ≤ 1.5 × that. Also shown: the worst tail (a snapshot exactly
``HUB_SNAPSHOT_EVERY - 1`` events old) and the same loads with snapshots off
(``HUB_SNAPSHOT_EVERY=0``), i.e. a replay of every event, as before snapshots.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

from ops.bench.common import Result, Row, log, stamp
from ops.bench.processes import HubProcesses

SIZES = {
    "smoke": {"events": (10, 100, 1_000), "repeat": 3},
    "full": {"events": (10, 100, 1_000, 10_000), "repeat": 15},
}
CPO = "LCP"
WARM_ROUNDS = 12  # more than the library's pool holds connections (4 + 8 overflow)
EVSE = "EVSE-BLR-0001-1"


def write_location(app, object_id: str, events: int, batch: int) -> object:
    """A Location with ``events`` events, saved ``batch`` events at a time; returns its id."""
    from hub.domain.objects import Location
    from tests import ocpi_examples as ex

    location = Location(country_code="IN", party_id=CPO, object_id=object_id,
                        body=ex.location(party_id=CPO, id=object_id, last_updated=stamp(0)),
                        message={"from": f"IN/{CPO}/CPO", "scenario": "broadcast"})
    pending = 1
    for n in range(1, events):
        location.patch_evse(EVSE, {"status": ("CHARGING", "AVAILABLE")[n % 2], "last_updated": stamp(n)},
                            {"from": f"IN/{CPO}/CPO", "scenario": "broadcast"})
        pending += 1
        if pending >= batch:
            app.save(location)
            pending = 0
    if pending:
        app.save(location)
    return location.id


def cold_load(settings, url: str, aggregate_id, warm_ids, repeat: int) -> tuple[float, int]:
    """Median seconds of loading ``aggregate_id`` in a fresh Hub, and the events it read."""
    from hub.services.application import Hub

    times, read = [], 0
    for _ in range(repeat):
        app = Hub(settings, url, pool_size=1)
        try:
            # A running process: every connection of the library's pool has served (and
            # prepared) the snapshot and event queries; the Location timed is not in its cache.
            for _ in range(WARM_ROUNDS):
                for warm_id in warm_ids:
                    app.repository.get(warm_id)
            counted = []
            select = app.events.recorder.select_events

            def counting(*args, select=select, counted=counted, **kwargs):
                rows = select(*args, **kwargs)
                counted.append(len(rows))
                return rows

            app.events.recorder.select_events = counting
            started = time.perf_counter()
            app.repository.get(aggregate_id)
            times.append(time.perf_counter() - started)
            read = sum(counted)
        finally:
            app.close()
    return statistics.median(times), read


def run(db, size: str) -> Result:
    from hub.services.application import Hub

    cfg = SIZES[size]
    result = Result("loadcost", "cold load of one Location vs its number of events", size)
    hub = HubProcesses(db.url, "loadcost")
    try:
        hub.migrate()
        settings = hub.settings
        every = settings.snapshot_every
        app = Hub(settings, db.url, pool_size=2)
        try:
            ids = {}
            for events in cfg["events"]:
                log(f"loadcost: writing a Location with {events:,} events")
                ids[events] = write_location(app, f"LOC{events}", events, 7)
            biggest = max(cfg["events"])
            # The worst tail: a snapshot at a multiple of the interval, then every - 1 events.
            worst_events = biggest + every - 1 if every else biggest
            ids["worst"] = write_location(app, "LOCWORST", biggest, every or 7)
            warm = (write_location(app, "LOCWARM", 10, 7), write_location(app, "LOCWARMSNAP", 3 * (every or 7), 7))
            app.snapshotter.flush(600)
            if every:
                location = app.repository.get(ids["worst"])
                for n in range(every - 1):
                    location.patch_evse(EVSE, {"status": "AVAILABLE", "last_updated": stamp(biggest + n)}, {})
                    app.save(location)
                app.snapshotter.flush(60)
        finally:
            app.close()

        plain = replace(settings, snapshot_every=0)
        figures = {}
        for key in [*cfg["events"], "worst"]:
            log(f"loadcost: timing cold loads of {key}")
            figures[key] = (cold_load(settings, db.url, ids[key], warm, cfg["repeat"]),
                            cold_load(plain, db.url, ids[key], warm, max(1, cfg["repeat"] // 3)))
        (base, _), (plain_base, _) = figures[cfg["events"][0]]
        for key in [*cfg["events"], "worst"]:
            (seconds, read), (plain_seconds, plain_read) = figures[key]
            label = (f"{key:,} events" if key != "worst"
                     else f"{worst_events:,} events, snapshot {max(every - 1, 0)} events old")
            goal = "≤ 1.50" if key == biggest and size == "full" else ""
            result.add(Row(f"cold load, {label} (read {read:,} events)", seconds * 1000, base * 1000, "ms",
                           goal=goal, met=(seconds <= 1.5 * base) if goal else None))
            result.add(Row(f"  same without snapshots (read {plain_read:,} events)", plain_seconds * 1000,
                           plain_base * 1000, "ms"))
        result.note(f"HUB_SNAPSHOT_EVERY={every}; every load in a fresh Hub (the Location not in its cache) after"
                    f" loads of two other Locations on each of its connections; median of {cfg['repeat']} loads with snapshots,"
                    f" {max(1, cfg['repeat'] // 3)} without; baseline: the Location with {cfg['events'][0]} events")
        return result
    finally:
        hub.close()
