"""4. Projection rebuild: ``hub projections rebuild`` over a large event log, in 1 and 2 processes.

Hub: the real command, as a process (``--json``), over the dataset of
``ops/bench/dataset.py`` (1,000,000 events at full size), once with
``--processes 1`` and once with ``--processes 2``; events per second from the
times it reports for each projection (its own start-up excluded; the whole
command's wall time is in the notes), and where that time went: ``read``
(fetching the log), ``decode`` (rows to domain events), ``apply`` (the
projections' Python) and ``write`` (their SQL), each summed over the threads and
processes of the rebuild, so with 2 processes they add up to more than the wall time.

Baseline: a raw keyset read of the same rows (each projection's topics, the
columns a rebuild reads, in binary, pages of 5,000 by ``notification_id``), no
decoding: what PostgreSQL and the driver deliver. Measured before and after the
rebuilds; the mean is the baseline. Goal: ≥ 0.25 × baseline.
"""

from __future__ import annotations

import json
import time

from ops.bench.common import Result, Row, log
from ops.bench.dataset import shared_dataset

PAGE = 5000
GOAL = 0.25
KEYSET_SQL = (
    "SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
    " WHERE notification_id > %s AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"
)


def keyset_read(conn, topics: list[str]) -> int:
    position, count = 0, 0
    while True:
        rows = conn.execute(KEYSET_SQL, (position, topics, PAGE), binary=True).fetchall()
        if not rows:
            return count
        count += len(rows)
        position = rows[-1][0]


def baseline(hub) -> tuple[int, float]:
    from projections import all_projections

    with hub.connect_db() as conn:
        conn.execute("SET enable_sort = off")  # as the rebuild's reader: along the primary key
        started = time.perf_counter()
        rows = sum(keyset_read(conn, projection.topics) for projection in all_projections())
        return rows, time.perf_counter() - started


def rebuild(hub, processes: int) -> tuple[list[dict], float, float]:
    """``hub projections rebuild --processes N --json``: its report, wall time and peak RSS (MiB)."""
    started = time.monotonic()
    stdout, peak = hub.run_hub_measured("projections", "rebuild", "--processes", str(processes), "--json")
    return json.loads(stdout), time.monotonic() - started, peak


def run(db, size: str, shared: dict | None = None) -> Result:
    dataset, owned = shared_dataset(db, size, shared)
    result = Result("rebuild", "hub projections rebuild (1 and 2 processes) vs a raw keyset read of the same"
                    " rows", size)
    try:
        hub = dataset.hub
        log(f"rebuild: baseline, a keyset read of {dataset.events:,} events")
        rows_1, seconds_1 = baseline(hub)
        runs, failed = {}, {}
        for processes in (1, 2):
            log(f"rebuild: hub projections rebuild --processes {processes} over {dataset.events:,} events")
            try:
                runs[processes] = rebuild(hub, processes)
            except RuntimeError as exc:  # e.g. the database's connections taken by others: keep the rest
                failed[processes] = str(exc).strip().splitlines()[-1]
                log(f"rebuild: --processes {processes} failed: {failed[processes]}")
                continue
            report = runs[processes][0]
            log(f"rebuild: --processes {processes}: {sum(r['events'] for r in report):,} events in"
                f" {sum(r['seconds'] for r in report):.1f} s; " + json.dumps([(r["name"], r["split"]) for r in report]))
        dataset.views_built = bool(runs)
        dataset.rebuild_peak_rss = runs[1][2] if 1 in runs else None
        for processes, error in failed.items():
            result.note(f"--processes {processes} failed: {error}")
        log("rebuild: baseline again")
        rows_2, seconds_2 = baseline(hub)
        base_rate = (rows_1 + rows_2) / (seconds_1 + seconds_2)
        for processes, (report, wall, peak) in runs.items():
            events = sum(r["events"] for r in report)
            seconds = sum(r["seconds"] for r in report)
            rate = events / seconds
            result.add(Row(f"events/s, {processes} process{'es' if processes > 1 else ''}", rate, base_rate,
                           "ev/s", goal=f"≥ {GOAL:.2f}", met=rate >= GOAL * base_rate))
            split = {}
            for r in report:
                for what, took in r["split"].items():
                    split[what] = split.get(what, 0.0) + took
            result.note(f"{processes} process{'es' if processes > 1 else ''}: {events:,} events in {seconds:.1f} s ("
                        + "; ".join(f"{r['name']} {r['events']:,} in {r['seconds']:.1f} s" for r in report)
                        + "); time split (summed over threads and processes): "
                        + ", ".join(f"{what} {took:.1f} s" for what, took in split.items())
                        + f"; command wall time {wall:.1f} s, start-up included; peak RSS of the command"
                        f" {peak:.0f} MiB (its partition processes not included)")
        if 1 in runs:
            result.add(Row("time for the whole log, 1 process", sum(r["seconds"] for r in runs[1][0]),
                           (seconds_1 + seconds_2) / 2, "s"))
        with hub.connect_db() as conn:
            (rows,) = conn.execute("SELECT count(*) FROM view_objects").fetchone()
        result.note(dataset.describe())
        result.note(f"view_objects holds {rows:,} rows")
        result.note(f"baseline: {rows_1:,} rows read in {seconds_1:.1f} s before the rebuilds and "
                    f"{seconds_2:.1f} s after them")
        return result
    finally:
        if owned:
            dataset.close()
