"""Reading ``hub_events`` for ``hub audit``: the scan every audit read shares.

The event log (``hub_events``) is the audit trail. :class:`EventReader` reads it
in notification order and turns every stored event into a record
(:mod:`hub.audit.records`). ``module``, ``object``, ``correlation_id`` and
``parties`` come from the event and, for events that do not repeat them (a
PATCH, a command's answer, a party going offline), from the first event of the
same aggregate, read from the log too (never from the views).

Reading is server-friendly: short keyset queries over bounded windows of
notification ids, on an autocommit connection (no transaction stays open
while a consumer reads slowly), up to the log's head as it was when reading
started. Filters that can be pushed into SQL are (one object: the primary
key; a correlation id: a byte match on the stored state, confirmed after
decoding; a time range: a binary search for the first position, see
``CLOCK_SKEW``); the others are applied to decoded records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic

from hub.audit.records import jsonable, redact, short_topic, timestamp_text
from hub.domain import objects as o
from hub.domain.audit import Call, OperatorAction, Request
from hub.domain.chargingprofiles import ProfileRequest, ProfileUpdate
from hub.domain.commands import Command
from hub.domain.deliveries import Delivery
from hub.domain.parties import Party, Platform, party_key
from hub.domain.rules import RoutingRule
from hub.infra.database import connect
from hub.infra.eventlog import EventLog

# What the log holds ----------------------------------------------------------------
OBJECT_MODULES = ("locations", "tariffs", "sessions", "cdrs", "tokens")
OBJECT_CLASSES: dict[str, type[o.PushedObject]] = {
    "locations": o.Location, "tariffs": o.Tariff, "sessions": o.Session, "cdrs": o.Cdr, "tokens": o.Token,
}
REQUEST_TOPIC = get_topic(Request.Answered)
CALL_TOPIC = get_topic(Call.Made)
DELIVERY_EVENTS = (Delivery.Parked, Delivery.Collapsed)
DELIVERY_TOPICS = [get_topic(cls) for cls in DELIVERY_EVENTS]
PARTY_ROLES = ("CPO", "EMSP", "NSP", "NAP", "SCSP", "OTHER")
# Events are created a little before they are committed (and several hosts may
# write), so notification order and timestamps may disagree by this much at
# most; time-range reads start and stop with this margin and filter exactly.
CLOCK_SKEW = timedelta(minutes=5)
BATCH = 1000
WINDOW = 50_000
MANY_NEEDLES = 500  # beyond this many byte patterns, decode and filter instead


def module_of_object_event(event: Any) -> str | None:
    for module, cls in OBJECT_CLASSES.items():
        if isinstance(event, cls.Event):
            return module
    return None


def object_id_for(module: str, object_id: str, token_type: str = "RFID") -> str:
    """The aggregate's object id: a token's is ``UID|TYPE``."""
    return o.Token.object_id_of(object_id, token_type) if module == "tokens" else object_id


def object_uuid_of(module: str, reference: str, token_type: str = "RFID") -> UUID:
    """``CC/PID/ID`` of ``module`` -> the object's aggregate id (ValueError if malformed)."""
    parts = reference.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{reference!r}: write an object as COUNTRY_CODE/PARTY_ID/ID")
    if module not in OBJECT_CLASSES:
        raise ValueError(f"--object needs --module {', '.join(OBJECT_MODULES)}")
    return o.object_uuid(module, parts[0], parts[1], object_id_for(module, parts[2], token_type))


def _like(text: str) -> bytes:
    """A LIKE pattern matching ``text`` as it appears in the stored JSON state."""
    import orjson

    encoded = orjson.dumps(text)[1:-1]  # the JSON string's content, as stored
    escaped = encoded.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_")
    return b"%" + escaped + b"%"



Progress = Callable[[int, int], None]


class EventReader:
    """Reads ``hub_events`` for auditors (scanning, describing, recording). ``app``: the :class:`hub.services.application.Hub`."""

    def __init__(self, app, *, batch_size: int = BATCH, window: int = WINDOW) -> None:
        self.app = app
        self.log = EventLog(app)
        self.batch_size = batch_size
        self.window = window
        # Byte matching on the stored state only works on plain (uncompressed, unencrypted) JSON.
        self.plain_state = getattr(app.mapper, "cipher", None) is None and \
            getattr(app.mapper, "compressor", None) is None
        self._first: dict[UUID, Any] = {}
        self._platforms: dict[str, frozenset[str]] = {}

    def connect(self) -> psycopg.Connection:
        """A connection of its own (autocommit) for reading the log."""
        return connect(self.app.database_url, self.app.settings.database_schema, autocommit=True)

    @staticmethod
    def head(conn: psycopg.Connection) -> int:
        """The highest notification id (0 for an empty log)."""
        return int(conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()[0])

    # Scanning ------------------------------------------------------------------------
    def scan(self, conn: psycopg.Connection, *, after: int = 0, end: int | None = None,
             originators: Sequence[UUID] | None = None, topics: Sequence[str] | None = None,
             needles: Iterable[str] | None = None,
             progress: Progress | None = None) -> Iterator[list[tuple[int, str, Any]]]:
        """Batches of ``(position, topic, event)`` in notification order.

        ``needles``: keep only events whose stored state contains one of these
        strings (a prefilter: callers still compare decoded values).
        """
        end = self.head(conn) if end is None else end
        patterns = None
        if needles is not None:
            needles = sorted(set(needles))
            if self.plain_state and len(needles) <= MANY_NEEDLES:
                patterns = [_like(n) for n in needles]
        where, fixed = [], []
        if originators is not None:
            where.append("originator_id = ANY(%s)")
            fixed.append(list(originators))
        if topics is not None:
            where.append("topic = ANY(%s)")
            fixed.append(list(topics))
        if patterns is not None:
            where.append("state LIKE ANY(%s)")
            fixed.append(patterns)
        clause = "".join(f" AND {w}" for w in where)
        # One object's events: the primary key finds them, no need for windows.
        window = end if originators is not None else self.window
        position = after
        while position < end:
            upto = min(end, position + window)
            rows = conn.execute(
                "SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
                f" WHERE notification_id > %s AND notification_id <= %s{clause}"
                " ORDER BY notification_id LIMIT %s",
                [position, upto, *fixed, self.batch_size],
            ).fetchall()
            position = rows[-1][0] if len(rows) == self.batch_size else upto
            batch = [(row[0], row[3], self.log.decode(row[1:])) for row in rows]
            self._remember(conn, [event for _, _, event in batch])
            if progress is not None:
                progress(position, end)
            if batch:
                yield batch

    def _events_of(self, conn: psycopg.Connection, originator_id: UUID) -> list[tuple[int, str, Any]]:
        rows = conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
            " WHERE originator_id = %s ORDER BY originator_version", (originator_id,)).fetchall()
        return [(row[0], row[3], self.log.decode(row[1:])) for row in rows]

    def position_before(self, conn: psycopg.Connection, moment: datetime, end: int) -> int:
        """A position after which every event recorded at or after ``moment`` lies
        (binary search on timestamps, with ``CLOCK_SKEW`` of margin)."""
        threshold = moment - CLOCK_SKEW
        low, high = 0, end
        while low < high:
            middle = (low + high + 1) // 2
            row = conn.execute(
                "SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
                " WHERE notification_id >= %s AND notification_id <= %s ORDER BY notification_id LIMIT 1",
                (middle, end)).fetchone()
            if row is None or self.log.decode(row[1:]).timestamp >= threshold:
                high = middle - 1
            else:
                low = max(middle, min(row[0], high))
        return low

    # Who and what an event concerns ----------------------------------------------------
    def _remember(self, conn: psycopg.Connection, events: list[Any]) -> None:
        """Load the first event of every aggregate these events need it for, in one query."""
        missing = set()
        for event in events:
            if event.originator_version == 1:
                self._first.setdefault(event.originator_id, event)
            elif isinstance(event, (o.PushedObject.Event, Command.Event, ProfileRequest.Event, Party.Event)):
                if event.originator_id not in self._first:
                    missing.add(event.originator_id)
        if missing:
            rows = conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM hub_events"
                " WHERE originator_id = ANY(%s) AND originator_version = 1", (list(missing),)).fetchall()
            for row in rows:
                self._first[row[0]] = self.log.decode(row)
            for originator_id in missing:
                self._first.setdefault(originator_id, None)

    def platform_parties(self, conn: psycopg.Connection, platform_id: object) -> frozenset[str]:
        """Every party key a platform ever carried, from its own events."""
        if not platform_id:
            return frozenset()
        key = str(platform_id)
        if key not in self._platforms:
            keys: set[str] = set()
            try:
                events = self._events_of(conn, UUID(key))
            except ValueError:
                events = []
            for _, _, event in events:
                if isinstance(event, Platform.PartyAttached):
                    keys.add(event.key)
                for role in getattr(event, "roles", None) or []:
                    keys.add(party_key(role["country_code"], role["party_id"], role["role"]))
            self._platforms[key] = frozenset(keys)
        return self._platforms[key]

    def _describe(self, conn: psycopg.Connection, event: Any) -> dict:
        """``module``, ``object``, ``correlation_id`` and ``parties`` of one event."""
        module = object_key = correlation = None
        parties: set[str] = set()
        first = self._first.get(event.originator_id) or event
        object_module = module_of_object_event(event)
        if object_module is not None:
            module = object_module
            message = getattr(event, "message", None) or {}
            correlation = message.get("correlation_id")
            parties.update(p for p in (message.get("from"), message.get("to")) if p)
            if hasattr(first, "country_code"):
                object_key = o.object_key(module, first.country_code, first.party_id, first.object_id)
                owner_role = "EMSP" if module == "tokens" else "CPO"
                parties.add(party_key(first.country_code, first.party_id, owner_role))
                token = (getattr(first, "body", None) or {}).get("cdr_token")
                if module in ("sessions", "cdrs") and isinstance(token, dict) and token.get("party_id"):
                    parties.add(party_key(str(token.get("country_code", "")), str(token["party_id"]), "EMSP"))
        elif isinstance(event, Command.Event):
            module = "commands"
            if isinstance(first, Command.Requested):
                correlation = first.correlation_id
                parties.update((first.emsp, first.cpo))
        elif isinstance(event, (ProfileRequest.Event, ProfileUpdate.Event)):
            module = "chargingprofiles"
            if isinstance(first, (ProfileRequest.Requested, ProfileUpdate.Received)):
                correlation = first.correlation_id
                parties.update((getattr(first, "requester", None) or first.recipient, first.cpo))
        elif isinstance(event, Request.Answered):
            module, correlation = event.module, event.correlation_id
            parties.update(p for p in (event.from_party, event.to_party) if p)
            parties |= self.platform_parties(conn, event.platform_id)
        elif isinstance(event, Call.Made):
            module, correlation = event.module, event.correlation_id
            parties |= self.platform_parties(conn, event.platform_id)
        elif isinstance(event, DELIVERY_EVENTS):  # rows of several pushes: trace finds it by any of them
            module, object_key = event.module, event.object_key
            correlation = next(iter(event.correlation_ids), None)
            parties |= {event.recipient} if event.recipient else self.platform_parties(conn, event.platform_id)
        elif isinstance(event, Party.Event):
            if isinstance(first, Party.Onboarded):
                parties.add(party_key(first.country_code, first.party_id, first.role))
        elif isinstance(event, Platform.Event):
            module = "credentials"
            parties |= self.platform_parties(conn, event.originator_id)
        elif isinstance(event, RoutingRule.Event):
            module = getattr(event, "module", None) or getattr(first, "module", None)
            parties.update(p for p in (getattr(event, "cpo", None), getattr(event, "emsp", None)) if p)
        elif isinstance(event, OperatorAction.Taken):
            arguments = event.arguments if isinstance(event.arguments, dict) else {}
            module = arguments.get("module") if isinstance(arguments.get("module"), str) else None
            correlation = getattr(event, "correlation_id", None)  # actions recorded before it was kept: none
            if isinstance(arguments.get("party"), str):
                parties.add(arguments["party"].upper())
        return {"module": module, "object": object_key, "correlation_id": correlation,
                "parties": sorted(parties)}

    def record(self, conn: psycopg.Connection, position: int, topic: str, event: Any) -> dict:
        """One event as a plain, redacted record."""
        attributes = {k: v for k, v in vars(event).items()
                      if k not in ("originator_id", "originator_version", "timestamp", "originator_topic")}
        return {
            "position": position,
            "recorded_at": timestamp_text(event.timestamp),
            "topic": short_topic(topic),
            "aggregate_id": str(event.originator_id),
            "version": event.originator_version,
            **redact(jsonable(self._describe(conn, event))),
            "data": redact(jsonable(attributes)),
        }
