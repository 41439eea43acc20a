"""``hub audit trace``, ``history`` and ``state``: one exchange, one object over its life,
one object as the hub knew it (or as a party had received it) at a moment.

:class:`AuditLog` is the auditor's whole reading API: it exports
(:class:`hub.audit.export.AuditExport`) and tells these stories as timelines
(:mod:`hub.audit.timeline`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from hub.audit.events import (
    CALL_TOPIC,
    CLOCK_SKEW,
    DELIVERY_EVENTS,
    DELIVERY_TOPICS,
    OBJECT_CLASSES,
    OBJECT_MODULES,
    PARTY_ROLES,
    REQUEST_TOPIC,
)
from hub.audit.export import AuditExport, Filters
from hub.audit.records import parse_moment, redact, timestamp_text
from hub.audit.timeline import delivery_ids, delivery_recipients, timeline_of
from hub.domain import objects as o
from hub.domain.audit import Request
from hub.domain.parties import Party


class AuditLog(AuditExport):
    """Reads ``hub_events`` for auditors. ``app``: the :class:`hub.services.application.Hub`."""

    # Trace -----------------------------------------------------------------------------
    def trace(self, correlation_id: str) -> list[dict]:
        """The story of one exchange: every record sharing ``correlation_id``
        (requests answered, events stored, calls made with each attempt), plus,
        for a command or charging profile exchange, the CPO's POST of each result (often under its own
        correlation id), as a timeline (see :func:`timeline`)."""
        records = list(self.records(Filters(correlation_id=correlation_id)))
        results = [r for r in records if r["topic"] in ("Command.ResultReceived", "ProfileRequest.ResultReceived")]
        request_ids = {r["data"].get("request_id") for r in results} - {None}
        if request_ids:
            with self.connect() as conn:
                seen = {r["position"] for r in records}
                for batch in self.scan(conn, after=min(r["position"] for r in results),
                                        topics=[REQUEST_TOPIC], needles=request_ids):
                    for position, topic, event in batch:
                        if event.request_id in request_ids and position not in seen:
                            records.append(self.record(conn, position, topic, event))
        return self.timeline(records)

    # History -------------------------------------------------------------------------
    def _object_events(self, conn, module: str, country_code: str, party_id: str,
                       object_id: str) -> list[tuple[int, str, Any]]:
        if module not in OBJECT_CLASSES:
            raise ValueError(f"module {module!r}: must be one of {', '.join(OBJECT_MODULES)}")
        uuid = o.object_uuid(module, country_code, party_id, object_id)
        events = [item for batch in self.scan(conn, originators=[uuid]) for item in batch]
        if not events:
            raise LookupError(f"the log holds no {module} object {country_code.upper()}/"
                              f"{party_id.upper()}/{object_id}")
        return events

    def history(self, module: str, country_code: str, party_id: str, object_id: str) -> list[dict]:
        """One object over its life: its events, the requests that carried them
        and every call that delivered it (its correlation ids, or its URL), as a timeline.
        ``object_id`` of a token: ``UID|TYPE`` (see :func:`object_id_for`)."""
        with self.connect() as conn:
            events = self._object_events(conn, module, country_code, party_id, object_id)
            records = [self.record(conn, *item) for item in events]
            about = _ObjectUrl(module, events[0][2])
            correlations = {r["correlation_id"] for r in records if r["correlation_id"]}
            seen = {r["position"] for r in records}
            key = o.object_key(module, country_code, party_id, object_id)
            for batch in self.scan(conn, after=events[0][0], topics=[REQUEST_TOPIC, CALL_TOPIC, *DELIVERY_TOPICS],
                                    needles=correlations | about.needles()):
                for position, topic, event in batch:
                    if position in seen or event.module != module:
                        continue
                    if isinstance(event, DELIVERY_EVENTS):  # parked or collapsed deliveries of it
                        if event.object_key == key:
                            records.append(self.record(conn, position, topic, event))
                        continue
                    text = event.path if isinstance(event, Request.Answered) else event.url
                    if about.mentioned_in(text) or (module == "cdrs" and event.correlation_id in correlations):
                        records.append(self.record(conn, position, topic, event))
        return self.timeline(records)

    # State ---------------------------------------------------------------------------
    def state(self, module: str, country_code: str, party_id: str, object_id: str, *,
              at: datetime, body_after: Callable[[Any, dict | None], dict | None],
              delivered_to: str | None = None) -> dict:
        """The object as the hub knew it at ``at``: its events recorded at or
        before ``at`` folded with ``body_after`` (the projections' merge rules,
        passed in because ``hub`` imports no projection code); a
        ``Tariff.Deleted`` marks it deleted.

        ``delivered_to`` (``CC/PID``): the object as that party had received it
        by ``at``, an approximation built from the log alone. An event counts
        as delivered when a ``Call.Made`` to one of the party's platforms
        (purpose ``delivery``, same module, HTTP 2xx and status 1000, recorded
        at or before ``at``) either

        - carried it as pushed: the call has the event's correlation id, method
          and path; or
        - sent the object's current state instead: when the party fell behind,
          the dispatcher collapses its backlog into one PUT of the current state
          under the oldest waiting message's correlation id (and a refused
          PATCH, or an operator's replay, is followed by such a PUT too). Such
          a call is recognised by its method or path differing from the
          message it carries, by a correlation id that belongs to none of the
          object's events (replay), or by ``hub_deliveries`` marking the row
          ``current`` or collapsed; it is treated as delivering every event
          recorded before the send started. That is an upper bound: the state
          sent was read from the objects view, which may have lagged the log
          by a few events.

        A push the recipient's own rules never let through (or an object it
        never received) simply yields nothing delivered.
        """
        with self.connect() as conn:
            events = self._object_events(conn, module, country_code, party_id, object_id)
            known = [item for item in events if item[2].timestamp <= at]
            if not known:
                raise LookupError(f"{module} {country_code.upper()}/{party_id.upper()}/{object_id} "
                                  f"did not exist yet at {timestamp_text(at)}")
            calls: list[dict] = []
            if delivered_to is not None:
                known, calls = self._delivered(conn, module, events, known, delivered_to, at)
            body: dict | None = None
            deleted = False
            for _, _, event in known:
                if isinstance(event, o.Tariff.Deleted):
                    deleted = True
                    continue
                after = body_after(event, body)
                if after is not None:
                    body, deleted = after, False
            first = events[0][2]
            last = known[-1] if known else None
            return {
                "module": module, "country_code": first.country_code, "party_id": first.party_id,
                "object_id": first.object_id, "at": timestamp_text(at),
                "as_delivered_to": delivered_to.upper() if delivered_to else None,
                "position": last[0] if last else None,
                "version": last[2].originator_version if last else None,
                "recorded_at": timestamp_text(last[2].timestamp) if last else None,
                "events": len(known), "deleted": deleted, "body": body,
                "deliveries": calls,
            }

    def _party_platforms(self, conn, party: str) -> set[str]:
        parts = [p for p in party.strip().upper().split("/") if p]
        if len(parts) not in (2, 3):
            raise ValueError(f"{party!r}: write a party as COUNTRY_CODE/PARTY_ID (IN/EMP)")
        roles = [parts[2]] if len(parts) == 3 else list(PARTY_ROLES)
        ids = [Party.create_id(parts[0], parts[1], role) for role in roles]
        rows = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM hub_events"
            " WHERE originator_id = ANY(%s)", (ids,)).fetchall()
        platforms = {str(getattr(self.log.decode(row), "platform_id", "") or "") for row in rows} - {""}
        if not platforms:
            raise LookupError(f"the log knows no party {'/'.join(parts)}")
        return platforms

    def _delivered(self, conn, module: str, events: list, known: list, party: str,
                   at: datetime) -> tuple[list, list[dict]]:
        platforms = self._party_platforms(conn, party)
        about = _ObjectUrl(module, events[0][2])
        by_correlation: dict[str, list] = {}
        for item in events:
            message = getattr(item[2], "message", None) or {}
            by_correlation.setdefault(message.get("correlation_id"), []).append(item)
        successes: list[tuple[int, Any]] = []
        stop_at = at + CLOCK_SKEW
        for batch in self.scan(conn, after=events[0][0], topics=[CALL_TOPIC], needles=platforms):
            if batch[0][2].timestamp > stop_at:
                break
            for position, _, call in batch:
                if (call.purpose != "delivery" or call.module != module or str(call.platform_id) not in platforms
                        or call.timestamp > at):
                    continue
                if call.correlation_id not in by_correlation and not about.mentioned_in(call.url):
                    continue
                if call.http_status is not None and 200 <= call.http_status < 300 and call.status_code == 1000:
                    successes.append((position, call))
        marked = _current_state_rows(conn, [c.delivery_id for _, c in successes if c.delivery_id])
        delivered: set[int] = set()
        used = []
        for position, call in successes:
            carried = [item for item in by_correlation.get(call.correlation_id, [])
                       if (item[2].message or {}).get("method") == call.method
                       and call.url.endswith((item[2].message or {}).get("path") or "")]
            current = not carried or call.delivery_id in marked
            if current:
                sent = parse_moment(call.sent_at)
                covered = [item for item in events if item[0] < position and item[2].timestamp <= sent]
            else:
                covered = carried
            delivered.update(item[0] for item in covered)
            used.append({"position": position, "sent_at": call.sent_at, "delivery_id": call.delivery_id,
                         "attempt": call.attempt, "method": call.method, "url": redact(call.url),
                         "correlation_id": call.correlation_id,
                         "sent": "current state" if current else "as pushed",
                         "events": [item[2].originator_version for item in covered]})
        return [item for item in known if item[0] in delivered], used

    # Timelines ---------------------------------------------------------------------------
    def timeline(self, records: list[dict]) -> list[dict]:
        """Records as readable steps (:func:`hub.audit.timeline.timeline_of`), each call with
        the party its delivery was for."""
        with self.connect() as conn:
            recipients = delivery_recipients(conn, delivery_ids(records))
        return timeline_of(records, recipients)


class _ObjectUrl:
    """Recognises URLs and paths that address one object (``/CC/PID/ID[/…|?…]``)."""

    def __init__(self, module: str, first: Any) -> None:
        self.module = module
        self.country_code, self.party_id = first.country_code, first.party_id
        body = getattr(first, "body", None) or {}
        if module == "tokens":
            self.object_id, _, self.token_type = first.object_id.partition("|")
            self.object_id = str(body.get("uid") or self.object_id)
        else:
            self.object_id, self.token_type = first.object_id, None
        self.pattern = re.compile(
            rf"/{re.escape(self.country_code)}/{re.escape(self.party_id)}/{re.escape(self.object_id)}"
            r"(?:[/?#]|$)", re.IGNORECASE)

    def needles(self) -> set[str]:
        if self.module == "cdrs":
            return set()  # CDRs are POSTed to the endpoint itself, no ids in the URL
        base = f"/{self.country_code}/{self.party_id}/{self.object_id}"
        return {base, base.upper(), base.lower()}

    def mentioned_in(self, text: str | None) -> bool:
        if not text or self.module == "cdrs" or not self.pattern.search(text):
            return False
        if self.token_type:
            found = re.search(r"[?&]type=([A-Za-z_]+)", text)
            return (found.group(1).upper() if found else "RFID") == self.token_type.upper()
        return True


def _current_state_rows(conn, delivery_ids: list[int]) -> set[int]:
    """Deliveries the outbox marks as current-state sends (``kind`` current, or a collapsed backlog)."""
    if not delivery_ids:
        return set()
    try:
        rows = conn.execute(
            "SELECT id FROM hub_deliveries WHERE id = ANY(%s)"
            " AND (kind = 'current' OR coalesce(note, '') LIKE 'collapsed %%')", (delivery_ids,)).fetchall()
    except psycopg.errors.UndefinedTable:
        return set()
    return {row[0] for row in rows}
