"""Inbound limits (issue 13, item 2): body size, chunked bodies, rate per platform.

- ``HUB_MAX_BODY_BYTES`` (4 MiB): a larger body gets HTTP 413 with the envelope
  (2000) and is not read; the connection is then closed (see below).
- A body sent with ``Transfer-Encoding: chunked`` (no ``Content-Length``) is read
  here, up to the same limit, and handed on like any other.
- JSON nested deeper than :data:`hub.ocpi.limits.MAX_JSON_DEPTH` is refused
  where it is parsed (handlers/app.py, handlers/errors.py): 2001.
- ``HUB_RATE_LIMIT`` (200): requests per second per platform (token bucket,
  bursts of twice as many); beyond it HTTP 429 with ``Retry-After`` and the
  envelope. The buckets live in each web process (no shared state, no database
  round trip), so the limit holds per process: N processes behind one address
  let a platform through at up to N times the rate (docs/operations.md).

Closing a connection whose body was not read: an answer sent before reading
a large body (404, 405, 413, 401 ...) cannot keep the connection, because the
unread bytes would be taken for the next request. Bodies up to
:data:`DRAIN_BYTES` are read and dropped, so the connection stays usable;
larger ones set ``environ["hub.close_connection"]``, on which the WSGI entry
point (hub/entrypoints/wsgi.py) makes gunicorn answer ``Connection: close``.
"""

from __future__ import annotations

import io
import math
import threading
import time

import falcon

from hub.ocpi.errors import OcpiError
from hub.ocpi.status import OcpiStatus

CLOSE_CONNECTION = "hub.close_connection"
DRAIN_BYTES = 64 * 1024


class PayloadTooLarge(OcpiError):
    def __init__(self, limit: int) -> None:
        super().__init__(OcpiStatus.CLIENT_ERROR,
                         f"body: larger than {limit} bytes (HUB_MAX_BODY_BYTES); nothing was read",
                         http_status=413)


class RateLimited(OcpiError):
    def __init__(self, rate: float, retry_after: int) -> None:
        super().__init__(OcpiStatus.CLIENT_ERROR,
                         f"too many requests: this platform may send {rate:g} per second "
                         f"(HUB_RATE_LIMIT); retry after {retry_after} s", http_status=429)
        self.headers = {"Retry-After": str(retry_after)}


def is_chunked(req: falcon.Request) -> bool:
    return "chunked" in (req.get_header("Transfer-Encoding") or "").lower()


def limit_body(req: falcon.Request, limit: int) -> None:
    """413 for a declared body over ``limit``; a chunked body read now (up to ``limit``) and
    put back as a plain one with its ``Content-Length``."""
    length = req.content_length
    if length is not None and length > limit:
        req.env[CLOSE_CONNECTION] = True
        raise PayloadTooLarge(limit)
    if length is None and is_chunked(req) and req.env.get("wsgi.input_terminated"):
        # The server decoded the chunks and ends the input at the body's end (gunicorn does;
        # a server that does not would block this read until the client hangs up).
        body = req.stream.read(limit + 1)
        if len(body) > limit:
            req.env[CLOSE_CONNECTION] = True
            raise PayloadTooLarge(limit)
        req.env["CONTENT_LENGTH"] = str(len(body))
        req.env["wsgi.input"] = req.stream = io.BytesIO(body)


def settle_body(req: falcon.Request) -> None:
    """After the answer: drop a small unread body, or ask for the connection to close."""
    if req.env.get(CLOSE_CONNECTION):
        return
    length = req.content_length or 0
    try:
        if length <= 0 or req.bounded_stream.eof:
            return
        if length <= DRAIN_BYTES:
            req.bounded_stream.exhaust()
            return
    except Exception:  # the client went away mid-body, a bad Content-Length: nothing to keep
        pass
    req.env[CLOSE_CONNECTION] = True


class RateLimiter:
    """Token buckets per platform: ``rate`` a second, holding at most ``2 * rate`` (at least 1)."""

    def __init__(self, rate: float, clock=time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, 2 * rate)  # a rate below 0.5/s still lets one request through
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # platform -> (tokens, at)
        self._lock = threading.Lock()

    def check(self, platform_id: str) -> None:
        """Take one token for ``platform_id``, or raise :class:`RateLimited`."""
        if self.rate <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(platform_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[platform_id] = (tokens - 1, now)
                return
            self._buckets[platform_id] = (tokens, now)
            if len(self._buckets) > 100_000:  # platforms are few; never let the map grow without end
                self._buckets.clear()
        raise RateLimited(self.rate, max(1, math.ceil((1 - tokens) / self.rate)))
