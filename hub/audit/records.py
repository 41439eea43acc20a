"""What the audit trail shows of one event: a plain, JSON-able, redacted *record*::

    {"position": 22, "recorded_at": "2026-11-25T07:39:57.704593Z",
     "topic": "Location.Put", "aggregate_id": "...", "version": 1,
     "module": "locations", "object": "locations/IN/ECP/LOC1",
     "correlation_id": "...", "parties": ["IN/CIH/HUB", "IN/ECP/CPO"],
     "data": {...the event's attributes, redacted...}}

``recorded_at`` is the event's own timestamp (when the hub created it);
``module``, ``object``, ``correlation_id`` and ``parties`` are derived from
the event (:meth:`hub.audit.events.EventReader.record`).

Secrets never leave the audit reads: :func:`redact` drops every key of
:data:`DENY_KEYS` at any depth (token hashes, the encrypted partner token,
a command's or charging profile exchange's ``result_id`` and ``hub_response_url``,
Authorization headers, credentials tokens) and masks the capability segment of any
``/commands/sender/{result_id}`` or ``/chargingprofiles/sender/results/{result_id}``
URL or path.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

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
# The hub's response_urls: commands and ChargingProfiles results (hub/domain/chargingprofiles.py).
CAPABILITY = re.compile(r"(/commands/sender/|/chargingprofiles/sender/results/)[^/?#\s\"']+", re.IGNORECASE)
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
