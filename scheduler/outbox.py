"""The outbox: deliveries the hub owes its partners, and what operators read and do with them.

A delivery is one OCPI request the hub owes one recipient (a party on a
partner platform, or the platform itself for HubClientInfo). Dispatcher
followers create rows (:func:`enqueue`) in the same transaction as their
tracking position, so nothing is enqueued twice or lost; the sender
(``scheduler/sender.py``) leases and sends them.

Three kinds of rows:
- ``exact``: the request exactly as a partner pushed it (method, path, body).
  When a recipient fell behind on an object and more rows for it wait, the
  sender sends the object's current state once instead (a PUT, or a DELETE for
  a deleted Tariff) and closes the rows that state includes. A recipient that
  keeps up gets every message as pushed. CDRs never collapse.
- ``current``: "send this object's current state" (HubClientInfo, replays); a
  newer change merges into the pending row (``revision`` goes up).
- ``resend``: a row that must now send the current state instead of what it
  carries: its PATCH was refused, or an operator requeued it (its body may be
  older than what the recipient got since).
A current state includes the changes up to a log position; only rows queued
for changes up to that position are closed with it, and it is only sent once
the dispatcher has queued every change the view holds (:class:`NotCaughtUp`),
so no change arrives both inside the state and on its own.

A row whose ``path`` is an absolute URL (a command's ``response_url``) is sent
to that URL as is, without an endpoint from the recipient's version details.
Parking and collapsing are ``Delivery`` events (``hub.domain.deliveries``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb

from hub.domain.deliveries import Delivery
from hub.ocpi.numbers import dumps
from hub.services.application import Hub
from projections.health import party_sql
from scheduler.outcomes import COLLAPSIBLE

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


_INSERT = (
    "INSERT INTO hub_deliveries (platform_id, recipient, kind, module, interface, object_key,"
    " method, path, body, headers, correlation_id, position)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)
_MERGE = _INSERT + (
    " ON CONFLICT (platform_id, (coalesce(recipient, '')), module, object_key)"
    " WHERE state = 'PENDING' AND kind = 'current'"
    " DO UPDATE SET position = excluded.position, revision = hub_deliveries.revision + 1,"
    " correlation_id = excluded.correlation_id"
)


def _params(item: Outgoing) -> tuple:
    return (item.platform_id, item.recipient, item.kind, item.module, item.interface,
            item.object_key, item.method, item.path,
            None if item.body is None else Json(item.body, dumps=dumps), Jsonb(item.headers or {}),
            item.correlation_id, item.position)


def enqueue(cur: psycopg.Cursor, item: Outgoing) -> None:
    """Add a delivery inside the caller's transaction."""
    cur.execute(_MERGE if item.kind == "current" else _INSERT, _params(item))


def enqueue_many(cur: psycopg.Cursor, items: list[Outgoing]) -> None:
    """Add deliveries inside the caller's transaction, in the given order (ids rise with it).

    Runs of rows of one kind go as one ``executemany`` (pipelined: one round trip), so
    a batch of events fanned out to many recipients does not wait on one insert each.
    """
    start = 0
    while start < len(items):
        current = items[start].kind == "current"
        end = start
        while end < len(items) and (items[end].kind == "current") == current:
            end += 1
        cur.executemany(_MERGE if current else _INSERT, [_params(i) for i in items[start:end]])
        start = end


Render = Callable[[dict], "tuple | None"]


class NotCaughtUp(Exception):
    """A renderer's view holds changes whose deliveries are not queued yet: try again shortly."""


def give_up(app: Hub, older_than_seconds: float) -> int:
    """Park deliveries that could not be made within the give-up age (one event per object)."""
    reason = f"gave up after {int(older_than_seconds)} s"
    with app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
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
        app.save(*(
            Delivery.parked(
                delivery_ids=[r["id"] for r in group], platform_id=platform_id, recipient=recipient,
                module=module, object_key=object_key, sent_by=None,
                reason=reason + (f"; last error: {group[-1]['last_error']}" if group[-1]["last_error"] else ""),
                correlation_ids=distinct([r["correlation_id"] for r in group]))
            for (platform_id, recipient, module, object_key), group in groups.items()))
    return len(rows)


def distinct(values) -> list:
    """The values that are set, each once, in their first order."""
    return list(dict.fromkeys(v for v in values if v))


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

