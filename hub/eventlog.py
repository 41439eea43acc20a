"""Following the event log: the one mechanism behind projections and the dispatcher.

A :class:`Follower` reads the notification log (``hub_events`` in
``notification_id`` order) from its tracking position and applies a batch of
events in **one transaction together with its new tracking position**, so a
crash never applies an event twice or skips one. The tracking row is locked
``FOR UPDATE`` for the batch, so any number of processes (web workers catching
up for read-your-writes, several ``hub worker`` nodes) can drive the same
follower without doing the same work twice.

Gap safety: every insert into the log holds one transaction-level lock from
before it takes notification ids until it commits (the hub's recorder, see
:mod:`hub.audit_chain`), so ids commit in order; the highest committed id
therefore bounds a complete prefix of the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

if TYPE_CHECKING:
    from hub.application import Hub

log = logging.getLogger(__name__)

TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS hub_tracking (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""


class Follower:
    """Base class: subclasses set ``name`` and ``event_classes`` and implement ``apply``."""

    name: str = ""
    event_classes: Sequence[type] = ()
    batch_size: int = 500

    @property
    def topics(self) -> list[str]:
        return [get_topic(cls) for cls in self.event_classes]

    def ddl(self) -> list[str]:
        """Idempotent CREATE statements for the follower's own tables."""
        return []

    def reset(self, cur: psycopg.Cursor) -> None:
        """Empty the follower's tables (before a rebuild from position zero)."""

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        """Apply ``(position, domain_event)`` pairs inside the caller's transaction."""
        raise NotImplementedError


class EventLog:
    """Reads the hub's notification log and drives followers over it."""

    def __init__(self, app: Hub) -> None:
        self.app = app
        self.pool = app.pool
        self._locks: dict[str, threading.Lock] = {}

    # Reading ---------------------------------------------------------------
    def head(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT max(notification_id) FROM hub_events").fetchone()
        return int(row[0] or 0)

    def decode(self, row: Sequence[Any]) -> Any:
        originator_id, originator_version, topic, state = row
        return self.app.mapper.to_domain_event(
            StoredEvent(originator_id, originator_version, topic, bytes(state))
        )

    def position(self, name: str) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT position FROM hub_tracking WHERE name = %s", (name,)).fetchone()
        return int(row[0]) if row else 0

    # Following --------------------------------------------------------------
    def run_batch(self, follower: Follower, until: int | None = None) -> tuple[int, bool]:
        """Apply one batch. Returns (events applied, caught up)."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO hub_tracking (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                (follower.name,),
            )
            (position,) = conn.execute(
                "SELECT position FROM hub_tracking WHERE name = %s FOR UPDATE", (follower.name,)
            ).fetchone()
            if until is not None and position >= until:
                return 0, True
            (head,) = conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()
            if until is not None:
                head = min(head, until)
            if head <= position:
                return 0, True
            topics = follower.topics
            rows = conn.execute(
                "SELECT notification_id, originator_id, originator_version, topic, state"
                " FROM hub_events WHERE notification_id > %s AND notification_id <= %s"
                " AND topic = ANY(%s) ORDER BY notification_id LIMIT %s",
                (position, head, topics, follower.batch_size),
            ).fetchall()
            full = len(rows) == follower.batch_size
            new_position = rows[-1][0] if full else head
            if rows:
                events = [(row[0], self.decode(row[1:])) for row in rows]
                with conn.cursor() as cur:
                    follower.apply(cur, events)
            conn.execute(
                "UPDATE hub_tracking SET position = %s, updated_at = now() WHERE name = %s",
                (new_position, follower.name),
            )
            return len(rows), not full

    def catch_up(self, follower: Follower, until: int | None = None) -> int:
        """Run batches until the follower reached ``until`` (or the head)."""
        done = 0
        while True:
            applied, caught_up = self.run_batch(follower, until)
            done += applied
            if caught_up:
                return done

    def try_catch_up(self, follower: Follower) -> int:
        """Like :meth:`catch_up` but skips if this process is already running it."""
        lock = self._locks.setdefault(follower.name, threading.Lock())
        if not lock.acquire(blocking=False):
            return 0
        try:
            return self.catch_up(follower)
        finally:
            lock.release()

    def rebuild(self, follower: Follower, progress=None) -> int:
        """Empty the follower's tables and apply the whole log again."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO hub_tracking (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                (follower.name,),
            )
            conn.execute("SELECT 1 FROM hub_tracking WHERE name = %s FOR UPDATE", (follower.name,))
            with conn.cursor() as cur:
                follower.reset(cur)
            conn.execute("UPDATE hub_tracking SET position = 0 WHERE name = %s", (follower.name,))
        head = self.head()
        done = 0
        while True:
            applied, caught_up = self.run_batch(follower)
            done += applied
            if progress is not None:
                progress(self.position(follower.name), head)
            if caught_up:
                return done


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


def all_topics(followers: Iterable[Follower]) -> set[str]:
    return {topic for follower in followers for topic in follower.topics}
