"""The sender: leases due deliveries and sends them, one lane per recipient platform.

Lanes: a recipient platform's leased rows are sent by up to ``PER_PLATFORM``
lanes, each one row after another; lanes run side by side (``LANES`` threads,
HUB_DELIVERY_LANES), so a slow or dead partner holds up nobody else. Senders
lease due rows with ``FOR UPDATE SKIP LOCKED`` for ``lease_seconds``
(HUB_LEASE_SECONDS) and send a row only while they hold its lease, so several
workers (processes or nodes) never send the same row at the same time; a dead
worker's rows are due again when its lease runs out. Every attempt is a
``Call.Made`` event.

Ordering: per (platform, recipient, module, object) only the oldest pending
row is ever leased, and only while no other row of that object is in flight,
so a PATCH never overtakes the PUT before it, while one stuck object does not
hold up others.

Collapsing: when a recipient fell behind on an object (the oldest row was
tried before or waited longer than ``COLLAPSE_AFTER_SECONDS``, e.g. the
recipient was down) and more rows for it wait, the object's current state is
sent once instead (see ``scheduler/outbox.py`` for the kinds of rows).

Recipients are only sent to while CONNECTED; an OFFLINE recipient's rows wait
for the still-alive probe, a SUSPENDED one's wait for the operator (and are
parked by the give-up sweep). What becomes of a row after a call (delivered,
retried with backoff, resent as a PUT, parked; the platform going OFFLINE
after calls that found no answer) is decided by ``scheduler/outcomes.py``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from uuid import UUID, uuid4

from psycopg.rows import dict_row

from hub.infra.client import OcpiClient, PartnerCallError, PartnerRefused
from hub.ocpi.urls import endpoint_url
from hub.services.application import Hub
from scheduler import outcomes
from scheduler.lanes import Lane
from scheduler.outbox import NotCaughtUp, Render
from scheduler.outcomes import COLLAPSIBLE, CallResult, backoff

log = logging.getLogger(__name__)

LANES = 32  # calls in flight at the same time per worker (HUB_DELIVERY_LANES)
PER_LANE = 50  # rows a platform's lanes take at a time
PER_PLATFORM = 4  # lanes (calls in flight) per recipient platform, each for other objects
LEASE_SECONDS = 60.0  # HUB_LEASE_SECONDS
LEASE_MARGIN = 10.0  # lease a lane must have left beyond its longest call, or it renews first
FLUSH_EVERY = 0.5  # seconds a lane keeps outcomes before writing them down
CATCH_UP_PAUSE = 0.2  # seconds before a current state waiting for the dispatcher is tried again
COLLAPSE_AFTER_SECONDS = 30.0


def lease_budget(call_seconds: float, lease_seconds: float) -> tuple[float, float]:
    """One call's deadline and the lease a lane must have left beyond it before a call.

    A call never outlasts the lease it started under: with a short lease (a test, or
    an operator who wants a fast takeover) a call gets at most half of it, and the lane
    renews when less than the call plus a quarter of the lease (at most ``LEASE_MARGIN``)
    is left. Both together stay below the lease, so a freshly renewed lane always sends.
    """
    return min(call_seconds, lease_seconds / 2), min(LEASE_MARGIN, lease_seconds / 4)


def lanes_for(rows: int) -> int:
    """How many lanes send a platform's leased rows: one per 4 rows, at most ``PER_PLATFORM``."""
    return max(1, min(PER_PLATFORM, rows // 4))


class Sender:
    """Leases due deliveries and sends them, one lane per recipient platform.

    ``renderers[module](row)`` returns the object's current state as
    ``(method, path, body)`` or ``(method, path, body, position)`` (``position``:
    the log position of the last change it includes), None when there is nothing
    to send, or raises :class:`NotCaughtUp`.
    ``on_unreachable(platform_id, reason)`` is called when a platform keeps not answering;
    ``on_idle()`` when a lane has finished or outcomes were written (more may be due).

    Lanes run in a thread pool, so a slow partner holds up only its own
    deliveries. A lease holds at most one row per recipient and object, so a
    platform's rows are split over up to ``PER_PLATFORM`` lanes without
    reordering anything. A lane sends its rows in id order, only while it holds their
    lease (renewed in one statement when less than the longest call plus
    ``LEASE_MARGIN`` is left). Outcomes go to one writer thread, which writes
    whatever the lanes handed over meanwhile together: the ``Call.Made`` and
    ``Delivery`` events in one transaction, then the row updates in another. A
    row's next one for the same object is leased only after that.
    """

    def __init__(self, app: Hub, client: OcpiClient, renderers: dict[str, Render],
                 on_unreachable: Callable[[UUID, str], None] | None = None,
                 on_idle: Callable[[], None] | None = None, lanes: int = LANES,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.app = app
        self.client = client
        self.renderers = renderers
        self.on_unreachable = on_unreachable
        self.on_idle = on_idle
        # Unique per sender: two workers in one process must not take each other's leases for their own.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        timeout = getattr(client, "timeout", None)  # (connect, read): one call's budget in all
        call_seconds = float(sum(timeout)) if isinstance(timeout, tuple) else 15.0
        self.lease_seconds = float(lease_seconds)
        self.call_seconds, self.lease_margin = lease_budget(call_seconds, self.lease_seconds)
        self._lanes = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="hub-lane")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a lane ended, or outcomes were written
        self._dispatching = threading.Lock()
        self._busy: dict[UUID, int] = {}  # platform -> its lanes running or queued
        self._halted: set[UUID] = set()  # platforms whose lanes stop (no answer: going OFFLINE)
        self._unanswered: dict[UUID, int] = {}  # platform -> calls in a row that found no answer
        self._handled = 0
        self._outcomes: list[tuple[list, list, list]] = []  # handed to the writer, not written yet
        self._handed_over = self._written = 0  # batches
        self._stopping = threading.Event()
        self._closing = False
        self._writer = threading.Thread(target=self._write_loop, name="hub-delivery-writer", daemon=True)
        self._writer.start()

    # Leasing and lanes -----------------------------------------------------------
    def lease(self, limit: int = PER_LANE, exclude: list | tuple = ()) -> list[dict]:
        """Lease due rows of CONNECTED recipients, except of the ``exclude`` platforms.

        A row is due when it is the oldest pending one of its recipient and object
        and no other row of that object is in flight (leased). Up to ``limit`` rows
        per platform, read in order from that platform's own pending rows: the cost does not
        grow with the backlog of a platform whose lane is busy (excluded) or not CONNECTED.
        """
        with self.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                """
                WITH due AS (
                    SELECT d.id FROM view_platforms p CROSS JOIN LATERAL (
                        SELECT d.id FROM hub_deliveries d
                        WHERE d.platform_id = p.platform_id AND d.state = 'PENDING'
                          AND d.next_attempt_at <= now()
                          AND (d.lease_until IS NULL OR d.lease_until < now())
                          AND NOT EXISTS (
                              SELECT 1 FROM hub_deliveries e
                              WHERE e.state = 'PENDING' AND e.platform_id = d.platform_id
                                AND e.module = d.module AND e.object_key = d.object_key
                                AND coalesce(e.recipient, '') = coalesce(d.recipient, '')
                                AND (e.id < d.id OR e.lease_until > now()))
                          AND EXISTS (
                              SELECT 1 FROM view_parties v
                              WHERE v.platform_id = d.platform_id AND v.status = 'CONNECTED'
                                AND (d.recipient IS NULL
                                     OR v.country_code || '/' || v.party_id || '/' || v.role = d.recipient))
                        ORDER BY d.id LIMIT %s FOR UPDATE SKIP LOCKED) d
                    WHERE NOT p.platform_id = ANY(%s::uuid[])
                      AND EXISTS (SELECT 1 FROM view_parties v
                                  WHERE v.platform_id = p.platform_id AND v.status = 'CONNECTED'))
                UPDATE hub_deliveries h SET lease_until = now() + make_interval(secs => %s), leased_by = %s
                FROM due WHERE h.id = due.id RETURNING h.*
                """,
                (limit, list(exclude), self.lease_seconds, self.worker_id),
            ).fetchall()
            platforms = dict(conn.execute(  # once per platform, not per row (decoding it: 15 % of the CPU)
                "SELECT platform_id, row_to_json(p) FROM view_platforms p WHERE platform_id = ANY(%s)",
                (list({r["platform_id"] for r in rows}),)).fetchall()) if rows else {}
        for row in rows:
            row["platform"] = platforms.get(row["platform_id"])
        return rows

    def dispatch(self) -> int:
        """Lease what is due for platforms without a running lane and start their lanes.

        Does not wait for the lanes. Returns how many rows it handed out.
        """
        handed = 0
        with self._dispatching:
            while not self._stopping.is_set():
                with self._lock:
                    busy = list(self._busy)
                leased_at = time.monotonic()
                rows = self.lease(exclude=busy)
                if not rows:
                    break
                groups: dict[UUID, list[dict]] = {}
                for row in sorted(rows, key=lambda r: r["id"]):
                    groups.setdefault(row["platform_id"], []).append(row)
                for platform_id, group in groups.items():
                    # A lease holds at most one row per recipient and object (only the oldest, and
                    # only while none of that object is in flight), so the group's rows may go out
                    # side by side: up to PER_PLATFORM lanes, each in id order.
                    count = lanes_for(len(group))
                    with self._lock:
                        self._busy[platform_id] = self._busy.get(platform_id, 0) + count
                    for share in range(count):
                        lane = Lane(platform_id, deque(group[share::count]), leased_at + self.lease_seconds,
                                    self.worker_id)
                        try:
                            self._lanes.submit(self._run, lane)
                        except RuntimeError:  # closing: give the rows back
                            lane.stop = True
                            self._run(lane)
                handed += len(rows)
        return handed

    def send_due(self) -> int:
        """Send everything due now and wait until it is sent and written; returns rows handled."""
        with self._lock:
            before = self._handled
        while not self._stopping.is_set():
            handed = self.dispatch()
            with self._changed:
                if not handed and not self._busy and self._written == self._handed_over:
                    break
                self._changed.wait(0.5)
        with self._lock:
            return self._handled - before

    def close(self) -> None:
        """Stop taking rows; running lanes end after their current call and give the rest back."""
        self._stopping.set()
        self._lanes.shutdown(wait=True)
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._writer.join(timeout=30)

    def _run(self, lane: Lane) -> None:
        try:
            while lane.rows and not lane.stop and not self._stopping.is_set() \
                    and lane.platform_id not in self._halted:
                if not lane.fresh and time.monotonic() + self.call_seconds + self.lease_margin > lane.held_until:
                    self._hand_over(lane)
                    self._renew(lane)
                    continue
                lane.fresh = False
                row = lane.rows.popleft()
                try:
                    self._send(lane, row)
                except Exception:  # never lose the row: it is tried again after a pause
                    log.exception("delivery %s failed unexpectedly", row["id"])
                    lane.retry(row, backoff(row["attempts"]), "internal error while sending", None, None,
                               attempted=False)
                lane.done += 1
                if time.monotonic() - lane.flushed_at >= FLUSH_EVERY:
                    self._hand_over(lane)
            lane.give_back()  # stopping, or the platform went OFFLINE
        except Exception:  # e.g. the database went away: the leases run out and the rows are taken again
            log.exception("delivery lane for platform %s failed", lane.platform_id)
        finally:
            self._hand_over(lane)
            with self._changed:
                left = self._busy.get(lane.platform_id, 1) - 1
                if left > 0:
                    self._busy[lane.platform_id] = left
                else:
                    self._busy.pop(lane.platform_id, None)
                    self._halted.discard(lane.platform_id)
                self._handled += lane.done
                self._changed.notify_all()
            if self.on_idle is not None:
                self.on_idle()

    def _renew(self, lane: Lane) -> None:
        """Extend the lease of the lane's unsent rows; drop those it no longer holds."""
        renewed_at = time.monotonic()
        with self.app.pool.connection() as conn:
            held = {r[0] for r in conn.execute(
                "UPDATE hub_deliveries SET lease_until = now() + make_interval(secs => %s)"
                " WHERE id = ANY(%s) AND leased_by = %s AND lease_until > now() AND state = 'PENDING'"
                " RETURNING id", (self.lease_seconds, [r["id"] for r in lane.rows], self.worker_id)).fetchall()}
        lost = [r["id"] for r in lane.rows if r["id"] not in held]
        if lost:
            log.warning("lease of deliveries %s ran out before they were sent; left to others", lost)
        lane.rows = deque(r for r in lane.rows if r["id"] in held)
        lane.held_until = renewed_at + self.lease_seconds
        lane.fresh = True

    def _hand_over(self, lane: Lane, *, wait: bool = False) -> None:
        """Give the lane's buffered outcomes to the writer (and with ``wait``, until written)."""
        lane.flushed_at = time.monotonic()
        if not (lane.calls or lane.notes or lane.updates):
            return
        with self._changed:
            self._outcomes.append((lane.calls, lane.notes, lane.updates))
            self._handed_over += 1
            mine = self._handed_over
            self._changed.notify_all()
            while wait and self._written < mine and not self._closing:
                self._changed.wait(1.0)
        lane.calls, lane.notes, lane.updates = [], [], []

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                while not self._outcomes and not self._closing:
                    self._changed.wait()
                if not self._outcomes:
                    return
                batches, self._outcomes = self._outcomes, []
                upto = self._handed_over
            try:
                self._write(batches)
            except Exception:  # the rows' leases run out and they are sent again: never lost
                log.exception("could not write the outcomes of %d delivery batches", len(batches))
            with self._changed:
                self._written = upto
                self._changed.notify_all()
            if self.on_idle is not None:
                self.on_idle()

    def _write(self, batches: list[tuple[list, list, list]]) -> None:
        """Log records in one transaction, then the rows' updates, in order, in another."""
        records = [record for calls, notes, _ in batches for record in (*calls, *notes)]
        if records:
            self.app.save(*records)
        updates = [update for _, _, lane_updates in batches for update in lane_updates]
        if updates:
            with self.app.pool.connection() as conn, conn.transaction(), conn.pipeline():
                for sql, params in updates:
                    conn.execute(sql, params)

    # One delivery ----------------------------------------------------------------
    @staticmethod
    def _behind(row: dict) -> bool:
        """The recipient fell behind on this object: the row was tried before, or waited long."""
        waited = (datetime.now(UTC) - row["created_at"]).total_seconds()
        return row["last_attempt_at"] is not None or waited > COLLAPSE_AFTER_SECONDS

    def _queued_behind(self, row: dict, upto: int | None = None) -> list[dict]:
        """The other pending rows of the row's recipient and object (up to log position ``upto``)."""
        with self.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT id, correlation_id FROM hub_deliveries WHERE state = 'PENDING' AND platform_id = %s"
                " AND coalesce(recipient, '') = coalesce(%s, '') AND module = %s AND object_key = %s"
                " AND id <> %s AND (%s::bigint IS NULL OR position <= %s) ORDER BY id",
                (row["platform_id"], row["recipient"], row["module"], row["object_key"], row["id"], upto, upto),
            ).fetchall()

    def _send(self, lane: Lane, row: dict) -> None:
        platform = row["platform"] or {}
        absolute = row["path"].startswith(("http://", "https://"))  # e.g. an eMSP's response_url
        base = None if absolute else _endpoint(platform, row["module"], row["interface"])
        token_sealed = platform.get("partner_token")
        if platform.get("state") != "REGISTERED" or not (absolute or base) or not token_sealed:
            lane.finish(row, "FAILED", error="recipient no longer registered or lacks the endpoint",
                        attempted=False)
            return
        method, path, body = row["method"], row["path"], row["body"]
        collapsible = row["module"] in COLLAPSIBLE
        current = row["kind"] != "exact" or (
            collapsible and self._behind(row) and bool(self._queued_behind(row)))
        covered: list[dict] = []  # queued rows the current state sent now includes
        upto = None
        if current:
            try:
                rendered = self.renderers[row["module"]](row)
            except NotCaughtUp:
                lane.pause(row, CATCH_UP_PAUSE)
                return
            if collapsible:
                upto = rendered[3] if rendered is not None and len(rendered) > 3 else None
                covered = self._queued_behind(row, upto)
            if rendered is None:
                lane.finish(row, "DELIVERED", note="nothing to send: the object no longer exists",
                            covered=covered, attempted=False)
                return
            method, path, body = rendered[:3]
        url = path if absolute else endpoint_url(base, path)
        row["attempts"] += 1
        sent_at = datetime.now(UTC)
        try:
            response = self.client.request(
                method, url, self.app.cipher.decrypt(token_sealed), json=body,
                headers=row["headers"] or None, correlation_id=row["correlation_id"],
                deadline=self.call_seconds,  # the whole call, so it never outlasts the lease it started under
            )
        except PartnerRefused as exc:  # the outbound guard: no request left, none ever will; parked
            lane.record(row, method, url, sent_at, exc.request_id, None, None, str(exc), exc.elapsed_ms,
                        failure="refused by the outbound guard")
            lane.finish(row, "FAILED", error=str(exc), covered=covered, sent_at=sent_at)
            return
        except PartnerCallError as exc:
            failure = outcomes.failure_kind(type(exc).__name__)
            lane.record(row, method, url, sent_at, exc.request_id, exc.http_status, None, str(exc),
                        exc.elapsed_ms, failure=failure)
            outcome = outcomes.outcome_of(CallResult(method, row["module"], row["attempts"], failure=failure,
                                                 http_status=exc.http_status, headers=exc.headers))
            if outcome.answered:
                self._answered(lane)
            lane.retry(row, outcome.delay, str(exc), exc.http_status, None, sent_at=sent_at)  # always RETRY
            if not outcome.answered:
                self._no_answer(lane, str(exc))
            return
        outcome = outcomes.outcome_of(CallResult(method, row["module"], row["attempts"],
                                             http_status=response.http_status,
                                             status_code=response.status_code, headers=response.headers))
        self._answered(lane)
        error = None if response.ok else (
            f"HTTP {response.http_status}, status {response.status_code}: "
            f"{str(response.body.get('status_message', ''))[:200]}"
        )
        lane.record(row, method, url, sent_at, response.request_id, response.http_status,
                    response.status_code, error, response.elapsed_ms,
                    failure=None if response.ok else "refused")
        status = (response.http_status, response.status_code)
        if outcome.action == outcomes.DELIVERED:
            note = (f"collapsed into the current state, with {len(covered)} later updates"
                    if current and collapsible else None)
            lane.finish(row, "DELIVERED", status=status, note=note, covered=covered, sent_at=sent_at)
        elif outcome.action == outcomes.RETRY:
            lane.retry(row, outcome.delay, error, *status, sent_at=sent_at)
        elif outcome.action == outcomes.RESEND:
            lane.resend(row, error, status, sent_at)
        else:  # the partner understood and refused (2xxx/3xxx or 4xx): parked for the operator
            lane.finish(row, "FAILED", error=error, status=status, covered=covered, sent_at=sent_at)

    def _answered(self, lane: Lane) -> None:
        """The platform answered: its count of unanswered calls restarts. Called after every call, so
        the sender's lock only when there is a count to clear (the lanes queued on it in ``fanload``)."""
        if lane.platform_id in self._unanswered:
            with self._lock:
                self._unanswered.pop(lane.platform_id, None)

    def _no_answer(self, lane: Lane, error: str) -> None:
        """Calls to the platform keep finding no answer: its parties go OFFLINE, the lane stops."""
        with self._lock:
            count, offline = outcomes.count_unanswered(self._unanswered.get(lane.platform_id, 0))
            self._unanswered[lane.platform_id] = count
        if not offline:
            return
        lane.stop = True
        with self._lock:
            self._halted.add(lane.platform_id)  # the platform's other lanes stop after their call
        if self.on_unreachable is not None:
            self._hand_over(lane, wait=True)  # the failed calls come before the parties' OFFLINE in the log
            self.on_unreachable(lane.platform_id, f"{outcomes.OFFLINE_AFTER_FAILURES} calls in a row found"
                                f" no answer: {error}")


def _endpoint(platform: dict, module: str, interface: str) -> str | None:
    for item in platform.get("endpoints") or []:
        if item.get("identifier") == module and item.get("role") == interface:
            return item.get("url")
    return None
