"""The OCPI response envelope and the DateTime format, written once."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hub.ocpi.status import OcpiStatus

# RFC 3339 in UTC as OCPI 2.2.1 types.asciidoc allows: "Z" or no zone
# designator, optional fraction; "+00:00" and other offsets are not allowed.
DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?Z?$"
)


def format_datetime(moment: datetime) -> str:
    """``2026-11-25T06:05:07.123Z`` (always UTC, milliseconds)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_datetime(value: str) -> datetime:
    """Parse an OCPI DateTime; raises ValueError for anything else."""
    if not isinstance(value, str) or len(value) > 25 or not DATETIME_RE.match(value):
        raise ValueError("expected an RFC 3339 UTC DateTime such as 2026-01-31T12:00:00Z")
    text = value.rstrip("Z")
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"not a valid date/time: {exc}") from None


def now() -> str:
    return format_datetime(datetime.now(UTC))


def envelope_of_json_list(items: list[str], status_code: int = OcpiStatus.SUCCESS) -> bytes:
    """The envelope of :func:`envelope` whose ``data`` is a list of objects that are
    already JSON text (bodies kept as partners pushed them): joined, never parsed."""
    import orjson

    rest = orjson.dumps(envelope(None, status_code))  # b'{"status_code":…,"timestamp":…}'
    return b'{"data":[' + ",".join(items).encode() + b"]," + rest[1:]


def envelope(
    data: object = None,
    status_code: int = OcpiStatus.SUCCESS,
    status_message: str | None = None,
) -> dict:
    """``{data, status_code, status_message, timestamp}``; ``data`` omitted when None."""
    body: dict = {}
    if data is not None:
        body["data"] = data
    body["status_code"] = int(status_code)
    if status_message:
        body["status_message"] = status_message
    body["timestamp"] = now()
    return body
