"""Snapshots: a cache of aggregate state beside the event log, never part of it.

A snapshot is the state of one aggregate at one version, kept in
``hub_snapshots`` (the eventsourcing library's snapshot store: not in the
notification log, not in the audit hash chain). Loading an aggregate reads its
latest snapshot and only the events after it; the log stays the one source of
truth, so snapshots can be dropped at any time and rebuilt from it.

- A snapshot is taken after commit, in a background thread of each process,
  when an aggregate's version crosses a multiple of ``HUB_SNAPSHOT_EVERY``, or
  when a load had to read that many events. Its state comes from the
  repository (snapshot plus log), never from the object a command changed. It
  is written only if it decodes back to exactly that state; the older
  snapshots of that aggregate are then deleted. A failure is logged, never
  raised: requests never wait for a snapshot.
- A snapshot that cannot be used (bytes that do not decode, an unknown topic,
  an aggregate class whose code changed since it was taken: its *shape*, a
  digest of the class's source, differs) is ignored with a warning: the
  aggregate is loaded from the log and snapshotted again.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

log = logging.getLogger(__name__)

SHAPE_KEY = "__hub_shape__"
QUEUE_LIMIT = 10_000  # aggregates waiting for a snapshot in one process; more are dropped


class UnusableSnapshot(Exception):
    """A stored snapshot that cannot stand for its aggregate (the message says why)."""


@functools.cache
def shape_of(cls: type) -> str:
    """A digest of the hub's code that gives ``cls`` its state: the source of each class of
    its MRO defined in the hub, and its ``class_version``. A change there retires its snapshots."""
    digest = hashlib.sha256(str(getattr(cls, "class_version", 1)).encode())
    for klass in cls.__mro__:
        if not klass.__module__.startswith("hub."):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # no source at hand: the name alone
            source = ""
        digest.update(f"{klass.__module__}:{klass.__qualname__}\n{source}".encode())
    return digest.hexdigest()[:16]


def state_of(aggregate: Any) -> dict:
    """What a snapshot must reproduce: every attribute but the pending events."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def take(aggregate: Any) -> Snapshot:
    """A snapshot of ``aggregate`` carrying its class's shape."""
    taken = Snapshot.take(aggregate)
    return Snapshot(originator_id=taken.originator_id, originator_version=taken.originator_version,
                    timestamp=taken.timestamp, topic=taken.topic,
                    state={**taken.state, SHAPE_KEY: shape_of(type(aggregate))})


def restore(mapper: Any, stored: StoredEvent) -> Any:
    """The aggregate a stored snapshot holds; :class:`UnusableSnapshot` if it cannot be trusted."""
    try:
        snapshot = mapper.to_domain_event(stored)
        state = dict(snapshot.state)
        shape = state.pop(SHAPE_KEY, None)
        cls = resolve_topic(snapshot.topic)
    except Exception as exc:  # corrupt bytes, unknown topic, missing fields
        cause = exc.__cause__ or exc.__context__ or exc  # the library's wrapper repeats the ids
        raise UnusableSnapshot(f"unreadable ({type(cause).__name__}: {str(cause)[:160]})") from None
    if shape != shape_of(cls):
        raise UnusableSnapshot(f"taken from another version of {cls.__qualname__}'s code")
    try:
        return Snapshot(originator_id=snapshot.originator_id, originator_version=snapshot.originator_version,
                        timestamp=snapshot.timestamp, topic=snapshot.topic, state=state).mutate(None)
    except Exception as exc:
        raise UnusableSnapshot(f"cannot rebuild the object ({type(exc).__name__}: {exc})") from None


def encode(mapper: Any, aggregate: Any) -> StoredEvent:
    """The stored form of a snapshot of ``aggregate``; ValueError unless it decodes back to
    exactly the same state (a type JSON cannot carry, say)."""
    stored = mapper.to_stored_event(take(aggregate))
    if state_of(restore(mapper, stored)) != state_of(aggregate):
        raise ValueError(f"a snapshot of {type(aggregate).__qualname__} does not give its state back")
    return stored


class SnapshotRepository(Repository):
    """The library's repository, loading from the latest usable snapshot plus the events after it.

    ``wants_snapshot(aggregate_id)`` is called when a load read ``every`` events or more.
    ``loads`` counts snapshot and event rows read (for tests and benchmarks).
    """

    def __init__(self, *args: Any, every: int = 0,
                 wants_snapshot: Callable[[UUID], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every = every
        self.wants_snapshot = wants_snapshot
        self._quiet_until = 0.0

    def _reconstruct_aggregate(self, aggregate_id: Any, version: int | None, projector_func: Any) -> Any:
        start = None
        if self.snapshot_store is not None:
            start = self._snapshot(aggregate_id, version)
        aggregate = None
        if start is not None:
            events = list(self.event_store.get(originator_id=aggregate_id, gt=start.version, lte=version))
            try:
                aggregate = projector_func(start, events)
            except Exception as exc:  # the snapshot does not fit its own events
                log.warning("snapshot of %s at version %s does not take its later events (%s: %s):"
                            " loading it from the log", aggregate_id, start.version, type(exc).__name__, exc)
                start = aggregate = None
        if start is None:
            events = list(self.event_store.get(originator_id=aggregate_id, lte=version))
            aggregate = projector_func(None, events)
        if aggregate is None:
            raise AggregateNotFoundError(f"Aggregate {aggregate_id!r} version {version!r} not found.")
        if (version is None and self.every and len(events) >= self.every
                and self.wants_snapshot is not None):
            self.wants_snapshot(aggregate_id)
        return aggregate

    def _snapshot(self, aggregate_id: Any, version: int | None) -> Any:
        try:
            stored = self.snapshot_store.recorder.select_events(aggregate_id, desc=True, limit=1, lte=version)
        except Exception as exc:  # no table (before `hub migrate`), connection trouble
            now = time.monotonic()
            if now >= self._quiet_until:  # one warning a minute at most
                self._quiet_until = now + 60.0
                log.warning("cannot read snapshots (%s: %s): loading aggregates from the log;"
                            " run `hub migrate` if hub_snapshots is missing", type(exc).__name__, exc)
            return None
        if not stored:
            return None
        try:
            return restore(self.snapshot_store.mapper, stored[0])
        except UnusableSnapshot as exc:
            log.warning("snapshot of %s at version %s ignored, loading it from the log: %s",
                        aggregate_id, stored[0].originator_version, exc)
            return None


class Snapshotter:
    """Takes snapshots after commit, in one background thread per process, best effort.

    ``write(stored)`` stores one snapshot (and may prune older ones); ``load(id)`` gives the
    aggregate as the repository has it. Ids wait in a bounded queue (one entry per aggregate).
    """

    def __init__(self, every: int, load: Callable[[UUID], Any], mapper: Any,
                 write: Callable[[StoredEvent], None]) -> None:
        self.every = every
        self.load = load
        self.mapper = mapper
        self.write = write
        self.written = 0
        self.failed = 0
        self._queue: OrderedDict[UUID, None] = OrderedDict()
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._quiet_until = 0.0

    # Asking for snapshots ---------------------------------------------------------------
    def after_save(self, aggregates: dict, events: list) -> None:
        """After a commit: the aggregates whose version crossed a multiple of ``every``."""
        if not self.every:
            return
        counts: dict[Any, int] = {}
        for event in events:
            counts[event.originator_id] = counts.get(event.originator_id, 0) + 1
        for aggregate_id, aggregate in aggregates.items():
            new = aggregate.version
            old = new - counts.get(aggregate_id, 0)
            if new // self.every > old // self.every:
                self.request(aggregate_id)

    def request(self, aggregate_id: UUID) -> None:
        if threading.current_thread() is self._thread:  # its own loads: it is snapshotting them
            return
        with self._cond:
            if self._closed or (len(self._queue) >= QUEUE_LIMIT and aggregate_id not in self._queue):
                return
            self._queue[aggregate_id] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hub-snapshots", daemon=True)
                self._thread.start()
            self._cond.notify()

    # Taking them ----------------------------------------------------------------------------
    def snapshot(self, aggregate_id: UUID) -> int | None:
        """Snapshot one aggregate now, as the repository loads it; the version written (None if none)."""
        aggregate = self.load(aggregate_id)
        try:
            stored = encode(self.mapper, aggregate)
        except ValueError as exc:
            if str(exc) not in self._warned:
                self._warned.add(str(exc))
                log.warning("%s: no snapshots of it are kept", exc)
            return None
        self.write(stored)
        self.written += 1
        return aggregate.version

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                aggregate_id, _ = self._queue.popitem(last=False)
                self._busy = True
            try:
                self.snapshot(aggregate_id)
            except Exception as exc:  # never fails a request; the next crossing tries again
                self.failed += 1
                if time.monotonic() >= self._quiet_until:  # one warning a minute at most
                    self._quiet_until = time.monotonic() + 60.0
                    log.warning("snapshot of %s not written (%s: %s); %d failed so far in this process",
                                aggregate_id, type(exc).__name__, exc, self.failed)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every requested snapshot is taken (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


# Storage ----------------------------------------------------------------------------------
SNAPSHOTS_TABLE = "hub_snapshots"
# The library creates hub_snapshots with autovacuum tuned for an append-only table; snapshots
# are replaced (older ones deleted), so let autovacuum reclaim them like any busy table.
SNAPSHOTS_DDL = [
    f"ALTER TABLE {SNAPSHOTS_TABLE} SET (autovacuum_vacuum_threshold = 1000,"
    " autovacuum_vacuum_scale_factor = 0.2)",
]


def pool_writer(pool: Any) -> Callable[[StoredEvent], None]:
    """Store one snapshot with the hub's pool; the aggregate's older snapshots go."""

    def write(stored: StoredEvent) -> None:
        with pool.connection() as conn, conn.transaction():
            conn.execute(
                f"INSERT INTO {SNAPSHOTS_TABLE} (originator_id, originator_version, topic, state)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (stored.originator_id, stored.originator_version, stored.topic, stored.state))
            conn.execute(f"DELETE FROM {SNAPSHOTS_TABLE} WHERE originator_id = %s AND originator_version < %s",
                         (stored.originator_id, stored.originator_version))

    return write
