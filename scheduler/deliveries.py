"""Durable deliveries to partners: the outbox, leases, retries with backoff.

A delivery is one OCPI request the hub owes a partner platform. Rows are
created by dispatcher followers in the same transaction as their tracking
position, so nothing is enqueued twice or lost. Senders lease due rows with
``FOR UPDATE SKIP LOCKED`` (several workers never send the same row at the
same time), deliver them strictly in order per (platform, module, object), and
record every attempt as a ``Call.Made`` event.

A row with ``body IS NULL`` is *collapsible*: it means "send the object's
current state", so a newer change for the same object merges into the pending
row (``revision`` goes up) instead of queuing a stale intermediate update.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hub.application import Hub
from hub.domain.audit import Call
from hub.ocpi.client import OcpiClient, PartnerCallError
from hub.ocpi.envelope import format_datetime

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0

DDL = [
    """CREATE TABLE IF NOT EXISTS hub_deliveries (
        id bigserial PRIMARY KEY,
        platform_id uuid NOT NULL,
        module text NOT NULL,
        interface text NOT NULL,
        object_key text NOT NULL,
        method text NOT NULL,
        path text NOT NULL,
        body jsonb,
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
        last_error text
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS hub_deliveries_collapse
        ON hub_deliveries (platform_id, module, object_key)
        WHERE state = 'PENDING' AND body IS NULL""",
    """CREATE INDEX IF NOT EXISTS hub_deliveries_pending
        ON hub_deliveries (platform_id, module, object_key, id) WHERE state = 'PENDING'""",
    """CREATE INDEX IF NOT EXISTS hub_deliveries_due
        ON hub_deliveries (next_attempt_at) WHERE state = 'PENDING'""",
]


@dataclass(frozen=True)
class Outgoing:
    """What a follower asks to send."""

    platform_id: UUID
    module: str
    interface: str
    object_key: str
    method: str
    path: str
    correlation_id: str
    position: int
    body: Any = None  # None: build the object's current state when sending
    headers: dict | None = None


def enqueue(cur: psycopg.Cursor, item: Outgoing) -> None:
    """Add a delivery inside the caller's transaction (collapsing current-state rows)."""
    params = (item.platform_id, item.module, item.interface, item.object_key, item.method,
              item.path, None if item.body is None else Jsonb(item.body),
              Jsonb(item.headers or {}), item.correlation_id, item.position)
    if item.body is None:
        cur.execute(
            "INSERT INTO hub_deliveries (platform_id, module, interface, object_key, method, path,"
            " body, headers, correlation_id, position) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (platform_id, module, object_key) WHERE state = 'PENDING' AND body IS NULL"
            " DO UPDATE SET position = excluded.position, revision = hub_deliveries.revision + 1,"
            " correlation_id = excluded.correlation_id, method = excluded.method,"
            " path = excluded.path",
            params,
        )
    else:
        cur.execute(
            "INSERT INTO hub_deliveries (platform_id, module, interface, object_key, method, path,"
            " body, headers, correlation_id, position) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            params,
        )


def backoff(attempts: int) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))


class Sender:
    """Leases due deliveries and sends them. ``render`` builds current-state bodies."""

    def __init__(self, app: Hub, client: OcpiClient, renderers: dict[str, Any]) -> None:
        self.app = app
        self.client = client
        self.renderers = renderers
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    def lease(self, limit: int = 50) -> list[dict]:
        with self.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                """
                WITH due AS (
                    SELECT d.id FROM hub_deliveries d
                    WHERE d.state = 'PENDING' AND d.next_attempt_at <= now()
                      AND (d.lease_until IS NULL OR d.lease_until < now())
                      AND NOT EXISTS (
                          SELECT 1 FROM hub_deliveries e
                          WHERE e.state = 'PENDING' AND e.platform_id = d.platform_id
                            AND e.module = d.module AND e.object_key = d.object_key AND e.id < d.id)
                    ORDER BY d.id LIMIT %s FOR UPDATE SKIP LOCKED)
                UPDATE hub_deliveries h SET lease_until = now() + make_interval(secs => %s),
                    leased_by = %s, attempts = h.attempts + 1, last_attempt_at = now()
                FROM due WHERE h.id = due.id
                RETURNING h.*, (SELECT row_to_json(p) FROM view_platforms p
                                WHERE p.platform_id = h.platform_id) AS platform
                """,
                (limit, LEASE_SECONDS, self.worker_id),
            ).fetchall()

    def send_due(self) -> int:
        sent = 0
        while True:
            rows = self.lease()
            if not rows:
                return sent
            for row in rows:
                self._send(row)
                sent += 1

    def _send(self, row: dict) -> None:
        platform = row["platform"] or {}
        base = _endpoint(platform, row["module"], row["interface"])
        token_sealed = platform.get("partner_token")
        if platform.get("state") != "REGISTERED" or not base or not token_sealed:
            self._finish(row, "FAILED", error="recipient no longer registered or lacks the endpoint")
            return
        body = row["body"]
        if body is None:
            renderer = self.renderers.get(row["module"])
            body = renderer(row) if renderer else None
            if body is None:
                self._finish(row, "DELIVERED", error="nothing to send: object no longer exists")
                return
        url = base.rstrip("/") + row["path"]
        sent_at = format_datetime(datetime.now(UTC))
        try:
            response = self.client.request(
                row["method"], url, self.app.cipher.decrypt(token_sealed), json=body,
                headers=row["headers"] or None, correlation_id=row["correlation_id"],
            )
        except PartnerCallError as exc:
            self._record(row, url, sent_at, exc.request_id, exc.http_status, None, str(exc), exc.elapsed_ms)
            self._retry(row, str(exc), exc.http_status, None)
            return
        error = None if response.ok else (
            f"HTTP {response.http_status}, status {response.status_code}: "
            f"{str(response.body.get('status_message', ''))[:200]}"
        )
        self._record(row, url, sent_at, response.request_id, response.http_status,
                     response.status_code, error, response.elapsed_ms)
        if response.ok:
            self._finish(row, "DELIVERED", http_status=response.http_status,
                         status_code=response.status_code)
        elif response.http_status == 429 or response.http_status >= 500:
            retry_after = _retry_after(response.headers)
            self._retry(row, error, response.http_status, response.status_code, retry_after)
        else:
            # The partner understood and refused (2xxx/3xxx, 4xx): retrying won't help.
            self._finish(row, "FAILED", error=error, http_status=response.http_status,
                         status_code=response.status_code)

    def _record(self, row, url, sent_at, request_id, http_status, status_code, error, elapsed) -> None:
        self.app.save(Call(
            platform_id=str(row["platform_id"]), purpose="delivery", module=row["module"],
            method=row["method"], url=url, request_id=request_id,
            correlation_id=row["correlation_id"], http_status=http_status, status_code=status_code,
            error=error, sent_at=sent_at, duration_ms=elapsed, delivery_id=row["id"],
            attempt=row["attempts"],
        ))

    def _finish(self, row: dict, state: str, *, error: str | None = None,
                http_status: int | None = None, status_code: int | None = None) -> None:
        """Close the row, unless a newer revision arrived while it was in flight."""
        with self.app.pool.connection() as conn:
            conn.execute(
                "UPDATE hub_deliveries SET state = CASE WHEN revision = %s THEN %s ELSE state END,"
                " delivered_at = CASE WHEN revision = %s AND %s = 'DELIVERED' THEN now() END,"
                " lease_until = NULL, last_error = %s, last_http_status = %s, last_status_code = %s"
                " WHERE id = %s",
                (row["revision"], state, row["revision"], state, error, http_status, status_code,
                 row["id"]),
            )

    def _retry(self, row: dict, error: str | None, http_status: int | None,
               status_code: int | None, retry_after: float | None = None) -> None:
        delay = max(backoff(row["attempts"]), retry_after or 0.0)
        with self.app.pool.connection() as conn:
            conn.execute(
                "UPDATE hub_deliveries SET lease_until = NULL,"
                " next_attempt_at = now() + make_interval(secs => %s), last_error = %s,"
                " last_http_status = %s, last_status_code = %s WHERE id = %s",
                (delay, error, http_status, status_code, row["id"]),
            )

    def give_up(self, older_than_seconds: float) -> int:
        """Park deliveries that could not be made within the give-up age."""
        with self.app.pool.connection() as conn:
            cur = conn.execute(
                "UPDATE hub_deliveries SET state = 'FAILED', lease_until = NULL,"
                " last_error = coalesce(last_error, '') || ' (gave up)'"
                " WHERE state = 'PENDING' AND created_at < now() - make_interval(secs => %s)"
                " AND (lease_until IS NULL OR lease_until < now())",
                (older_than_seconds,),
            )
            return cur.rowcount


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
