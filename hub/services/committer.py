"""Group commit: the concurrent requests of one process share transactions and WAL flushes.

Why. The chained recorder (:mod:`hub.infra.chain`) lets one writer at a time take
notification ids and commit them (a lock held until ``COMMIT``), so that followers
never pass a gap that a slower transaction fills in later. With one transaction per
request, every request pays a lock turn and a WAL flush of its own, and concurrent
requests queue for the lock one by one.

How. Leader and followers, without a thread or a timer of its own:

- a request's :class:`~hub.services.application.UnitOfWork` collects its pending events
  (its audit record included) in its own thread, hands them to the process's
  :class:`Committer` and waits;
- the request that arrives while no batch is being written leads: it takes every
  request waiting (itself included) and writes all their events in one
  ``insert_events`` transaction (``Application._record``: the same recorder, lock and
  hash-chain trigger as a save of one request, so the log stays gap-free and chained);
- requests that arrive meanwhile wait; when the batch is written the leader wakes each
  member with its own outcome and hands the lead to the first request that arrived
  during the write, which writes the next batch. A batch is exactly what arrived while
  the previous one was written: an idle hub writes each request at once;
- each request gets the recordings of its own events (its log position), and releases
  its object locks (``UnitOfWork.hold``) only once it has its own outcome.

Failures. A batch is one transaction: when it fails nothing of it was stored, and each
member is written again alone, in arrival order (its one retry). The request at fault
gets the error it would get without group commit (an ``IntegrityError`` on an aggregate
version, which the push receivers answer by running the request again, or whatever made
its event unstorable); the others are committed.

After the commit, the rest of ``Application.save`` (snapshots, ``_notify``) runs in the
leader's thread once every member has been woken; a failure there is logged, never
turned into a failed request (the events are committed).

``HUB_GROUP_COMMIT=off`` gives every unit of work its own transaction (for measuring).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import Recording

from hub.infra.config import _switch

log = logging.getLogger(__name__)


class Pending:
    """One request's events, waiting for a batch; then its outcome."""

    __slots__ = ("error", "events", "recordings", "settled", "wake")

    def __init__(self, events: ProcessingEvent) -> None:
        self.events = events
        self.wake = threading.Event()
        self.settled = False
        self.recordings: list[Recording] = []
        self.error: BaseException | None = None

    def outcome(self) -> list[Recording]:
        if self.error is not None:
            raise self.error
        return self.recordings


def split(recordings: list[Recording], members: list[Pending]) -> list[list[Recording]]:
    """Each member's recordings, in member order (a batch's recordings follow its events)."""
    if not recordings:  # a recorder that returns no notification ids
        return [[] for _ in members]
    parts, start = [], 0
    for member in members:
        end = start + len(member.events.events)
        parts.append(recordings[start:end])
        start = end
    if start != len(recordings):
        raise AssertionError(f"{len(recordings)} recordings for {start} events")
    return parts


class Committer:
    """Writes the waiting requests of one application (one process) a batch at a time."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self._mutex = threading.Lock()
        self._waiting: list[Pending] = []
        self._writing = False
        # Batches written, the requests in them, and the batches that failed (then written
        # member by member): for tests and profiles.
        self.batches = self.requests = self.failed = 0

    def commit(self, pending: Pending) -> list[Recording]:
        """Store ``pending``'s events (with whoever else is waiting); its recordings, or its error."""
        with self._mutex:
            self._waiting.append(pending)
            lead = not self._writing
            self._writing = True
        if not lead:
            pending.wake.wait()
            if pending.settled:
                return pending.outcome()
            # Woken unsettled: the previous leader handed the lead to this request.
        with self._mutex:
            batch, self._waiting = self._waiting, []
        committed: list[tuple[ProcessingEvent, list[Recording]]] = []
        try:
            committed = self._write(batch)
        finally:
            for member in batch:
                if not member.settled:  # only if _write itself was interrupted
                    member.error = RuntimeError("the batch was interrupted before this request was stored")
                    member.settled = True
            with self._mutex:
                following = self._waiting[0] if self._waiting else None
                self._writing = following is not None
            for member in batch:
                member.wake.set()
            if following is not None:
                following.wake.set()
        self._after_commit(committed)
        return pending.outcome()

    def _write(self, batch: list[Pending]) -> list[tuple[ProcessingEvent, list[Recording]]]:
        """Write ``batch`` in one transaction; if that fails, each member alone. Settles every member."""
        self.batches += 1
        self.requests += len(batch)
        try:
            together = self._record(batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error, batch[0].settled = exc, True
                return []
            self.failed += 1
            log.info("a batch of %d requests failed (%s: %s); writing each alone",
                     len(batch), type(exc).__name__, exc)
        else:
            for member, recordings in zip(batch, split(together[1], batch), strict=True):
                member.recordings, member.settled = recordings, True
            return [together]
        committed = []
        for member in batch:
            try:
                alone = self._record([member])
            except Exception as exc:
                member.error = exc
            else:
                member.recordings = alone[1]
                committed.append(alone)
            member.settled = True
        return committed

    def _record(self, members: list[Pending]) -> tuple[ProcessingEvent, list[Recording]]:
        """One transaction holding the events of ``members``, in their order."""
        events: ProcessingEvent = ProcessingEvent()
        for member in members:
            events.events.extend(member.events.events)
            events.aggregates.update(member.events.aggregates)
        return events, self.app._record(events)

    def _after_commit(self, committed: list[tuple[ProcessingEvent, list[Recording]]]) -> None:
        """What ``Application.save`` does after recording, for what was committed."""
        for events, recordings in committed:
            try:
                self.app._take_snapshots(events)
                self.app._notify(recordings)
            except Exception:
                log.exception("after committing %d events", len(events.events))


_CREATING = threading.Lock()


def enabled(env: dict[str, str] | None = None) -> bool:
    """``HUB_GROUP_COMMIT`` (on unless set to off)."""
    return _switch(os.environ if env is None else env, "HUB_GROUP_COMMIT", True)


def committer_of(app: Application) -> Committer | None:
    """The application's committer (made on first use), or None with group commit off."""
    try:
        return app.__dict__["_group_committer"]
    except KeyError:
        with _CREATING:
            if "_group_committer" not in app.__dict__:
                app.__dict__["_group_committer"] = Committer(app) if enabled() else None
            return app.__dict__["_group_committer"]


def save(app: Application, *objs: Any) -> list[Recording]:
    """``app.save(*objs)``, sharing a transaction with concurrent callers when group commit is on."""
    committer = committer_of(app)
    if committer is None:
        return app.save(*objs)
    events: ProcessingEvent = ProcessingEvent()
    events.collect_events(*objs)
    if not events.events:
        return []
    return committer.commit(Pending(events))
