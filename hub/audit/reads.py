"""Reading the audit trail: ``hub audit export|trace|history|state``.

The event log (``hub_events``) is the audit trail. This module reads it in
notification order and turns every stored event into a plain, JSON-able
*record*::

    {"position": 22, "recorded_at": "2026-11-25T07:39:57.704593Z",
     "topic": "Location.Put", "aggregate_id": "...", "version": 1,
     "module": "locations", "object": "locations/IN/ECP/LOC1",
     "correlation_id": "...", "parties": ["IN/CIH/HUB", "IN/ECP/CPO"],
     "data": {...the event's attributes, redacted...}}

``recorded_at`` is the event's own timestamp (when the hub created it);
``module``, ``object``, ``correlation_id`` and ``parties`` are derived from
the event and, for events that do not repeat them (a PATCH, a command's
answer, a party going offline), from the first event of the same aggregate,
read from the log too (never from the views).

Reading is server-friendly: short keyset queries over bounded windows of
notification ids, on an autocommit connection (no transaction stays open
while a consumer reads slowly), up to the log's head as it was when reading
started. Filters that can be pushed into SQL are (one object: the primary
key; a correlation id: a byte match on the stored state, confirmed after
decoding; a time range: a binary search for the first position, see
``CLOCK_SKEW``); the others are applied to decoded records.

Secrets never leave this module: :func:`redact` drops every key of
:data:`DENY_KEYS` at any depth (token hashes, the encrypted partner token,
a command's ``result_id`` and ``hub_response_url``, Authorization headers,
credentials tokens) and masks the capability segment of any
``/commands/sender/{result_id}`` URL or path.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic

from hub.domain import objects as o
from hub.domain.audit import Call, OperatorAction, Request
from hub.domain.commands import Command
from hub.domain.deliveries import Delivery
from hub.domain.parties import Party, Platform, party_key
from hub.domain.rules import RoutingRule
from hub.infra.database import connect
from hub.infra.eventlog import EventLog
from hub.ocpi.envelope import DATETIME_RE, parse_datetime

# Redaction -------------------------------------------------------------------------
DENY_KEYS = frozenset({
    "partner_token",       # Platform: the token a partner issued to the hub (encrypted, still a secret)
    "token_hash",          # Platform: hash of the token C the hub issued
    "pending_token_hash",  # Platform: hash of a token A / outgoing token B
    "result_id",           # Command: the capability in the hub's response_url
    "hub_response_url",    # Command: that URL itself
    "authorization",       # any Authorization header, whatever its case
    "token_a", "token_b", "token_c", "secret", "secret_key", "password",
})
# ``token`` is a credentials token when its value is a string (Credentials
# object); an OCPI Token object (START_SESSION, RESERVE_NOW) is a dict and stays.
STRING_SECRET_KEYS = frozenset({"token"})
CAPABILITY = re.compile(r"(/commands/sender/)[^/?#\s\"']+", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """``value`` (JSON-able) without secrets: denied keys dropped at any depth,
    the ``result_id`` of any ``…/commands/sender/{result_id}`` URL masked."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            name = str(key).lower()
            if name in DENY_KEYS or (name in STRING_SECRET_KEYS and isinstance(item, str)):
                continue
            kept[key] = redact(item)
        return kept
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return CAPABILITY.sub(r"\1" + REDACTED, value)
    return value


def jsonable(value: Any) -> Any:
    """Plain JSON types only: UUIDs and datetimes become strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return timestamp_text(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def timestamp_text(moment: datetime) -> str:
    """An OCPI DateTime with microseconds (round-trips through ``--at``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_moment(value: str) -> datetime:
    """An OCPI DateTime (``2026-01-31T12:00:00Z``), also with the microseconds
    records show (longer than the 25 characters OCPI allows), or ValueError."""
    value = value.strip()
    if DATETIME_RE.match(value):
        try:
            return datetime.fromisoformat(value.rstrip("Z")).replace(tzinfo=UTC)
        except ValueError:
            pass
    return parse_datetime(value)  # raises, naming the expected form


def short_topic(topic: str) -> str:
    """``hub.domain.objects:Location.EvsePatched`` -> ``Location.EvsePatched``."""
    return topic.split(":", 1)[-1]


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


def _party_match(wanted: str, keys: Iterable[str | None]) -> bool:
    """``IN/EMP`` matches any role of that party; ``IN/EMP/EMSP`` only that one."""
    wanted = wanted.strip().upper().strip("/")
    for key in keys:
        if not key:
            continue
        key = key.upper()
        if key == wanted or key.startswith(wanted + "/"):
            return True
    return False


def _like(text: str) -> bytes:
    """A LIKE pattern matching ``text`` as it appears in the stored JSON state."""
    import orjson

    encoded = orjson.dumps(text)[1:-1]  # the JSON string's content, as stored
    escaped = encoded.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_")
    return b"%" + escaped + b"%"


@dataclass(frozen=True)
class Filters:
    """What ``hub audit export`` keeps. ``party``: ``CC/PID`` or ``CC/PID/ROLE``;
    ``object_uuid``: one object's aggregate id (see :func:`hub.domain.objects.object_uuid`);
    ``since`` inclusive, ``until`` exclusive (event timestamps)."""

    party: str | None = None
    module: str | None = None
    object_uuid: UUID | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


Progress = Callable[[int, int], None]


class AuditLog:
    """Reads ``hub_events`` for auditors. ``app``: the :class:`hub.services.application.Hub`."""

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

    def _connect(self) -> psycopg.Connection:
        return connect(self.app.database_url, self.app.settings.database_schema, autocommit=True)

    @staticmethod
    def _head(conn: psycopg.Connection) -> int:
        return int(conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()[0])

    # Scanning ------------------------------------------------------------------------
    def _scan(self, conn: psycopg.Connection, *, after: int = 0, end: int | None = None,
              originators: Sequence[UUID] | None = None, topics: Sequence[str] | None = None,
              needles: Iterable[str] | None = None,
              progress: Progress | None = None) -> Iterator[list[tuple[int, str, Any]]]:
        """Batches of ``(position, topic, event)`` in notification order.

        ``needles``: keep only events whose stored state contains one of these
        strings (a prefilter: callers still compare decoded values).
        """
        end = self._head(conn) if end is None else end
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

    def _position_before(self, conn: psycopg.Connection, moment: datetime, end: int) -> int:
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
            elif isinstance(event, (o.PushedObject.Event, Command.Event, Party.Event)):
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

    # Export --------------------------------------------------------------------------
    def records(self, filters: Filters = Filters(), progress: Progress | None = None) -> Iterator[dict]:
        """Every record the filters keep, in notification order, streamed.

        With a correlation id, a command's later events (answer, result,
        timeout), which do not repeat it, come along with its ``Requested``.
        """
        with self._connect() as conn:
            end = self._head(conn)
            after = 0
            if filters.since is not None and filters.object_uuid is None:
                after = self._position_before(conn, filters.since, end)
            stop_at = filters.until + CLOCK_SKEW if filters.until is not None else None
            pending: list[tuple[int, str, Any]] = []  # a command's later events, by position
            queued: set[int] = set()
            for batch in self._scan(conn, after=after, end=end,
                                    originators=[filters.object_uuid] if filters.object_uuid else None,
                                    needles=[filters.correlation_id] if filters.correlation_id else None,
                                    progress=progress):
                for position, topic, event in batch:
                    while pending and pending[0][0] < position:
                        item = heapq.heappop(pending)
                        yield from self._kept(conn, filters, *item)
                    if stop_at is not None and event.timestamp >= stop_at:
                        pending.clear()  # beyond the range (and its clock margin)
                        break
                    if position in queued:
                        continue
                    if (filters.correlation_id is not None and isinstance(event, Command.Requested)
                            and event.correlation_id == filters.correlation_id):
                        for later in self._events_of(conn, event.originator_id)[1:]:
                            if position < later[0] <= end and later[0] not in queued:
                                queued.add(later[0])
                                heapq.heappush(pending, later)
                        self._remember(conn, [e for _, _, e in pending])
                    yield from self._kept(conn, filters, position, topic, event)
                else:
                    continue
                break
            while pending:
                yield from self._kept(conn, filters, *heapq.heappop(pending))

    def _kept(self, conn, filters: Filters, position: int, topic: str, event: Any) -> Iterator[dict]:
        if filters.since is not None and event.timestamp < filters.since:
            return
        if filters.until is not None and event.timestamp >= filters.until:
            return
        if filters.object_uuid is not None and event.originator_id != filters.object_uuid:
            return
        record = self.record(conn, position, topic, event)
        if filters.correlation_id is not None and record["correlation_id"] != filters.correlation_id \
                and filters.correlation_id not in (record["data"].get("correlation_ids") or ()):
            return
        if filters.module is not None and record["module"] not in (filters.module.lower(), "*"):
            return
        if filters.party is not None and not _party_match(filters.party, record["parties"]):
            return
        yield record

    # Trace -----------------------------------------------------------------------------
    def trace(self, correlation_id: str) -> list[dict]:
        """The story of one exchange: every record sharing ``correlation_id``
        (requests answered, events stored, calls made with each attempt), plus,
        for a command, the CPO's POST of each result (often under its own
        correlation id), as a timeline (see :func:`timeline`)."""
        records = list(self.records(Filters(correlation_id=correlation_id)))
        results = [r for r in records if r["topic"] == "Command.ResultReceived"]
        request_ids = {r["data"].get("request_id") for r in results} - {None}
        if request_ids:
            with self._connect() as conn:
                seen = {r["position"] for r in records}
                for batch in self._scan(conn, after=min(r["position"] for r in results),
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
        events = [item for batch in self._scan(conn, originators=[uuid]) for item in batch]
        if not events:
            raise LookupError(f"the log holds no {module} object {country_code.upper()}/"
                              f"{party_id.upper()}/{object_id}")
        return events

    def history(self, module: str, country_code: str, party_id: str, object_id: str) -> list[dict]:
        """One object over its life: its events, the requests that carried them
        and every call that delivered it (its correlation ids, or its URL), as a timeline.
        ``object_id`` of a token: ``UID|TYPE`` (see :func:`object_id_for`)."""
        with self._connect() as conn:
            events = self._object_events(conn, module, country_code, party_id, object_id)
            records = [self.record(conn, *item) for item in events]
            about = _ObjectUrl(module, events[0][2])
            correlations = {r["correlation_id"] for r in records if r["correlation_id"]}
            seen = {r["position"] for r in records}
            key = o.object_key(module, country_code, party_id, object_id)
            for batch in self._scan(conn, after=events[0][0], topics=[REQUEST_TOPIC, CALL_TOPIC, *DELIVERY_TOPICS],
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
        with self._connect() as conn:
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
        for batch in self._scan(conn, after=events[0][0], topics=[CALL_TOPIC], needles=platforms):
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
        """Records as readable steps, ordered by when each happened (a request
        by when it was received, a call by when it was sent), then by position."""
        deliveries = [r["data"].get("delivery_id") for r in records
                      if r["topic"] == "Call.Made" and r["data"].get("delivery_id")]
        with self._connect() as conn:
            recipients = _delivery_recipients(conn, deliveries)
        unique = {r["position"]: r for r in records}
        steps = [step_of(r, recipients) for r in unique.values()]
        steps.sort(key=lambda s: (_sort_moment(s["at"]), s["position"]))
        return steps


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


def _delivery_recipients(conn, delivery_ids: list[int]) -> dict[int, str]:
    """The party each delivery was for, from the outbox (when it is there)."""
    if not delivery_ids:
        return {}
    try:
        rows = conn.execute("SELECT id, recipient FROM hub_deliveries WHERE id = ANY(%s)",
                            (sorted(set(delivery_ids)),)).fetchall()
    except psycopg.errors.UndefinedTable:
        return {}
    return {row[0]: row[1] for row in rows if row[1]}


def _sort_moment(text: str) -> datetime:
    try:
        return parse_moment(text)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)


def _ocpi_outcome(http_status, status_code, message=None, duration_ms=None) -> str:
    text = f"HTTP {http_status if http_status is not None else '-'}"
    text += f", status {status_code if status_code is not None else '-'}"
    if message:
        text += f": {message}"
    if duration_ms is not None:
        text += f" ({float(duration_ms):.1f} ms)"
    return text


CALL_STEPS = {"delivery": "delivered", "realtime": "forwarded", "registration": "called",
              "still-alive": "probed"}
COMMAND_STEPS = {"Command.Requested": "command stored", "Command.Answered": "command answered",
                 "Command.Failed": "command failed", "Command.ResultReceived": "result received",
                 "Command.TimedOut": "command timed out"}


def step_of(record: dict, recipients: dict[int, str] | None = None) -> dict:
    """One record as a timeline step: ``at``, ``step``, ``who``, ``what``, ``outcome``."""
    data, topic = record["data"], record["topic"]
    at, who, what, outcome = record["recorded_at"], "", topic, ""
    if topic == "Request.Answered":
        at = data.get("received_at") or at
        step = "received"
        sender = data.get("from_party") or ",".join(record["parties"]) or "?"
        who = f"{sender} -> {data.get('to_party') or 'hub'}"
        what = f"{data.get('method')} {data.get('path')}" + (f"?{data['query']}" if data.get("query") else "")
        outcome = "answered " + _ocpi_outcome(data.get("http_status"), data.get("status_code"),
                                              data.get("status_message"), data.get("duration_ms"))
    elif topic == "Call.Made":
        at = data.get("sent_at") or at
        realtime = data.get("purpose") == "realtime"
        if realtime:  # the partner's envelope was relayed, whatever its status code: it answered
            ok = data.get("http_status") is not None and data.get("status_code") is not None
        else:
            ok = (data.get("http_status") or 0) // 100 == 2 and data.get("status_code") == 1000
        step = CALL_STEPS.get(data.get("purpose"), data.get("purpose") or "called")
        if not ok:
            step = {"delivered": "delivery failed", "forwarded": "forward failed"}.get(step, step + " (failed)")
        recipient = (recipients or {}).get(data.get("delivery_id")) or ",".join(record["parties"]) or "?"
        who = f"hub -> {recipient}"
        what = f"{data.get('method')} {data.get('url')}"
        if data.get("delivery_id") is not None:
            what += f" (delivery {data['delivery_id']}, attempt {data.get('attempt')})"
        outcome = _ocpi_outcome(data.get("http_status"), data.get("status_code"), data.get("error"),
                                data.get("duration_ms"))
        if realtime and ok:
            outcome = "answered " + outcome
        facts = [f"{k} {v if isinstance(v, str) else json.dumps(v)}" for part in ("answer", "sent")
                 if isinstance(data.get(part), dict) for k, v in data[part].items()]
        if facts:
            outcome += ": " + ", ".join(facts)
    elif topic in COMMAND_STEPS:
        step = COMMAND_STEPS[topic]
        if topic == "Command.Requested":
            who = f"{data.get('emsp')} -> {data.get('cpo')}"
            what = str(data.get("command"))
            outcome = "to be forwarded with the hub's response_url"
        elif topic == "Command.Answered":
            outcome = f"{_ocpi_outcome(data.get('http_status'), data.get('status_code'))}, result {data.get('result')}"
        elif topic == "Command.Failed":
            outcome = f"status {data.get('status_code')}: {data.get('reason')}"
        elif topic == "Command.ResultReceived":
            result = data.get("result") if isinstance(data.get("result"), dict) else {}
            outcome = f"result {result.get('result')}"
        elif topic == "Command.TimedOut":
            outcome = f"no result by {data.get('at')}"
    elif topic in ("Delivery.Parked", "Delivery.Collapsed"):
        ids = ", ".join(str(i) for i in data.get("delivery_ids") or [])
        who = f"hub -> {data.get('recipient') or ','.join(record['parties']) or '?'}"
        what = f"{data.get('module')} {data.get('object_key')} (deliveries {ids})"
        if topic == "Delivery.Parked":
            step, outcome = "parked", f"left for the operator: {data.get('reason')}"
        else:
            step, outcome = "collapsed", str(data.get("reason"))
    elif record.get("object"):
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        step = {"StalePushIgnored": "ignored (stale)", "RepeatIgnored": "ignored (repeat)"}.get(
            topic.rsplit(".", 1)[-1], "stored")
        if message:
            who = f"{message.get('from')} -> {message.get('to') or 'open routing'} ({message.get('scenario')})"
        target = "/".join(str(data[k]) for k in ("evse_uid", "connector_id") if data.get(k))
        what = f"{topic} {record['object']}" + (f" {target}" if target else "") + f" v{record['version']}"
        if step == "stored":
            outcome = "validated and stored"
        elif step == "ignored (stale)":
            outcome = f"older than the hub's copy ({data.get('pushed_last_updated')}): not applied, not forwarded"
        else:
            outcome = "already received: not stored twice, not forwarded"
    elif topic == "OperatorAction.Taken":
        step = "operator action"
        who = f"operator {data.get('operator')}"
        arguments = data.get("arguments") if isinstance(data.get("arguments"), dict) else {}
        what = f"hub {data.get('command')}" + "".join(
            f" --{k.replace('_', '-')} {v}" for k, v in arguments.items() if v not in (None, "", False))
        outcome = str(data.get("outcome") or "")
    else:
        step = topic
        who = ",".join(record["parties"])
    return {"at": at, "position": record["position"], "step": step, "who": who, "what": what,
            "outcome": outcome, "topic": topic, "record": record}


def object_uuid_of(module: str, reference: str, token_type: str = "RFID") -> UUID:
    """``CC/PID/ID`` of ``module`` -> the object's aggregate id (ValueError if malformed)."""
    parts = reference.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{reference!r}: write an object as COUNTRY_CODE/PARTY_ID/ID")
    if module not in OBJECT_CLASSES:
        raise ValueError(f"--object needs --module {', '.join(OBJECT_MODULES)}")
    return o.object_uuid(module, parts[0], parts[1], object_id_for(module, parts[2], token_type))
