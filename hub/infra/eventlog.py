"""Following the event log: the one mechanism behind projections and the dispatcher.

A :class:`Follower` reads the notification log (``hub_events`` in
``notification_id`` order) from its tracking position and applies a batch of
events in **one transaction together with its new tracking position**, so a
crash never applies an event twice or skips one. The tracking row is locked
``FOR UPDATE`` for the batch, so any number of processes (web workers catching
up for read-your-writes, several ``hub worker`` nodes) can drive the same
follower without doing the same work twice.

A rebuild (:meth:`EventLog.rebuild`) builds the follower's tables afresh
beside the live ones and swaps the result in with one transaction; partners'
reads never wait for it and never see a partial view.

Gap safety: every insert into the log holds one transaction-level lock from
before it takes notification ids until it commits (the hub's recorder, see
:mod:`hub.infra.chain`), so ids commit in order; the highest committed id
therefore bounds a complete prefix of the log.
"""

from __future__ import annotations

import functools
import gc
import itertools
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, suppress
from typing import Any, Protocol

import psycopg
from eventsourcing.utils import get_topic

from hub.infra import rebuild as rebuilding
from hub.infra.decoding import EventDecoder
from hub.infra.rebuild import RebuildRefused, Rebuilt

__all__ = ["EventLog", "Follower", "RebuildRefused", "Rebuilt", "Waker"]

log = logging.getLogger(__name__)

TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS hub_tracking (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""


# The follower's events after a position, up to a head, in log order (LIMIT NULL: all).
EVENTS_SQL = (
    "SELECT notification_id, originator_id, originator_version, topic, state"
    " FROM hub_events WHERE notification_id > %s AND notification_id <= %s"
    " AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"
)

TRACKING_AND_HEAD_SQL = (
    "SELECT position, (SELECT coalesce(max(notification_id), 0) FROM hub_events)"
    " FROM hub_tracking WHERE name = %s FOR UPDATE OF hub_tracking"
)

# The log's head, the lowest position of some followers, how many of them have a tracking
# row, and (over a short stretch only) the topics between that position and the head.
IDLE_SQL = (
    "WITH h AS (SELECT coalesce(max(notification_id), 0) AS head FROM hub_events),"
    " t AS (SELECT min(position) AS low, count(*) AS n FROM hub_tracking WHERE name = ANY(%s))"
    " SELECT h.head, t.low, t.n, CASE WHEN t.low < h.head AND h.head - t.low <= %s THEN"
    " ARRAY(SELECT DISTINCT topic FROM hub_events"
    " WHERE notification_id > t.low AND notification_id <= h.head) END FROM h, t"
)
IDLE_WINDOW = 10_000  # events: a follower further behind than this just runs its batches

PARTITION_FROM = 10_000  # events of the log per process below which a rebuild is not split
REBUILD_LOCK = 0x5242  # "RB": advisory lock class of rebuilds, one per schema and follower


class Application(Protocol):
    """What the log needs of the application (:class:`hub.services.application.Hub`)."""

    pool: Any  # psycopg_pool.ConnectionPool
    mapper: Any  # eventsourcing's Mapper: stored events to domain events
    database_url: str
    settings: Any  # hub.infra.config.Settings


class Follower:
    """Base class: subclasses set ``name`` and ``event_classes`` and implement ``apply``."""

    name: str = ""
    event_classes: Sequence[type] = ()
    batch_size: int = 500
    rebuild_batch_size: int = 5_000  # a rebuild writes private tables: big transactions are fine
    # True when each row of the follower's tables follows the events of one aggregate only:
    # a rebuild may then split the log by originator between processes (hub.infra.partitions).
    partitioned: bool = False
    # True for the views the dispatchers read: the worker runs them only up to these views'
    # lowest position. A projection added later stays False, so catching it up from
    # position 0 never holds up deliveries.
    read_by_dispatchers: bool = False

    @property
    def topics(self) -> list[str]:
        return [get_topic(cls) for cls in self.event_classes]

    def ddl(self) -> list[str]:
        """Idempotent CREATE statements for the follower's own tables."""
        return []

    def tables(self) -> list[str]:
        """The tables :meth:`ddl` creates: what a rebuild builds afresh and swaps in."""
        return re.findall(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)", "\n".join(self.ddl()), re.I)

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        """Apply ``(position, domain_event)`` pairs inside the caller's transaction."""
        raise NotImplementedError


class EventLog:
    """Reads the hub's notification log and drives followers over it."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.pool = app.pool
        self._locks: dict[str, threading.Lock] = {}
        self._decoder = EventDecoder(app.mapper)

    # Reading ---------------------------------------------------------------
    def head(self, conn: psycopg.Connection | None = None) -> int:
        """The highest notification id (in ``conn``'s transaction if given)."""
        if conn is None:
            with self.pool.connection() as conn:
                return self.head(conn)
        row = conn.execute("SELECT max(notification_id) FROM hub_events").fetchone()
        return int(row[0] or 0)

    def decode(self, row: Sequence[Any]) -> Any:
        """``(originator_id, originator_version, topic, state)`` → the domain event, as the
        application's mapper makes it (:mod:`hub.infra.decoding`)."""
        return self._decoder(row)

    def position(self, name: str) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT position FROM hub_tracking WHERE name = %s", (name,)).fetchone()
        return int(row[0]) if row else 0

    # Following --------------------------------------------------------------
    def run_batch(self, follower: Follower, until: int | None = None) -> tuple[int, bool]:
        """Apply one batch. Returns (events applied, caught up)."""
        with self.pool.connection() as conn, conn.transaction():
            # The follower's row, locked for this batch, and the log's head: one round trip.
            row = conn.execute(TRACKING_AND_HEAD_SQL, (follower.name,)).fetchone()
            if row is None:  # a follower's first run
                conn.execute("INSERT INTO hub_tracking (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                             (follower.name,))
                row = conn.execute(TRACKING_AND_HEAD_SQL, (follower.name,)).fetchone()
            position, head = row
            if until is not None and position >= until:
                return 0, True
            if until is not None:
                head = min(head, until)
            if head <= position:
                return 0, True
            topics = follower.topics
            rows = conn.execute(EVENTS_SQL, (position, head, topics, follower.batch_size)).fetchall()
            full = len(rows) == follower.batch_size
            new_position = rows[-1][0] if full else head
            if rows:
                events = self._decoder.positioned(rows)
                with conn.cursor() as cur:
                    follower.apply(cur, events)
            conn.execute(
                "UPDATE hub_tracking SET position = %s, updated_at = now() WHERE name = %s",
                (new_position, follower.name),
            )
            return len(rows), not full

    def min_position(self, names: Sequence[str]) -> int:
        """The lowest tracking position among these followers (0 if one never ran)."""
        with self.pool.connection() as conn:
            low, count = conn.execute("SELECT min(position), count(*) FROM hub_tracking WHERE name = ANY(%s)",
                                      (list(names),)).fetchone()
        return int(low) if low is not None and count == len(set(names)) else 0

    def catch_up(self, follower: Follower, until: int | None = None) -> int:
        """Run batches until the follower reached ``until`` (or the head)."""
        done = 0
        while True:
            applied, caught_up = self.run_batch(follower, until)
            done += applied
            if caught_up:
                return done

    def advance_idle(self, followers: Sequence[Follower]) -> set[str]:
        """Move the followers with nothing to apply up to the log's head; return their names.

        A follower has nothing to apply when none of its topics occurs between
        its position and the head: one query finds the topics after the lowest
        position of ``followers``, one statement advances (and stamps) the
        followers without any, so a round of the worker does not open a
        transaction per follower for events that are not theirs. The head
        bounds a complete prefix of the log (see the module's docstring), so
        no event of theirs can commit below it later. When a follower never
        ran or the stretch is long, nothing is skipped.
        """
        names = [f.name for f in followers]
        with self.pool.connection() as conn:
            head, low, count, present = conn.execute(IDLE_SQL, (names, IDLE_WINDOW)).fetchone()
            if count < len(set(names)) or low is None:
                return set()
            if low >= head:
                return set(names)  # every one of them is at the head already
            if present is None:
                return set()
            present = set(present)
            idle = [f.name for f in followers if present.isdisjoint(f.topics)]
            if idle:
                conn.execute("UPDATE hub_tracking SET position = %s, updated_at = now()"
                             " WHERE name = ANY(%s) AND position < %s", (head, idle, head))
            return set(idle)

    def try_catch_up(self, follower: Follower) -> int:
        """Like :meth:`catch_up` but skips if this process is already running it."""
        lock = self._locks.setdefault(follower.name, threading.Lock())
        if not lock.acquire(blocking=False):
            return 0
        try:
            return self.catch_up(follower)
        finally:
            lock.release()

    def rebuild(self, follower: Follower, progress=None, processes: int = 1, opener=None) -> Rebuilt:
        """Build the follower's tables afresh from position zero beside the live ones, then swap.

        The new tables are temporary tables of one session, named like the live
        ones: ``pg_temp`` comes first on a session's search path, so the
        follower's own ``apply`` fills them unchanged while partners' reads and
        the live follower keep using the live tables. The swap is one
        transaction: lock the tracking row (as :meth:`run_batch` does, so live
        followers and read-your-writes catch-ups wait), apply the events that
        came meanwhile, make each live table's rows equal the new table's
        (deleting and inserting only the rows that differ), set the tracking
        position, commit. Readers see the old rows until the commit and the new
        ones after it, and never wait. A crash leaves the live tables as they
        were; the temporary tables end with the session.

        ``progress(position, head, events)`` is called after every batch. Raises
        :class:`RebuildRefused` while another rebuild of ``follower`` runs. With
        ``processes`` > 1 a partitioned follower's log up to the head is split
        between that many processes, each opening its application with
        ``opener()`` (:mod:`hub.infra.partitions`); the rest goes as above.
        """
        schema = self.app.settings.database_schema
        lock = (REBUILD_LOCK, f"{schema}.{follower.name}")
        with self._session() as conn:
            (locked,) = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", lock).fetchone()
            if not locked:
                raise RebuildRefused(f"a rebuild of {follower.name} is already running; "
                                     "try again once it has finished")
            try:
                with rebuilding.few_collections():
                    return self._rebuild(conn, schema, follower, progress, processes, opener)
            finally:  # now, not whenever the server notices the session ended
                with suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", lock)

    def _rebuild(self, conn: psycopg.Connection, schema: str, follower: Follower, progress,
                 processes: int = 1, opener=None) -> Rebuilt:
        from hub.infra import partitions

        tables = follower.tables()
        for table in tables:
            rebuilding.create_beside(conn, schema, table)
        timer = rebuilding.Timer()
        conn.cursor_factory = timer.cursor
        position, applied, head, split = 0, 0, self.head(), 1
        if processes > 1 and follower.partitioned and opener is not None and head >= PARTITION_FROM * processes:
            applied = partitions.build(conn, schema, follower, head, processes, opener, progress, timer)
            position, split = head, processes
        for passes in itertools.count(1):  # again over what came meanwhile, until that is little
            on_batch = None if progress is None else functools.partial(_report, progress, head, applied)
            position, done = self.fill(conn, follower, position, head, timer, on_batch)
            applied += done
            head = self.head()
            if head - position <= follower.rebuild_batch_size or passes == 5:
                break  # the rest is applied in the swap
        rebuilding.analyze(conn, tables)
        with conn.transaction(), conn.cursor() as cur:  # the swap
            cur.execute("INSERT INTO hub_tracking (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                        (follower.name,))
            cur.execute("SELECT 1 FROM hub_tracking WHERE name = %s FOR UPDATE", (follower.name,))
            head = self.head(conn)
            rows = cur.execute(EVENTS_SQL, (position, head, follower.topics, None), binary=True).fetchall()
            if rows:
                follower.apply(cur, self._decoder.positioned(rows))
            applied += len(rows)
            changed = sum(rebuilding.swap_rows(cur, schema, table) for table in tables)
            cur.execute("UPDATE hub_tracking SET position = %s, updated_at = now() WHERE name = %s",
                        (head, follower.name))
        # Fresh statistics for the live tables, or the planner serves the first reads after a
        # rebuild of a large view with plans made for an empty one. Only the tables' owner may
        # (PostgreSQL skips them with a warning for the application role; autovacuum follows).
        for table in tables:
            conn.execute(f'ANALYZE "{schema}"."{table}"')
        if progress is not None:
            progress(head, head, applied)
        return Rebuilt(applied, changed, timer.seconds(), split)

    def fill(self, conn: psycopg.Connection, follower: Follower, position: int, head: int, timer,
             on_batch=None, part: tuple[int, int] | None = None) -> tuple[int, int]:
        """Apply the follower's events in (position, head] (of one partition: ``(part, parts)``)
        to the session's new tables, one transaction per batch; returns (position reached,
        events applied). ``on_batch(position, events so far)`` after each batch."""
        tables, applied, analyzed = follower.tables(), 0, 0
        with closing(self._read_ahead(follower, position, head, timer, part)) as batches:
            for events, reached in batches:
                if events:
                    started = time.perf_counter()
                    with conn.transaction(), conn.cursor() as cur:
                        follower.apply(cur, events)
                    timer.add("apply", time.perf_counter() - started)
                if (applied + len(events)) // 100_000 > applied // 100_000:
                    gc.collect(0)  # the objects since the last one (see rebuilding.few_collections)
                position, applied = reached, applied + len(events)
                if applied >= 2 * analyzed + follower.rebuild_batch_size:
                    # Statistics as the tables grow; ANALYZE also replans the
                    # prepared statements planned while they were small.
                    rebuilding.analyze(conn, tables)
                    analyzed = applied
                if on_batch is not None:
                    on_batch(position, applied)
        return position, applied

    def _session(self, **kwargs) -> psycopg.Connection:
        """A connection of its own (autocommit) for a rebuild."""
        from hub.infra.database import connect

        conn = connect(self.app.database_url, self.app.settings.database_schema, autocommit=True, **kwargs)
        conn.execute("SET temp_buffers = '256MB'")  # before the session's first temporary table
        # Walk the log along its primary key: a planner misled by stale statistics
        # (a log just loaded is not analyzed yet) would sort whole ranges on disk.
        conn.execute("SET enable_sort = off")
        return conn

    def _read_ahead(self, follower: Follower, position: int, head: int, timer,
                    part: tuple[int, int] | None = None) -> Iterator[tuple[list, int]]:
        """The follower's events in (position, head] as ``(batch, position after it)``.

        A thread reads and decodes the next batch while the caller applies this
        one, so the database's work on both sides overlaps with Python's.
        """
        batches: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def put(item) -> None:
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def read() -> None:
            try:
                with self._session() as conn:
                    # Small batches first, so that applying starts early, then full ones.
                    at, size = position, min(1_000, follower.rebuild_batch_size)
                    sql, params = rebuilding.partition(EVENTS_SQL, part)
                    while at < head and not stop.is_set():
                        started = time.perf_counter()
                        rows = conn.execute(sql, (at, head, follower.topics, *params, size),
                                            binary=True).fetchall()  # bytea as it is, not in hex
                        read = time.perf_counter()
                        at = rows[-1][0] if len(rows) == size else head
                        events = self._decoder.positioned(rows)
                        timer.add("read", read - started)
                        timer.add("decode", time.perf_counter() - read)
                        put((events, at))
                        size = min(2 * size, follower.rebuild_batch_size)
                put(None)
            except BaseException as exc:  # handed to the caller's thread
                put(exc)

        thread = threading.Thread(target=read, name=f"rebuild-{follower.name}", daemon=True)
        thread.start()
        try:
            while (item := batches.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()


def _report(progress, head: int, before: int, position: int, events: int) -> None:
    progress(position, head, before + events)


class Waker:
    """Wakes followers when PostgreSQL NOTIFYs a new event (poll as safety net)."""

    def __init__(self, database_url: str, channel: str = "hub_events") -> None:
        self.database_url = database_url
        self.channel = channel
        self.event = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="hub-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.event.set()

    def wait(self, timeout: float) -> bool:
        woke = self.event.wait(timeout)
        self.event.clear()
        return woke

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.database_url, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self.event.set()  # catch up on whatever came while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.event.set()
            except psycopg.Error as exc:
                log.warning("listen connection lost: %s; retrying", exc)
                self.event.set()
                time.sleep(1.0)
