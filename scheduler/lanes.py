"""A lane: one recipient platform's leased rows and the outcomes buffered for them.

The sender (``scheduler/sender.py``) sends a lane's rows one after another and
notes each outcome here; nothing is written until the sender's writer takes
the buffers: the ``Call.Made`` and ``Delivery`` events in one transaction, the
row updates (``updates``, in order) in another. Every update applies only
while this worker still holds the row's lease (``leased_by``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from hub.domain.audit import Call
from hub.domain.deliveries import Delivery
from hub.ocpi.envelope import format_datetime
from scheduler.outbox import distinct

attempt_log = logging.getLogger("hub.deliveries")  # one line per delivery attempt


@dataclass
class Lane:
    """One recipient platform's leased rows, sent one after another, and their buffered outcomes."""

    platform_id: UUID
    rows: deque
    held_until: float  # time.monotonic() before which the rows' lease surely holds
    worker_id: str  # the sender's lease holder name
    calls: list = field(default_factory=list)  # Call.Made aggregates to save
    notes: list = field(default_factory=list)  # Delivery.Parked / Collapsed aggregates to save
    updates: list = field(default_factory=list)  # (sql, params) for hub_deliveries, in order
    flushed_at: float = field(default_factory=time.monotonic)
    fresh: bool = False  # the lease was just renewed
    stop: bool = False
    done: int = 0

    def record(self, row: dict, method: str, url: str, sent_at: datetime, request_id: str | None,
               http_status: int | None, status_code: int | None, error: str | None, elapsed: float,
               *, failure: str | None = None) -> None:
        """Keep the attempt for the log (``Call.Made``, saved with the lane's next flush) and
        write its log line.

        The log line names no URL (a ``response_url`` may carry the partner's own
        secret) and no error text from the client (it quotes the URL): ``failure``
        says what went wrong in a word instead.
        """
        self.calls.append(Call(
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

    def finish(self, row: dict, state: str, *, error: str | None = None,
               status: tuple = (None, None), note: str | None = None, covered: list[dict] = (),
               sent_at: datetime | None = None, attempted: bool = True) -> None:
        """Close the row, and the queued rows ``covered`` by the current state it sent.

        A ``current`` row whose revision moved on while in flight stays pending.
        Parking, and closing rows that were not sent as queued, is a ``Delivery`` event.
        """
        self.updates.append((
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
            self.updates.append((
                "UPDATE hub_deliveries SET state = %s, delivered_at = CASE WHEN %s = 'DELIVERED' THEN now() END,"
                " note = %s WHERE id = ANY(%s) AND state = 'PENDING'", (state, state, closed, ids)))
        facts = dict(recipient=row["recipient"] or "", platform_id=str(row["platform_id"]),
                     module=row["module"], object_key=row["object_key"],
                     correlation_ids=distinct([row["correlation_id"], *(c["correlation_id"] for c in covered)]))
        if state == "FAILED":
            self.notes.append(Delivery.parked(delivery_ids=[row["id"], *ids], sent_by=None,
                                              reason=error or note or "refused", **facts))
        elif not attempted:
            self.notes.append(Delivery.collapsed(delivery_ids=[row["id"], *ids], sent_by=None,
                                                 reason=note or "not sent", **facts))
        elif ids:
            facts["correlation_ids"] = distinct(c["correlation_id"] for c in covered)
            self.notes.append(Delivery.collapsed(delivery_ids=ids, sent_by=row["id"],
                                                 reason=f"included in the current state sent by delivery {row['id']}",
                                                 **facts))

    def retry(self, row: dict, delay: float, error: str | None, http_status: int | None,
              status_code: int | None, *, sent_at: datetime | None = None, attempted: bool = True) -> None:
        """Due again after ``delay`` seconds."""
        self.updates.append((
            "UPDATE hub_deliveries SET lease_until = NULL, leased_by = NULL,"
            " next_attempt_at = now() + make_interval(secs => %s), attempts = %s,"
            " last_attempt_at = coalesce(%s, last_attempt_at), last_error = %s,"
            " last_http_status = %s, last_status_code = %s WHERE id = %s AND leased_by = %s",
            (delay, row["attempts"], sent_at if attempted else None, error, http_status, status_code,
             row["id"], self.worker_id)))

    def resend(self, row: dict, error: str | None, status: tuple, sent_at: datetime) -> None:
        """Its PATCH was refused: the row sends the object's current state next, due now."""
        self.updates.append((
            "UPDATE hub_deliveries SET kind = 'resend', lease_until = NULL, leased_by = NULL,"
            " next_attempt_at = now(), attempts = %s, last_attempt_at = %s, last_error = %s,"
            " last_http_status = %s, last_status_code = %s,"
            " note = 'PATCH refused; sending the whole object' WHERE id = %s AND leased_by = %s",
            (row["attempts"], sent_at, error, *status, row["id"], self.worker_id)))

    def pause(self, row: dict, seconds: float) -> None:
        """Not attempted; due again after ``seconds`` (its current state waits for the dispatcher)."""
        self.updates.append((
            "UPDATE hub_deliveries SET lease_until = NULL, leased_by = NULL,"
            " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s AND leased_by = %s",
            (seconds, row["id"], self.worker_id)))

    def give_back(self) -> None:
        """The rows not sent (stopping, or the platform went OFFLINE): due again as they were."""
        if self.rows:
            self.updates.append((
                "UPDATE hub_deliveries SET lease_until = NULL, leased_by = NULL"
                " WHERE id = ANY(%s) AND leased_by = %s", ([r["id"] for r in self.rows], self.worker_id)))
            self.rows.clear()
