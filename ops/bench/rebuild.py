"""4. Projection rebuild: ``hub projections rebuild`` over a large event log.

Hub: the real command, as a process, over the dataset of ``ops/bench/dataset.py``
(1,000,000 events at full size); events per second from the times it reports
for each projection (its own start-up excluded; the whole command's wall time
is in the notes).

Baseline: reading the same notifications (each projection's topics) with the
event store's own API, ``app.recorder.select_notifications`` in pages of
1,000, and decoding each with ``app.mapper.to_domain_event``, nothing else.
Measured before and after the rebuild; the mean is the baseline.
Goal: ≥ 0.5 × baseline.
"""

from __future__ import annotations

import re
import time

from ops.bench.common import Result, Row, log
from ops.bench.dataset import shared_dataset

PAGE = 1000


def read_and_decode(app, topics: list[str]) -> int:
    recorder, mapper = app.recorder, app.mapper
    position, count = 0, 0
    while True:
        notifications = recorder.select_notifications(position, PAGE, topics=topics, inclusive_of_start=False)
        if not notifications:
            return count
        for notification in notifications:
            mapper.to_domain_event(notification)
        count += len(notifications)
        position = notifications[-1].id


def baseline(app) -> tuple[int, float]:
    from projections import all_projections

    started = time.perf_counter()
    events = sum(read_and_decode(app, projection.topics) for projection in all_projections())
    return events, time.perf_counter() - started


def run(db, size: str, shared: dict | None = None) -> Result:
    dataset, owned = shared_dataset(db, size, shared)
    result = Result("rebuild", "hub projections rebuild vs reading + decoding the same notifications", size)
    try:
        hub = dataset.hub
        log(f"rebuild: baseline, reading and decoding {dataset.events:,} events")
        events_1, seconds_1 = baseline(hub.app)
        log(f"rebuild: hub projections rebuild over {dataset.events:,} events")
        started = time.monotonic()
        stdout, peak = hub.run_hub_measured("projections", "rebuild")
        wall = time.monotonic() - started
        dataset.views_built = True
        dataset.rebuild_peak_rss = peak
        log("rebuild: baseline again")
        events_2, seconds_2 = baseline(hub.app)

        applied, seconds, parts = 0, 0.0, []
        for name, count, took in re.findall(r"^(\S+): rebuilt from (\d+) events in ([\d.]+)s", stdout, re.M):
            applied += int(count)
            seconds += float(took)
            parts.append(f"{name} {int(count):,} events in {float(took):.1f} s")
        hub_rate = applied / seconds
        base_rate = (events_1 + events_2) / (seconds_1 + seconds_2)
        with hub.connect_db() as conn:
            (rows,) = conn.execute("SELECT count(*) FROM view_objects").fetchone()
        result.add(
            Row("events/s", hub_rate, base_rate, "ev/s", goal="≥ 0.50", met=hub_rate >= 0.5 * base_rate),
            Row("time for the whole log", seconds, (seconds_1 + seconds_2) / 2, "s"),
        )
        result.note(dataset.describe())
        result.note(f"hub projections rebuild: {'; '.join(parts)} (command wall time {wall:.1f} s, "
                    f"start-up included; its peak RSS {peak:.0f} MiB); view_objects holds {rows:,} rows")
        result.note(f"baseline: {events_1:,} notifications read and decoded in {seconds_1:.1f} s before the "
                    f"rebuild and {seconds_2:.1f} s after it")
        return result
    finally:
        if owned:
            dataset.close()
