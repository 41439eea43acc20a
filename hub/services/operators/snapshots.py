"""Snapshots as operators see them: how many, rebuilding them from the log, checking them against it.

Snapshots are a cache (hub/infra/snapshots.py): the event log is the truth. ``rebuild``
replays the log of every aggregate with at least ``HUB_SNAPSHOT_EVERY`` events and
stores a fresh snapshot (``drop`` first deletes them all). ``check`` replays the log of
every snapshotted aggregate up to the snapshot's version, compares the state, reports
each snapshot that cannot be used or disagrees, and replaces it with one from the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import project_aggregate
from eventsourcing.persistence import StoredEvent

from hub.infra.snapshots import SNAPSHOTS_TABLE, UnusableSnapshot, encode, restore, state_of
from hub.services.application import Hub
from hub.services.operators import OperatorError

Progress = Callable[[int, int], None]
BATCH = 200


@dataclass
class Problem:
    aggregate_id: str
    kind: str
    version: int
    problem: str
    replaced_by: int | None = None  # the version of the snapshot written instead

    def as_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class CheckReport:
    checked: int = 0
    agreed: int = 0
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"checked": self.checked, "agreed": self.agreed, "disagreed": len(self.problems),
                "replaced": sum(1 for p in self.problems if p.replaced_by is not None),
                "problems": [p.as_dict() for p in self.problems]}


@dataclass
class RebuildReport:
    dropped: int = 0
    aggregates: int = 0
    written: int = 0
    skipped: int = 0  # aggregates whose state a snapshot cannot carry

    def as_dict(self) -> dict:
        return dict(vars(self))


def _pool(app: Hub):
    if app.pool is None:
        raise OperatorError("snapshots live in the hub's PostgreSQL database; this hub has none")
    return app.pool


def status(app: Hub) -> dict:
    """How many snapshots there are, of how many aggregates, and their size on disk."""
    with _pool(app).connection() as conn:
        rows, aggregates, size = conn.execute(
            f"SELECT count(*), count(DISTINCT originator_id), pg_total_relation_size('{SNAPSHOTS_TABLE}')"
            f" FROM {SNAPSHOTS_TABLE}").fetchone()
    return {"snapshots": rows, "aggregates": aggregates, "bytes": size,
            "every": app.settings.snapshot_every, "cache_size": app.settings.aggregate_cache_size}


def from_log(app: Hub, aggregate_id: UUID, version: int | None = None) -> Any:
    """The aggregate replayed from its events alone (no snapshot, no cache); None if it has none."""
    return project_aggregate(None, app.events.get(aggregate_id, lte=version))


def rebuild(app: Hub, *, drop: bool = False, progress: Progress | None = None) -> RebuildReport:
    """A fresh snapshot, from the log, of every aggregate with at least HUB_SNAPSHOT_EVERY events."""
    every = app.settings.snapshot_every
    if not every:
        raise OperatorError("snapshots are off (HUB_SNAPSHOT_EVERY=0): set it to the events between"
                            " snapshots, 20 by default")
    report = RebuildReport()
    with _pool(app).connection() as conn:
        if drop:
            report.dropped = conn.execute(f"DELETE FROM {SNAPSHOTS_TABLE}").rowcount
        ids = [row[0] for row in conn.execute(
            "SELECT originator_id FROM hub_events GROUP BY originator_id"
            " HAVING max(originator_version) >= %s ORDER BY originator_id", (every,))]
    report.aggregates = len(ids)
    for done, aggregate_id in enumerate(ids, 1):
        if _write_from_log(app, aggregate_id) is None:
            report.skipped += 1
        else:
            report.written += 1
        if progress is not None:
            progress(done, len(ids))
    return report


def check(app: Hub, *, replace: bool = True, progress: Progress | None = None) -> CheckReport:
    """Compare every snapshot with the log replayed up to its version; report (and replace)
    each one that cannot be used or disagrees."""
    report = CheckReport()
    with _pool(app).connection() as conn:
        (total,) = conn.execute(f"SELECT count(*) FROM {SNAPSHOTS_TABLE}").fetchone()
    for stored in _snapshots(app):
        report.checked += 1
        problem = _problem(app, stored)
        if problem is None:
            report.agreed += 1
        else:
            if replace:
                problem.replaced_by = _replace(app, stored)
            report.problems.append(problem)
        if progress is not None:
            progress(report.checked, max(total, report.checked))
    return report


def _snapshots(app: Hub) -> Iterator[StoredEvent]:
    """Every stored snapshot, in batches (keyset on the primary key)."""
    after: tuple = (UUID(int=0), -1)
    while True:
        with _pool(app).connection() as conn:
            rows = conn.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {SNAPSHOTS_TABLE}"
                " WHERE (originator_id, originator_version) > (%s, %s)"
                " ORDER BY originator_id, originator_version LIMIT %s", (*after, BATCH)).fetchall()
        if not rows:
            return
        for aggregate_id, version, topic, state in rows:
            yield StoredEvent(originator_id=aggregate_id, originator_version=version, topic=topic,
                              state=bytes(state or b""))
        after = (rows[-1][0], rows[-1][1])


def _problem(app: Hub, stored: StoredEvent) -> Problem | None:
    version = stored.originator_version
    logged = from_log(app, stored.originator_id, version)
    kind = type(logged).__name__ if logged is not None else "?"
    if logged is None or logged.version != version:
        return Problem(str(stored.originator_id), kind, version,
                       f"the log has no version {version} of this aggregate")
    try:
        snapped = restore(app.mapper, stored)
    except UnusableSnapshot as exc:
        return Problem(str(stored.originator_id), kind, version, f"cannot be used: {exc}")
    mine, theirs = state_of(snapped), state_of(logged)
    if type(snapped) is not type(logged):
        return Problem(str(stored.originator_id), kind, version,
                       f"holds a {type(snapped).__name__}, the log a {kind}")
    if mine != theirs:
        differ = sorted(k for k in {*mine, *theirs} if mine.get(k, ...) != theirs.get(k, ...))
        return Problem(str(stored.originator_id), kind, version,
                       f"differs from the log in {', '.join(differ)}")
    return None


def _replace(app: Hub, stored: StoredEvent) -> int | None:
    """Delete a bad snapshot; write one from the log at the aggregate's current version."""
    with _pool(app).connection() as conn:
        conn.execute(f"DELETE FROM {SNAPSHOTS_TABLE} WHERE originator_id = %s AND originator_version = %s",
                     (stored.originator_id, stored.originator_version))
    return _write_from_log(app, stored.originator_id)


def _write_from_log(app: Hub, aggregate_id: UUID) -> int | None:
    aggregate = from_log(app, aggregate_id)
    if aggregate is None:
        return None
    try:
        stored = encode(app.mapper, aggregate)
    except ValueError:
        return None
    app.write_snapshot(stored)
    return aggregate.version
