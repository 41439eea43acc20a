"""Durable deliveries to partners: the outbox, leases, retries, collapsing.

A delivery is one OCPI request the hub owes one recipient (a party on a
partner platform, or the platform itself for HubClientInfo). Dispatcher
followers create rows in the same transaction as their tracking position, so
nothing is enqueued twice or lost. Senders lease due rows with ``FOR UPDATE
SKIP LOCKED`` (several workers never send the same row at the same time) and
record every attempt as a ``Call.Made`` event.

Ordering: per (platform, recipient, module, object) only the oldest pending
row is ever leased, so a PATCH never overtakes the PUT before it, while one
stuck object does not hold up others.

Two kinds of rows:
- ``exact``: the request exactly as a partner pushed it (method, path, body).
  When a recipient fell behind on an object (the oldest row failed before or
  waited longer than ``COLLAPSE_AFTER_SECONDS``, e.g. the recipient was
  down) and more rows for it wait, the sender sends the object's current state
  once instead (a PUT, or a DELETE for a deleted Tariff) and closes that
  backlog. A recipient that keeps up gets every message as pushed. CDRs never
  collapse.
- ``current``: "send this object's current state" (HubClientInfo); a newer
  change merges into the pending row (``revision`` goes up).

A row whose ``path`` is an absolute URL (a command's ``response_url``) is sent
to that URL as is, without an endpoint from the recipient's version details.

Recipients are only sent to while CONNECTED; an OFFLINE recipient's rows wait
for the still-alive probe, a SUSPENDED one's wait for the operator (and are
parked by the give-up sweep). After ``OFFLINE_AFTER_ATTEMPTS`` attempts of one
row that found the platform unreachable (no connection, timeout, 5xx) its
platform is marked OFFLINE. 401/403/408/425/429 are retried with backoff
(``Retry-After`` honoured, up to ``BACKOFF_CAP``); a refused PATCH is replaced
by a PUT of the whole object; any other refusal parks the row as FAILED.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb

from hub.application import Hub
from hub.domain.audit import Call
from hub.ocpi.client import OcpiClient, PartnerCallError
from hub.ocpi.envelope import format_datetime

log = logging.getLogger(__name__)
attempt_log = logging.getLogger("hub.deliveries")  # one line per delivery attempt

LEASE_SECONDS = 60
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
OFFLINE_AFTER_ATTEMPTS = 3
COLLAPSE_AFTER_SECONDS = 30.0
COLLAPSIBLE = frozenset({"locations", "tariffs", "sessions", "tokens"})
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


Render = Callable[[dict], "tuple[str, str, Any] | None"]


class Sender:
    """Leases due deliveries and sends them.

    ``renderers[module](row)`` returns the object's current state as
    ``(method, path, body)``, or None when there is nothing to send.
    ``on_unreachable(platform_id, reason)`` is called when a platform keeps failing.
    """

    def __init__(self, app: Hub, client: OcpiClient, renderers: dict[str, Render],
                 on_unreachable: Callable[[UUID, str], None] | None = None) -> None:
        self.app = app
        self.client = client
        self.renderers = renderers
        self.on_unreachable = on_unreachable
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
                            AND e.module = d.module AND e.object_key = d.object_key
                            AND coalesce(e.recipient, '') = coalesce(d.recipient, '') AND e.id < d.id)
                      AND EXISTS (
                          SELECT 1 FROM view_parties v
                          WHERE v.platform_id = d.platform_id AND v.status = 'CONNECTED'
                            AND (d.recipient IS NULL
                                 OR v.country_code || '/' || v.party_id || '/' || v.role = d.recipient))
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
                try:
                    self._send(row)
                except Exception:  # never lose the row: it is retried after the lease
                    log.exception("delivery %s failed unexpectedly", row["id"])
                    self._retry(row, "internal error while sending", None, None)
                sent += 1

    # One delivery --------------------------------------------------------------
    def _backlog(self, row: dict) -> int:
        """Highest id of the pending rows for the same recipient and object (collapse range)."""
        with self.app.pool.connection() as conn:
            (top,) = conn.execute(
                "SELECT max(id) FROM hub_deliveries WHERE state = 'PENDING' AND platform_id = %s"
                " AND coalesce(recipient, '') = coalesce(%s, '') AND module = %s AND object_key = %s",
                (row["platform_id"], row["recipient"], row["module"], row["object_key"]),
            ).fetchone()
        return top or row["id"]

    @staticmethod
    def _behind(row: dict) -> bool:
        """The recipient fell behind on this object: it failed before, or the row waited long."""
        if row["module"] not in COLLAPSIBLE:
            return False
        waited = (datetime.now(UTC) - row["created_at"]).total_seconds()
        return row["attempts"] > 1 or waited > COLLAPSE_AFTER_SECONDS

    def _send(self, row: dict) -> None:
        platform = row["platform"] or {}
        absolute = row["path"].startswith(("http://", "https://"))  # e.g. an eMSP's response_url
        base = None if absolute else _endpoint(platform, row["module"], row["interface"])
        token_sealed = platform.get("partner_token")
        if platform.get("state") != "REGISTERED" or not (absolute or base) or not token_sealed:
            self._finish(row, "FAILED", error="recipient no longer registered or lacks the endpoint")
            return
        method, path, body = row["method"], row["path"], row["body"]
        upto = row["id"]
        if (row["kind"] == "exact" and self._behind(row)) or (
                row["kind"] == "current" and row["module"] in COLLAPSIBLE):
            upto = self._backlog(row)  # the current state includes every update queued behind it
        if row["kind"] == "current" or upto > row["id"]:
            rendered = self.renderers[row["module"]](row)
            if rendered is None:
                self._finish(row, "DELIVERED", note="nothing to send: the object no longer exists", upto=upto)
                return
            method, path, body = rendered
        url = path if absolute else base.rstrip("/") + path
        sent_at = format_datetime(datetime.now(UTC))
        try:
            response = self.client.request(
                method, url, self.app.cipher.decrypt(token_sealed), json=body,
                headers=row["headers"] or None, correlation_id=row["correlation_id"],
            )
        except PartnerCallError as exc:
            self._record(row, method, url, sent_at, exc.request_id, exc.http_status, None, str(exc),
                         exc.elapsed_ms, failure=_failure_kind(exc))
            status = exc.http_status
            if status is None or status >= 500 or status in RETRY_HTTP:
                self._retry(row, str(exc), status, None, unreachable=status is None or status >= 500)
            elif method == "PATCH" and row["module"] in COLLAPSIBLE:
                self._resend_current(row, str(exc), status, None)
            else:  # answered, e.g. an HTML 404 page: the receiver will not take it
                self._finish(row, "FAILED", error=str(exc), http_status=status, upto=upto)
            return
        error = None if response.ok else (
            f"HTTP {response.http_status}, status {response.status_code}: "
            f"{str(response.body.get('status_message', ''))[:200]}"
        )
        self._record(row, method, url, sent_at, response.request_id, response.http_status,
                     response.status_code, error, response.elapsed_ms,
                     failure=None if response.ok else "refused")
        if response.ok:
            note = f"collapsed {upto - row['id']} later updates into the current state" if upto > row["id"] else None
            self._finish(row, "DELIVERED", http_status=response.http_status,
                         status_code=response.status_code, upto=upto, note=note)
        elif response.http_status >= 500 or response.http_status in RETRY_HTTP:
            self._retry(row, error, response.http_status, response.status_code,
                        _retry_after(response.headers), unreachable=response.http_status >= 500)
        elif method == "PATCH" and row["module"] in COLLAPSIBLE:
            # OCPI: when a PATCH fails (e.g. 404: the receiver lacks the object), send the whole object.
            self._resend_current(row, error, response.http_status, response.status_code)
        else:
            # The partner understood and refused (2xxx/3xxx or 4xx): park it for the operator.
            self._finish(row, "FAILED", error=error, http_status=response.http_status,
                         status_code=response.status_code, upto=upto)

    def _record(self, row, method, url, sent_at, request_id, http_status, status_code, error,
                elapsed, *, failure: str | None = None) -> None:
        """Keep the attempt in the log (``Call.Made``) and write its log line.

        The log line names no URL (a ``response_url`` may carry the partner's own
        secret) and no error text from the client (it quotes the URL): ``failure``
        says what went wrong in a word instead.
        """
        self.app.save(Call(
            platform_id=str(row["platform_id"]), purpose="delivery", module=row["module"],
            method=method, url=url, request_id=request_id, correlation_id=row["correlation_id"],
            http_status=http_status, status_code=status_code, error=error, sent_at=sent_at,
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

    def _finish(self, row: dict, state: str, *, error: str | None = None, http_status: int | None = None,
                status_code: int | None = None, upto: int | None = None, note: str | None = None) -> None:
        """Close the row (and a collapsed backlog up to ``upto``).

        A ``current`` row whose revision moved on while in flight stays pending.
        """
        with self.app.pool.connection() as conn, conn.transaction():
            conn.execute(
                "UPDATE hub_deliveries SET state = CASE WHEN revision = %s THEN %s ELSE state END,"
                " delivered_at = CASE WHEN revision = %s AND %s = 'DELIVERED' THEN now() END,"
                " lease_until = NULL, last_error = %s, last_http_status = %s, last_status_code = %s,"
                " note = %s WHERE id = %s",
                (row["revision"], state, row["revision"], state, error, http_status, status_code, note,
                 row["id"]),
            )
            if upto and upto > row["id"]:
                conn.execute(
                    "UPDATE hub_deliveries SET state = %s, delivered_at = CASE WHEN %s = 'DELIVERED'"
                    " THEN now() END, note = %s WHERE state = 'PENDING' AND platform_id = %s"
                    " AND coalesce(recipient, '') = coalesce(%s, '') AND module = %s AND object_key = %s"
                    " AND id > %s AND id <= %s",
                    (state, state, f"included in the current state sent by delivery {row['id']}",
                     row["platform_id"], row["recipient"], row["module"], row["object_key"], row["id"], upto),
                )

    def _retry(self, row: dict, error: str | None, http_status: int | None,
               status_code: int | None, retry_after: float | None = None, *,
               unreachable: bool = False) -> None:
        delay = max(backoff(row["attempts"]), retry_after or 0.0)
        with self.app.pool.connection() as conn:
            conn.execute(
                "UPDATE hub_deliveries SET lease_until = NULL,"
                " next_attempt_at = now() + make_interval(secs => %s), last_error = %s,"
                " last_http_status = %s, last_status_code = %s WHERE id = %s",
                (delay, error, http_status, status_code, row["id"]),
            )
        if unreachable and row["attempts"] >= OFFLINE_AFTER_ATTEMPTS and self.on_unreachable is not None:
            self.on_unreachable(row["platform_id"], f"{row['attempts']} failed deliveries: {error}")

    def _resend_current(self, row: dict, error: str | None, http_status: int | None,
                        status_code: int | None) -> None:
        cc, pid, oid = row["object_key"].split("/")[1:4]
        with self.app.pool.connection() as conn:
            conn.execute(
                "UPDATE hub_deliveries SET kind = 'current', method = 'PUT', path = %s,"
                " lease_until = NULL, next_attempt_at = now(), last_error = %s, last_http_status = %s,"
                " last_status_code = %s, note = 'PATCH refused; sending the whole object' WHERE id = %s",
                (f"/{cc}/{pid}/{oid}", error, http_status, status_code, row["id"]),
            )

    # Operator actions ------------------------------------------------------------
    def give_up(self, older_than_seconds: float) -> int:
        """Park deliveries that could not be made within the give-up age."""
        with self.app.pool.connection() as conn:
            cur = conn.execute(
                "UPDATE hub_deliveries SET state = 'FAILED', lease_until = NULL,"
                " note = 'gave up after ' || %s || ' s'"
                " WHERE state = 'PENDING' AND created_at < now() - make_interval(secs => %s)"
                " AND (lease_until IS NULL OR lease_until < now())",
                (int(older_than_seconds), older_than_seconds),
            )
            return cur.rowcount


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
    """Put failed deliveries back in the queue, due now. Returns the requeued ids."""
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
            " lease_until = NULL, note = 'requeued by an operator' WHERE " + " AND ".join(where)
            + " RETURNING id", params,
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


def replay(pool, party: dict, *, modules: list[str], since=None, correlation_id: str) -> dict[str, int]:
    """Queue the current state of everything ``party`` may receive (and every CDR of it).

    ``party``: a ``view_parties`` row. Returns how many objects were queued per module.
    Current-state rows merge with any already waiting for the same object.
    """
    from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
    from hub.rules import publish_visible
    from projections.objects import emsp_tokens
    from projections.rules import load_rules_from

    key = f"{party['country_code']}/{party['party_id']}/{party['role']}"
    counts: dict[str, int] = {}
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        rules = load_rules_from(cur)
        endpoints = cur.execute("SELECT endpoints FROM view_platforms WHERE platform_id = %s",
                                (party["platform_id"],)).fetchone()[0] or []
        statuses = dict(cur.execute("SELECT country_code || '/' || party_id || '/' || role, status"
                                    " FROM view_parties").fetchall())
        tokens = emsp_tokens(cur, key) if party["role"] != "CPO" else []
        for module in modules:
            if not any(e.get("identifier") == module and e.get("role") == "RECEIVER" for e in endpoints):
                continue
            owned_by_emsp = module == "tokens"
            if owned_by_emsp != (party["role"] == "CPO"):
                continue  # tokens go to CPOs; everything else to eMSP-side parties
            query = ("SELECT country_code, party_id, object_id, body, audience, emsp_country_code,"
                     " emsp_party_id FROM view_objects WHERE module = %s AND NOT deleted")
            params: list = [module]
            if since is not None:
                query += " AND last_updated >= %s"
                params.append(since)
            if module in ("sessions", "cdrs"):
                query += " AND emsp_country_code = %s AND emsp_party_id = %s"
                params += [party["country_code"], party["party_id"]]
            count = 0
            for cc, pid, oid, body, audience, _, _ in cur.execute(query + " ORDER BY seq", params).fetchall():
                owner = f"{cc}/{pid}/{'EMSP' if owned_by_emsp else 'CPO'}"
                cpo, emsp = (key, owner) if owned_by_emsp else (owner, key)
                if not rules.decide(cpo, emsp, module, sender_status=statuses.get(owner)).allowed:
                    continue
                if audience is not None and key not in audience:
                    continue
                if module == "locations" and body.get("publish") is False and not publish_visible(body, tokens):
                    continue
                per_emsp = module in ("sessions", "cdrs")
                sender = (cc, pid) if per_emsp else (HUB_COUNTRY_CODE, HUB_PARTY_ID)
                headers = {"OCPI-from-country-code": sender[0], "OCPI-from-party-id": sender[1],
                           "OCPI-to-country-code": party["country_code"],
                           "OCPI-to-party-id": party["party_id"]}
                common = dict(platform_id=party["platform_id"], recipient=key, module=module,
                              interface="RECEIVER", object_key=f"{module}/{cc}/{pid}/{oid}",
                              correlation_id=correlation_id, position=0, headers=headers)
                if module == "cdrs":  # CDRs are never merged: each one again, as received
                    enqueue(cur, Outgoing(method="POST", path="", body=body, **common))
                else:
                    enqueue(cur, Outgoing(method="PUT", path="", kind="current", **common))
                count += 1
            counts[module] = count
    return counts
