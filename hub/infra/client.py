"""The hub's OCPI HTTP client: one pooled, keep-alive session per process.

Every outgoing request carries ``Authorization: Token base64(token)``, a new
``X-Request-ID`` and the given (or a new) ``X-Correlation-ID``. Answers are
parsed into :class:`OcpiResponse`; transport failures raise
:class:`PartnerUnreachable` or :class:`PartnerTimeout`.

A call made with ``deadline`` (the real-time paths) gets one budget for all of
it: connecting, sending, the status line, the headers and the whole body. A
socket timeout alone bounds each read, so a partner sending a byte now and then
could hold the call open for ever; here every read of the answer is given only
the time left (:class:`_DeadlineReader`).

The environment is read once, when the client is made: a CA bundle
(``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``) becomes the session's
``verify``; proxy settings (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) are
honoured when one is set. Without a proxy setting the session does not rescan
the environment on every call, as requests otherwise does (a measurable share
of an authorization). A ``.netrc`` file never replaces the hub's
``Authorization: Token`` header.

Every connection goes through the outbound guard (:mod:`hub.infra.outbound`):
the host is resolved once, every address checked, and the socket connected to
a checked address, so DNS rebinding cannot get around it; a refused URL raises
:class:`PartnerRefused`. Through a proxy the proxy makes the connection: the
target's addresses are then checked before the call (a rebinding between the
two lookups is the proxy's to stop). Redirects are never followed. An answer
longer than the guard's ``max_response_bytes`` is cut off and raises
:class:`PartnerBadResponse`, as does one nested deeper than
:data:`hub.ocpi.limits.MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import http.client
import io
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import orjson
import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NameResolutionError, NewConnectionError
from urllib3.util import Timeout, parse_url

from hub.infra.outbound import OutboundGuard, OutboundRefused
from hub.infra.security import encode_header_token
from hub.ocpi.limits import JsonTooDeep, loads_bounded
from hub.ocpi.numbers import dumps


class PartnerCallError(Exception):
    """The partner could not be used (no connection, timeout, not OCPI)."""

    def __init__(self, message: str, *, request_id: str, elapsed_ms: float,
                 http_status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.elapsed_ms = elapsed_ms
        self.http_status = http_status
        self.headers = headers  # of an answer that was not OCPI (e.g. a proxy's 429 with Retry-After)


class PartnerUnreachable(PartnerCallError):
    pass


class PartnerTimeout(PartnerCallError):
    pass


class PartnerBadResponse(PartnerCallError):
    """The partner answered, but not with an OCPI envelope."""


class PartnerRefused(PartnerCallError):
    """The outbound guard refused the URL: no request was sent (the message names URL and reason)."""


@dataclass
class OcpiResponse:
    http_status: int
    body: dict
    headers: dict[str, str]
    request_id: str
    correlation_id: str
    elapsed_ms: float
    raw: bytes = field(repr=False, default=b"")

    @property
    def status_code(self) -> int | None:
        code = self.body.get("status_code")
        return code if isinstance(code, int) else None

    @property
    def data(self) -> object:
        return self.body.get("data")

    @property
    def ok(self) -> bool:
        return 200 <= self.http_status < 300 and self.status_code is not None and 1000 <= self.status_code < 2000


MAX_ORIGINS = 1024  # partner origins (scheme, host, port) whose connection pools are kept
_call = threading.local()  # ``deadline``: time.monotonic() by which this thread's call must end; ``guard``
_STRICT = OutboundGuard()  # a connection made outside OcpiClient.request: public addresses only


class _DeadlineReader(io.RawIOBase):
    """The socket reads of one answer, each allowed only the time left before the deadline."""

    def __init__(self, raw: io.RawIOBase, sock, deadline: float) -> None:
        super().__init__()
        self.raw, self.sock, self.deadline = raw, sock, deadline

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.raw.fileno()

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's deadline passed")
        self.sock.settimeout(left)
        return self.raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, **kwargs) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = getattr(_call, "deadline", None)
        if deadline is not None:  # nothing was read yet: swap the buffered socket file for ours
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline))


class _DeadlineSending:
    """The hub's connections: the outbound guard when connecting, the call's deadline when
    connecting, sending and reading the answer."""

    response_class = _DeadlineResponse

    def _new_conn(self) -> socket.socket:
        """Resolve once, check every address with the guard, connect to a checked one."""
        if getattr(self, "proxy", None) is not None:  # the operator's proxy connects, not the hub
            return super()._new_conn()
        guard = getattr(_call, "guard", None) or _STRICT
        try:
            infos = guard.resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except (UnicodeError, ValueError) as exc:  # a host name no resolver takes
            raise NewConnectionError(self, f"cannot resolve {self.host!r}: {exc}") from exc
        error: OSError | None = None
        for family, kind, proto, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for level, option, value in self.socket_options or ():
                    sock.setsockopt(level, option, value)
                if isinstance(self.timeout, int | float):
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
                return sock
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeoutError(self, f"connecting to {self.host} timed out") from exc
            except OSError as exc:
                sock.close()
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    def request(self, *args, **kwargs) -> None:
        deadline = getattr(_call, "deadline", None)
        if deadline is not None:  # connecting (plain HTTP) and sending get the time left too
            left = deadline - time.monotonic()
            current = self.timeout if isinstance(self.timeout, int | float) else left
            self.timeout = max(0.001, min(current, left))
        super().request(*args, **kwargs)


class _DeadlineConnection(_DeadlineSending, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineSending, HTTPSConnection):
    pass


class _DeadlinePool(HTTPConnectionPool):
    ConnectionCls = _DeadlineConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """Pooled keep-alive connections whose answers honour a call's deadline."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _DeadlinePool, "https": _DeadlineHTTPSPool}
        self._pool_keys: dict[tuple, tuple[dict, dict]] = {}
        self._pools: dict[tuple, HTTPConnectionPool] = {}

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        """The origin's connection pool, looked up without the pool manager's lock.

        urllib3's pool manager takes one lock on every call; a worker's lanes queued on it
        (a third of the worker's samples in ``fanload``). A pool the manager dropped (it
        keeps ``pool_connections`` origins) is closed; it is then asked for a new one.
        """
        if proxies and select_proxy(request.url, proxies):
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        key = (*request.url.split("/", 3)[:3], verify, str(cert))
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:
            if len(self._pools) >= 4 * MAX_ORIGINS:
                self._pools.clear()
            pool = self._pools[key] = super().get_connection_with_tls_context(request, verify, proxies, cert)
        return pool

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        """As requests does, once per origin: it looks at the CA bundle on disk on every call."""
        key = (*request.url.split("/", 3)[:3], verify, str(cert))
        found = self._pool_keys.get(key)
        if found is None:
            found = self._pool_keys[key] = super().build_connection_pool_key_attributes(request, verify, cert)
        return dict(found[0]), dict(found[1])


class OcpiClient:
    def __init__(self, *, connect_timeout: float = 3.0, read_timeout: float = 10.0,
                 pool_size: int = 32, user_agent: str = "ChargeIndia-Hub",
                 guard: OutboundGuard | None = None) -> None:
        """``guard``: where calls may go and how much of an answer is read; by default
        the one of ``HUB_PARTNER_NETWORKS_ALLOWED`` and ``HUB_PARTNER_MAX_RESPONSE_BYTES``."""
        if guard is None:
            from hub.infra.config import Settings

            guard = Settings.from_env().outbound_guard()
        self.guard = guard
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        adapter = _DeadlineAdapter(pool_connections=MAX_ORIGINS, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = user_agent
        self._headers = dict(self.session.headers)  # the calls made through urllib3 directly send them too
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self.session.verify = bundle
        self.session.trust_env = uses_proxy()
        self.session.auth = _token_header_only  # never credentials from a .netrc file

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        token: str,
        *,
        json: object = None,
        headers: dict[str, str] | None = None,
        correlation_id: str | None = None,
        timeout: float | tuple[float, float] | None = None,
        params: dict | None = None,
        deadline: float | None = None,
    ) -> OcpiResponse:
        """One call. ``deadline``: seconds the whole call may take (overrides ``timeout``)."""
        request_id = _request_id()
        correlation_id = correlation_id or str(uuid.uuid4())
        all_headers = {
            "Authorization": encode_header_token(token),
            "X-Request-ID": request_id,
            "X-Correlation-ID": correlation_id,
        }
        data = None
        if json is not None:
            data = dumps(json)  # numbers exactly as partners sent them
            all_headers["Content-Type"] = "application/json"
        if headers:
            all_headers.update(headers)
        started = time.perf_counter()
        ends = None
        if deadline is not None:
            ends = time.monotonic() + deadline
            timeout = (deadline, deadline)
            _call.deadline = ends
        _call.guard = self.guard
        try:
            if self.session.trust_env:  # a proxy may connect for the hub: check the target first
                self.guard.check_url(url)
            pool = None if self.session.trust_env or params else self._pool(url)
            if pool is not None:
                limits = timeout or self.timeout
                connect, read = limits if isinstance(limits, tuple) else (limits, limits)
                response = _Direct(pool.urlopen(
                    method, parse_url(url).request_uri, body=data, headers={**self._headers, **all_headers},
                    retries=False, redirect=False, assert_same_host=False, preload_content=False,
                    timeout=Timeout(connect=connect, read=read)))
            else:
                response = self.session.request(
                    method, url, data=data, headers=all_headers, params=params,
                    timeout=timeout or self.timeout, allow_redirects=False, stream=True,
                )
            content = self._read(response, method, url, request_id, started)
        except OutboundRefused as exc:
            raise PartnerRefused(f"{method} {url}: {exc.reason}", request_id=request_id,
                                 elapsed_ms=_ms(started)) from None
        except (requests.RequestException, HTTPError) as exc:
            # Past the deadline, whatever broke off the call (a read timeout mid-body
            # surfaces as a ConnectionError) is the partner not answering in time.
            if isinstance(exc, requests.Timeout | TimeoutError) or (ends is not None and time.monotonic() >= ends):
                raise PartnerTimeout(f"{method} {url}: no answer in time", request_id=request_id,
                                     elapsed_ms=_ms(started)) from exc
            raise PartnerUnreachable(f"{method} {url}: {type(exc).__name__}", request_id=request_id,
                                     elapsed_ms=_ms(started)) from exc
        finally:
            _call.deadline = None
            _call.guard = None
        elapsed = _ms(started)
        try:
            body = loads_bounded(content) if content else {}
        except JsonTooDeep as exc:
            raise PartnerBadResponse(f"{method} {url}: HTTP {response.status_code}, answer {exc}",
                                     request_id=request_id, elapsed_ms=elapsed,
                                     http_status=response.status_code) from None
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise PartnerBadResponse(
                f"{method} {url}: HTTP {response.status_code} without an OCPI envelope",
                request_id=request_id, elapsed_ms=elapsed, http_status=response.status_code,
                headers=dict(response.headers),
            )
        return OcpiResponse(
            http_status=response.status_code,
            body=body,
            headers=dict(response.headers),
            request_id=request_id,
            correlation_id=correlation_id,
            elapsed_ms=elapsed,
            raw=content,
        )

    def _pool(self, url: str) -> HTTPConnectionPool | None:
        """The pool to call ``url`` through urllib3 directly (no proxy set): requests' own work
        per call (preparing the request, cookies, hooks) was a large share of a delivery's CPU.
        None for a URL requests should judge (not plain http(s), not plain ASCII)."""
        if not url.startswith(("http://", "https://")) or not url.isascii() or any(c in url for c in " \t\r\n"):
            return None
        probe = requests.PreparedRequest()
        probe.url = url
        return self.session.get_adapter(url).get_connection_with_tls_context(probe, self.session.verify)

    def _read(self, response: requests.Response, method: str, url: str, request_id: str,
              started: float) -> bytes:
        """The answer's body, at most ``guard.max_response_bytes`` of it (counted as decoded);
        longer: the connection is dropped and :class:`PartnerBadResponse` raised."""
        limit = self.guard.max_response_bytes
        chunks, size = [], 0
        try:
            declared = int(response.headers.get("Content-Length") or 0)
        except ValueError:
            declared = 0
        if declared <= limit:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > limit:
                    break
                chunks.append(chunk)
        if declared > limit or size > limit:
            response.close()  # not back to the pool: the rest of the answer is never read
            raise PartnerBadResponse(
                f"{method} {url}: HTTP {response.status_code}, answer cut off: longer than "
                f"{limit} bytes (HUB_PARTNER_MAX_RESPONSE_BYTES)", request_id=request_id,
                elapsed_ms=_ms(started), http_status=response.status_code)
        return b"".join(chunks)


class _Direct:
    """An answer read through urllib3 directly, as :meth:`OcpiClient._read` reads requests' own."""

    def __init__(self, raw) -> None:
        self.raw, self.status_code, self.headers = raw, raw.status, raw.headers

    def iter_content(self, size: int):
        yield from self.raw.stream(size, decode_content=True)
        self.raw.release_conn()

    def close(self) -> None:
        self.raw.close()
        self.raw.release_conn()


PROXY_SETTINGS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def uses_proxy(environ=os.environ) -> bool:
    """Whether a proxy setting is in the environment (in either case)."""
    return any(name.lower() in PROXY_SETTINGS and value for name, value in environ.items())


def _token_header_only(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """requests' auth hook: the request keeps the Authorization header the hub set."""
    return request


def _request_id() -> str:
    """A random version-4 UUID for ``X-Request-ID``: an identifier, not a secret, so it comes from
    ``random`` rather than one ``os.urandom`` system call per partner call."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
