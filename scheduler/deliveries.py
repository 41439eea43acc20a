"""Durable deliveries to partners: the outbox, leases, lanes, retries, collapsing.

A delivery is one OCPI request the hub owes one recipient (a party on a
partner platform, or the platform itself for HubClientInfo). Dispatcher
followers create rows in the same transaction as their tracking position, so
nothing is enqueued twice or lost. Senders lease due rows with ``FOR UPDATE
SKIP LOCKED`` and send a row only while they hold its lease, so several
workers never send the same row; every attempt is a ``Call.Made`` event.

Lanes: each recipient platform's rows are sent by one lane, one after another;
lanes of different platforms run side by side (``LANES`` threads), so a slow
or dead partner holds up nobody else.

Ordering: per (platform, recipient, module, object) only the oldest pending
row is ever leased, and only while no other row of that object is in flight,
so a PATCH never overtakes the PUT before it, while one stuck object does not
hold up others.

Three kinds of rows:
- ``exact``: the request exactly as a partner pushed it (method, path, body).
  When a recipient fell behind on an object (the oldest row was tried before
  or waited longer than ``COLLAPSE_AFTER_SECONDS``, e.g. the recipient was
  down) and more rows for it wait, the sender sends the object's current state
  once instead (a PUT, or a DELETE for a deleted Tariff) and closes the rows
  that state includes. A recipient that keeps up gets every message as pushed.
  CDRs never collapse.
- ``current``: "send this object's current state" (HubClientInfo, replays); a
  newer change merges into the pending row (``revision`` goes up).
- ``resend``: a row that must now send the current state instead of what it
  carries: its PATCH was refused, or an operator requeued it (its body may be
  older than what the recipient got since).
A current state includes the changes up to a log position; only rows queued
for changes up to that position are closed with it, and it is only sent once
the dispatcher has queued every change the view holds (``NotCaughtUp``), so no
change arrives both inside the state and on its own.

A row whose ``path`` is an absolute URL (a command's ``response_url``) is sent
to that URL as is, without an endpoint from the recipient's version details.

Recipients are only sent to while CONNECTED; an OFFLINE recipient's rows wait
for the still-alive probe, a SUSPENDED one's wait for the operator (and are
parked by the give-up sweep). After ``OFFLINE_AFTER_FAILURES`` calls in a row
to a platform that found no answer (no connection, timeout), its parties are
marked OFFLINE; any answer resets the count. Answers that ask for patience
(5xx, 401/403/408/425/429, or a body that is not an OCPI envelope, such as a
proxy's error page) are retried with backoff, ``Retry-After`` honoured (up
to ``BACKOFF_CAP``), and concern only that row; a refused PATCH is replaced by
a PUT of the whole object; any other refusal parks the row as FAILED.
Parking and collapsing are ``Delivery`` events (``hub.domain.deliveries``).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb

from hub.domain.audit import Call
from hub.domain.deliveries import Delivery
from hub.domain.modules import COLLAPSIBLE  # locations, tariffs, sessions, tokens (never CDRs)
from hub.infra.client import OcpiClient, PartnerCallError
from hub.ocpi.envelope import format_datetime
from hub.services.application import Hub

log = logging.getLogger(__name__)
attempt_log = logging.getLogger("hub.deliveries")  # one line per delivery attempt

LANES = 8  # recipient platforms sent to at the same time
PER_LANE = 50  # rows a lane takes at a time
LEASE_SECONDS = 60
LEASE_MARGIN = 10.0  # lease a lane must have left beyond its longest call, or it renews first
FLUSH_EVERY = 0.5  # seconds a lane keeps outcomes before writing them down
CATCH_UP_PAUSE = 0.2  # seconds before a current state waiting for the dispatcher is tried again
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
OFFLINE_AFTER_FAILURES = 3  # calls in a row to one platform that found no answer
COLLAPSE_AFTER_SECONDS = 30.0
RETRY_HTTP = frozenset({401, 403, 408, 425, 429})  # worth another try later; 404 and other 4xx are not

DDL = [
    """CREATE TABLE IF NOT EXISTS hub_deliveries (
        id bigserial PRIMARY KEY,
        platform_id uuid NOT NULL,
        recipient text,
        kind text NOT NULL DEFAULT 'exact',
        module text NOT NULL,
        interface text NOT NULL,
        object_key text NOT NULL,
        method text NOT NULL,
        path text NOT NULL,
        body json,  -- json, not jsonb: sent with the partner's key order
        headers jsonb NOT NULL DEFAULT '{}',
        correlation_id text NOT NULL,
        position bigint NOT NULL,
        revision integer NOT NULL DEFAULT 0,
        state text NOT NULL DEFAULT 'PENDING',
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz,
        leased_by text,
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz,
        last_attempt_at timestamptz,
        last_http_status integer,
        last_status_code integer,
        last_error text,
        note text
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS hub_deliveries_collapse
        ON hub_deliveries (platform_id, (coalesce(recipient, '')), module, object_key)
        WHERE state = 'PENDING' AND kind = 'current'""",
    """CREATE INDEX IF NOT EXISTS hub_deliveries_pending
        ON hub_deliveries (platform_id, module, object_key, id) WHERE state = 'PENDING'""",
    """CREATE INDEX IF NOT EXISTS hub_deliveries_due
        ON hub_deliveries (next_attempt_at) WHERE state = 'PENDING'""",
    "CREATE INDEX IF NOT EXISTS hub_deliveries_state ON hub_deliveries (state, platform_id)",
    """CREATE INDEX IF NOT EXISTS hub_deliveries_lane
        ON hub_deliveries (platform_id, id) WHERE state = 'PENDING'""",
]


@dataclass(frozen=True)
class Outgoing:
    """What a dispatcher asks to send."""

    platform_id: UUID
    module: str
    interface: str
    object_key: str
    method: str
    path: str
    correlation_id: str
    position: int
    recipient: str | None = None
    body: Any = None
    headers: dict | None = None
    kind: str = "exact"


def enqueue(cur: psycopg.Cursor, item: Outgoing) -> None:
    """Add a delivery inside the caller's transaction."""
    params = (item.platform_id, item.recipient, item.kind, item.module, item.interface,
              item.object_key, item.method, item.path,
              None if item.body is None else Json(item.body), Jsonb(item.headers or {}),
              item.correlation_id, item.position)
    insert = (
        "INSERT INTO hub_deliveries (platform_id, recipient, kind, module, interface, object_key,"
        " method, path, body, headers, correlation_id, position)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
    )
    if item.kind == "current":
        insert += (
            " ON CONFLICT (platform_id, (coalesce(recipient, '')), module, object_key)"
            " WHERE state = 'PENDING' AND kind = 'current'"
            " DO UPDATE SET position = excluded.position, revision = hub_deliveries.revision + 1,"
            " correlation_id = excluded.correlation_id"
        )
    cur.execute(insert, params)


def backoff(attempts: int) -> float:
    """Exponential backoff with jitter, capped."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))


Render = Callable[[dict], "tuple | None"]


class NotCaughtUp(Exception):
    """A renderer's view holds changes whose deliveries are not queued yet: try again shortly."""


@dataclass
class _Lane:
    """One recipient platform's leased rows, sent one after another, and their buffered outcomes."""

    platform_id: UUID
    rows: deque
    held_until: float  # time.monotonic() before which the rows' lease surely holds
    calls: list = field(default_factory=list)  # Call.Made aggregates to save
    notes: list = field(default_factory=list)  # Delivery.Parked / Collapsed aggregates to save
    updates: list = field(default_factory=list)  # (sql, params) for hub_deliveries, in order
    flushed_at: float = field(default_factory=time.monotonic)
    fresh: bool = False  # the lease was just renewed
    stop: bool = False
    done: int = 0


class Sender:
    """Leases due deliveries and sends them, one lane per recipient platform.

    ``renderers[module](row)`` returns the object's current state as
    ``(method, path, body)`` or ``(method, path, body, position)`` (``position``:
    the log position of the last change it includes), None when there is nothing
    to send, or raises :class:`NotCaughtUp`.
    ``on_unreachable(platform_id, reason)`` is called when a platform keeps not answering;
    ``on_idle()`` when a lane has finished or outcomes were written (more may be due).

    Lanes run in a small thread pool, so a slow partner holds up only its own
    deliveries. A lane sends its rows in id order, only while it holds their
    lease (renewed in one statement when less than the longest call plus
    ``LEASE_MARGIN`` is left). Outcomes go to one writer thread, which writes
    whatever the lanes handed over meanwhile together: the ``Call.Made`` and
    ``Delivery`` events in one transaction, then the row updates in another. A
    row's next one for the same object is leased only after that.
    """

    def __init__(self, app: Hub, client: OcpiClient, renderers: dict[str, Render],
                 on_unreachable: Callable[[UUID, str], None] | None = None,
                 on_idle: Callable[[], None] | None = None, lanes: int = LANES) -> None:
        self.app = app
        self.client = client
        self.renderers = renderers
        self.on_unreachable = on_unreachable
        self.on_idle = on_idle
        # Unique per sender: two workers in one process must not take each other's leases for their own.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        timeout = getattr(client, "timeout", None)  # (connect, read): one call's budget in all
        self.call_seconds = float(sum(timeout)) if isinstance(timeout, tuple) else 15.0
        self._lanes = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="hub-lane")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a lane ended, or outcomes were written
        self._dispatching = threading.Lock()
        self._busy: set[UUID] = set()  # platforms with a lane running or queued
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
        per platform, read in order from that platform's own pending rows: the cost
        does not grow with the backlog of a platform whose lane is busy (excluded)
        or that is not CONNECTED.
        """
        with self.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
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
                FROM due WHERE h.id = due.id
                RETURNING h.*, (SELECT row_to_json(p) FROM view_platforms p
                                WHERE p.platform_id = h.platform_id) AS platform
                """,
                (limit, list(exclude), LEASE_SECONDS, self.worker_id),
            ).fetchall()

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
                lanes: dict[UUID, list[dict]] = {}
                for row in sorted(rows, key=lambda r: r["id"]):
                    lanes.setdefault(row["platform_id"], []).append(row)
                for platform_id, group in lanes.items():
                    with self._lock:
                        self._busy.add(platform_id)
                    lane = _Lane(platform_id, deque(group), leased_at + LEASE_SECONDS)
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

    def _run(self, lane: _Lane) -> None:
        try:
            while lane.rows and not lane.stop and not self._stopping.is_set():
                if not lane.fresh and time.monotonic() + self.call_seconds + LEASE_MARGIN > lane.held_until:
                    self._hand_over(lane)
                    self._renew(lane)
                    continue
                lane.fresh = False
                row = lane.rows.popleft()
                try:
                    self._send(lane, row)
                except Exception:  # never lose the row: it is tried again after a pause
                    log.exception("delivery %s failed unexpectedly", row["id"])
                    self._retry(lane, row, "internal error while sending", None, None, attempted=False)
                lane.done += 1
                if time.monotonic() - lane.flushed_at >= FLUSH_EVERY:
                    self._hand_over(lane)
            if lane.rows:  # stopping, or the platform went OFFLINE: not attempted, due again as they were
                lane.updates.append((
                    "UPDATE hub_deliveries SET lease_until = NULL, leased_by = NULL"
                    " WHERE id = ANY(%s) AND leased_by = %s", ([r["id"] for r in lane.rows], self.worker_id)))
                lane.rows.clear()
        except Exception:  # e.g. the database went away: the leases run out and the rows are taken again
            log.exception("delivery lane for platform %s failed", lane.platform_id)
        finally:
            self._hand_over(lane)
            with self._changed:
                self._busy.discard(lane.platform_id)
                self._handled += lane.done
                self._changed.notify_all()
            if self.on_idle is not None:
                self.on_idle()

    def _renew(self, lane: _Lane) -> None:
        """Extend the lease of the lane's unsent rows; drop those it no longer holds."""
        renewed_at = time.monotonic()
        with self.app.pool.connection() as conn:
            held = {r[0] for r in conn.execute(
                "UPDATE hub_deliveries SET lease_until = now() + make_interval(secs => %s)"
                " WHERE id = ANY(%s) AND leased_by = %s AND lease_until > now() AND state = 'PENDING'"
                " RETURNING id", (LEASE_SECONDS, [r["id"] for r in lane.rows], self.worker_id)).fetchall()}
        lost = [r["id"] for r in lane.rows if r["id"] not in held]
        if lost:
            log.warning("lease of deliveries %s ran out before they were sent; left to others", lost)
        lane.rows = deque(r for r in lane.rows if r["id"] in held)
        lane.held_until = renewed_at + LEASE_SECONDS
        lane.fresh = True

    def _hand_over(self, lane: _Lane, *, wait: bool = False) -> None:
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

    def _send(self, lane: _Lane, row: dict) -> None:
        platform = row["platform"] or {}
        absolute = row["path"].startswith(("http://", "https://"))  # e.g. an eMSP's response_url
        base = None if absolute else _endpoint(platform, row["module"], row["interface"])
        token_sealed = platform.get("partner_token")
        if platform.get("state") != "REGISTERED" or not (absolute or base) or not token_sealed:
            self._finish(lane, row, "FAILED", error="recipient no longer registered or lacks the endpoint",
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
                lane.updates.append((
                    "UPDATE hub_deliveries SET lease_until = NULL, leased_by = NULL,"
                    " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s AND leased_by = %s",
                    (CATCH_UP_PAUSE, row["id"], self.worker_id)))
                return
            if collapsible:
                upto = rendered[3] if rendered is not None and len(rendered) > 3 else None
                covered = self._queued_behind(row, upto)
            if rendered is None:
                self._finish(lane, row, "DELIVERED", note="nothing to send: the object no longer exists",
                             covered=covered, attempted=False)
                return
            method, path, body = rendered[:3]
        url = path if absolute else base.rstrip("/") + path
        row["attempts"] += 1
        sent_at = datetime.now(UTC)
        try:
            response = self.client.request(
                method, url, self.app.cipher.decrypt(token_sealed), json=body,
                headers=row["headers"] or None, correlation_id=row["correlation_id"],
                deadline=self.call_seconds,  # the whole call, so it never outlasts the lease it started under
            )
        except PartnerCallError as exc:
            self._record(lane, row, method, url, sent_at, exc.request_id, exc.http_status, None, str(exc),
                         exc.elapsed_ms, failure=_failure_kind(exc))
            if exc.http_status is None:  # no answer at all: the platform may be down
                self._retry(lane, row, str(exc), None, None, sent_at=sent_at)
                self._no_answer(lane, str(exc))
            else:  # an answer that is not OCPI (a proxy's error page, say): usually passes, try again
                self._answered(lane)
                self._retry(lane, row, str(exc), exc.http_status, None,
                            _retry_after(getattr(exc, "headers", None) or {}), sent_at=sent_at)
            return
        self._answered(lane)
        error = None if response.ok else (
            f"HTTP {response.http_status}, status {response.status_code}: "
            f"{str(response.body.get('status_message', ''))[:200]}"
        )
        self._record(lane, row, method, url, sent_at, response.request_id, response.http_status,
                     response.status_code, error, response.elapsed_ms,
                     failure=None if response.ok else "refused")
        status = (response.http_status, response.status_code)
        if response.ok:
            note = (f"collapsed into the current state, with {len(covered)} later updates"
                    if current and collapsible else None)
            self._finish(lane, row, "DELIVERED", status=status, note=note, covered=covered, sent_at=sent_at)
        elif response.http_status >= 500 or response.http_status in RETRY_HTTP:
            self._retry(lane, row, error, *status, _retry_after(response.headers), sent_at=sent_at)
        elif method == "PATCH" and collapsible:
            # OCPI: when a PATCH fails (e.g. 404: the receiver lacks the object), send the whole object.
            lane.updates.append((
                "UPDATE hub_deliveries SET kind = 'resend', lease_until = NULL, leased_by = NULL,"
                " next_attempt_at = now(), attempts = %s, last_attempt_at = %s, last_error = %s,"
                " last_http_status = %s, last_status_code = %s,"
                " note = 'PATCH refused; sending the whole object' WHERE id = %s AND leased_by = %s",
                (row["attempts"], sent_at, error, *status, row["id"], self.worker_id)))
        else:
            # The partner understood and refused (2xxx/3xxx or 4xx): park it for the operator.
            self._finish(lane, row, "FAILED", error=error, status=status, covered=covered, sent_at=sent_at)

    def _answered(self, lane: _Lane) -> None:
        with self._lock:
            self._unanswered.pop(lane.platform_id, None)

    def _no_answer(self, lane: _Lane, error: str) -> None:
        """Calls to the platform keep finding no answer: its parties go OFFLINE, the lane stops."""
        with self._lock:
            count = self._unanswered.get(lane.platform_id, 0) + 1
            self._unanswered[lane.platform_id] = 0 if count >= OFFLINE_AFTER_FAILURES else count
        if count < OFFLINE_AFTER_FAILURES:
            return
        lane.stop = True
        if self.on_unreachable is not None:
            self._hand_over(lane, wait=True)  # the failed calls come before the parties' OFFLINE in the log
            self.on_unreachable(lane.platform_id, f"{count} calls in a row found no answer: {error}")

    def _record(self, lane, row, method, url, sent_at, request_id, http_status, status_code, error,
                elapsed, *, failure: str | None = None) -> None:
        """Keep the attempt for the log (``Call.Made``, saved with the lane's next flush) and
        write its log line.

        The log line names no URL (a ``response_url`` may carry the partner's own
        secret) and no error text from the client (it quotes the URL): ``failure``
        says what went wrong in a word instead.
        """
        lane.calls.append(Call(
            platform_id=str(row["platform_id"]), purpose="delivery", module=row["module"],
            method=method, url=url, request_id=request_id, correlation_id=row["correlation_id"],
            http_status=http_status, status_code=status_code, error=error, sent_at=format_datetime(sent_at),
            duration_ms=elapsed, delivery_id=row["id"], attempt=row["attempts"],
        ))
        delivered = error is None
        attempt_log.log(
            logging.INFO if delivered else logging.WARNING,
            "delivery %s attempt %s: %s", row["id"], row["attempts"], "delivered" if delivered else "failed",
            extra={"request_id": request_id, "correlation_id": row["correlation_id"],
                   "delivery_id": row["id"], "attempt": row["attempts"], "recipient": row["recipient"],
                   "platform_id": str(row["platform_id"]), "ocpi_module": row["module"], "method": method,
                   "outcome": "delivered" if delivered else "failed",
                   "failure": None if delivered else failure, "http_status": http_status,
                   "status_code": status_code, "duration_ms": round(float(elapsed), 1)},
        )

    def _finish(self, lane: _Lane, row: dict, state: str, *, error: str | None = None,
                status: tuple = (None, None), note: str | None = None, covered: list[dict] = (),
                sent_at: datetime | None = None, attempted: bool = True) -> None:
        """Close the row, and the queued rows ``covered`` by the current state it sent.

        A ``current`` row whose revision moved on while in flight stays pending.
        Parking, and closing rows that were not sent as queued, is a ``Delivery`` event.
        """
        lane.updates.append((
            "UPDATE hub_deliveries SET state = CASE WHEN revision = %s THEN %s ELSE state END,"
            " delivered_at = CASE WHEN revision = %s AND %s = 'DELIVERED' THEN now() END,"
            " lease_until = NULL, leased_by = NULL, attempts = %s,"
            " last_attempt_at = coalesce(%s, last_attempt_at), last_error = %s, last_http_status = %s,"
            " last_status_code = %s, note = %s WHERE id = %s AND leased_by = %s",
            (row["revision"], state, row["revision"], state, row["attempts"], sent_at if attempted else None,
             error, *status, note, row["id"], self.worker_id)))
        ids = [c["id"] for c in covered]
        if ids:
            closed = (f"included in the current state sent by delivery {row['id']}" if attempted
                      else f"closed with delivery {row['id']}: {note or error}")
            lane.updates.append((
                "UPDATE hub_deliveries SET state = %s, delivered_at = CASE WHEN %s = 'DELIVERED' THEN now() END,"
                " note = %s WHERE id = ANY(%s) AND state = 'PENDING'", (state, state, closed, ids)))
        facts = dict(recipient=row["recipient"] or "", platform_id=str(row["platform_id"]),
                     module=row["module"], object_key=row["object_key"],
                     correlation_ids=_distinct([row["correlation_id"], *(c["correlation_id"] for c in covered)]))
        if state == "FAILED":
            lane.notes.append(Delivery.parked(delivery_ids=[row["id"], *ids], sent_by=None,
                                              reason=error or note or "refused", **facts))
        elif not attempted:
            lane.notes.append(Delivery.collapsed(delivery_ids=[row["id"], *ids], sent_by=None,
                                                 reason=note or "not sent", **facts))
        elif ids:
            facts["correlation_ids"] = _distinct(c["correlation_id"] for c in covered)
            lane.notes.append(Delivery.collapsed(delivery_ids=ids, sent_by=row["id"],
                                                 reason=f"included in the current state sent by delivery {row['id']}",
                                                 **facts))

    def _retry(self, lane: _Lane, row: dict, error: str | None, http_status: int | None,
               status_code: int | None, retry_after: float | None = None, *,
               sent_at: datetime | None = None, attempted: bool = True) -> None:
        delay = max(backoff(row["attempts"]), retry_after or 0.0)
        lane.updates.append((
            "UPDATE hub_deliveries SET lease_until = NULL, leased_by = NULL,"
            " next_attempt_at = now() + make_interval(secs => %s), attempts = %s,"
            " last_attempt_at = coalesce(%s, last_attempt_at), last_error = %s,"
            " last_http_status = %s, last_status_code = %s WHERE id = %s AND leased_by = %s",
            (delay, row["attempts"], sent_at if attempted else None, error, http_status, status_code,
             row["id"], self.worker_id)))

    # Operator actions ------------------------------------------------------------
    def give_up(self, older_than_seconds: float) -> int:
        """Park deliveries that could not be made within the give-up age (one event per object)."""
        reason = f"gave up after {int(older_than_seconds)} s"
        with self.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "UPDATE hub_deliveries SET state = 'FAILED', lease_until = NULL, leased_by = NULL,"
                " note = %s WHERE state = 'PENDING' AND created_at < now() - make_interval(secs => %s)"
                " AND (lease_until IS NULL OR lease_until < now())"
                " RETURNING id, platform_id, recipient, module, object_key, correlation_id, last_error",
                (reason, older_than_seconds),
            ).fetchall()
        groups: dict[tuple, list[dict]] = {}
        for row in sorted(rows, key=lambda r: r["id"]):
            key = (str(row["platform_id"]), row["recipient"] or "", row["module"], row["object_key"])
            groups.setdefault(key, []).append(row)
        if groups:
            self.app.save(*(
                Delivery.parked(
                    delivery_ids=[r["id"] for r in group], platform_id=platform_id, recipient=recipient,
                    module=module, object_key=object_key, sent_by=None,
                    reason=reason + (f"; last error: {group[-1]['last_error']}" if group[-1]["last_error"] else ""),
                    correlation_ids=_distinct([r["correlation_id"] for r in group]))
                for (platform_id, recipient, module, object_key), group in groups.items()))
        return len(rows)


def _distinct(values) -> list:
    return list(dict.fromkeys(v for v in values if v))


def _failure_kind(exc: PartnerCallError) -> str:
    """``PartnerTimeout`` -> ``timeout``: what went wrong, without the message (it names the URL)."""
    name = type(exc).__name__.removeprefix("Partner")
    return {"Timeout": "timeout", "Unreachable": "unreachable", "BadResponse": "not an OCPI answer"}.get(
        name, "call failed")


def _endpoint(platform: dict, module: str, interface: str) -> str | None:
    for item in platform.get("endpoints") or []:
        if item.get("identifier") == module and item.get("role") == interface:
            return item.get("url")
    return None


def _retry_after(headers: dict[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return min(float(value), BACKOFF_CAP)
            except ValueError:
                return None
    return None


def list_deliveries(pool, *, failed_only: bool = False, party: str | None = None,
                    limit: int = 100) -> list[dict]:
    """Deliveries for operators, newest first. ``party``: ``CC/PID`` of the recipient."""
    where, params = [], []
    if failed_only:
        where.append("d.state = 'FAILED'")
    if party:
        where.append("(d.recipient LIKE %s OR EXISTS (SELECT 1 FROM view_parties v WHERE"
                     " v.platform_id = d.platform_id AND v.country_code || '/' || v.party_id = %s))")
        params += [party.upper() + "/%", party.upper()]
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT d.id, d.state, d.module, d.method, d.object_key, coalesce(d.recipient,"
            " (SELECT string_agg(v.country_code || '/' || v.party_id, ',') FROM view_parties v"
            "  WHERE v.platform_id = d.platform_id)) AS recipient, d.attempts, d.created_at,"
            " d.next_attempt_at, d.delivered_at, d.last_http_status, d.last_status_code, d.last_error,"
            f" d.note, d.correlation_id FROM hub_deliveries d{clause} ORDER BY d.id DESC LIMIT %s",
            [*params, limit],
        ).fetchall()


def requeue(pool, *, ids: list[int] | None = None, party: str | None = None) -> list[int]:
    """Put failed deliveries back in the queue, due now. Returns the requeued ids.

    A requeued Location, Tariff, Session or Token (or HubClientInfo) row sends the
    object's current state, not the body it held: newer changes may have reached the
    recipient since it was parked. CDRs and command results are sent again as they were.
    """
    where, params = ["state = 'FAILED'"], []
    if ids:
        where.append("id = ANY(%s)")
        params.append(ids)
    if party:
        where.append("(recipient LIKE %s OR platform_id IN (SELECT platform_id FROM view_parties"
                     " WHERE country_code || '/' || party_id = %s))")
        params += [party.upper() + "/%", party.upper()]
    with pool.connection() as conn:
        rows = conn.execute(
            "UPDATE hub_deliveries SET state = 'PENDING', next_attempt_at = now(), attempts = 0,"
            " lease_until = NULL, leased_by = NULL,"
            " kind = CASE WHEN kind = 'current' OR module = ANY(%s) THEN 'resend' ELSE kind END,"
            " note = 'requeued by an operator' WHERE " + " AND ".join(where)
            + " RETURNING id", [sorted(COLLAPSIBLE), *params],
        ).fetchall()
    return sorted(r[0] for r in rows)


UNKNOWN_PARTY = "unknown"


def first_party_sql(platform_id: str) -> str:
    """SQL for the party that platform-wide deliveries (no ``recipient``: HubClientInfo)
    count for in ``hub deliveries stats`` and ``/metrics``: the platform's first party
    as ``CC/PID/ROLE``, in country code, party id, role order."""
    return ("(SELECT v.country_code || '/' || v.party_id || '/' || v.role FROM view_parties v"
            f" WHERE v.platform_id = {platform_id} ORDER BY v.country_code, v.party_id, v.role LIMIT 1)")


def party_sql(alias: str = "d") -> str:
    """SQL for the ``CC/PID/ROLE`` a ``hub_deliveries`` row counts for (see :func:`first_party_sql`)."""
    return f"coalesce({alias}.recipient, {first_party_sql(alias + '.platform_id')}, '{UNKNOWN_PARTY}')"


def stats(pool) -> list[dict]:
    """Per recipient party (``CC/PID/ROLE``): queue depth, oldest pending age, retries,
    failures, failure rate (parked / finished)."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT {party_sql("d")} AS party,
                   count(*) FILTER (WHERE d.state = 'PENDING') AS pending,
                   coalesce(round(extract(epoch FROM now() - min(d.created_at)
                       FILTER (WHERE d.state = 'PENDING'))::numeric, 1), 0) AS oldest_pending_s,
                   coalesce(sum(greatest(d.attempts - 1, 0)) FILTER (WHERE d.state = 'PENDING'), 0) AS retries,
                   count(*) FILTER (WHERE d.state = 'DELIVERED') AS delivered,
                   count(*) FILTER (WHERE d.state = 'FAILED') AS failed,
                   round(count(*) FILTER (WHERE d.state = 'FAILED')::numeric
                         / greatest(count(*) FILTER (WHERE d.state <> 'PENDING'), 1), 4) AS failure_rate
            FROM hub_deliveries d GROUP BY 1 ORDER BY 1
            """
        ).fetchall()
