"""Errors that become an OCPI envelope.

Anything that rejects a request raises :class:`OcpiError` (or a subclass); the
HTTP layer turns it into ``{data, status_code, status_message, timestamp}``
with the paired HTTP status. Messages name the offending field and never carry
a token.
"""

from __future__ import annotations

from hub.ocpi.status import OcpiStatus


class OcpiError(Exception):
    """A request the hub answers with a non-1000 OCPI status."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        http_status: int = 200,
        data: object = None,
    ) -> None:
        super().__init__(message)
        self.status_code = int(status_code)
        self.message = message
        self.http_status = http_status
        self.data = data


class InvalidParameters(OcpiError):
    """2001: a field is missing, malformed or inconsistent (names the field)."""

    def __init__(self, message: str, *, http_status: int = 200) -> None:
        super().__init__(OcpiStatus.INVALID_PARAMETERS, message, http_status=http_status)


class Unauthorized(OcpiError):
    """HTTP 401: missing, unknown or no-longer-valid credentials token."""

    def __init__(self, message: str = "Unknown or missing credentials token") -> None:
        super().__init__(OcpiStatus.CLIENT_ERROR, message, http_status=401)


class MethodNotAllowed(OcpiError):
    """HTTP 405: e.g. credentials POST when already registered."""

    def __init__(self, message: str) -> None:
        super().__init__(OcpiStatus.CLIENT_ERROR, message, http_status=405)


class NotFound(OcpiError):
    """HTTP 404 for an object or path the hub does not have."""

    def __init__(self, message: str, status_code: int = OcpiStatus.CLIENT_ERROR) -> None:
        super().__init__(status_code, message, http_status=404)


class HubError(OcpiError):
    """4xxx: the hub itself could not route the message (HTTP 200)."""
