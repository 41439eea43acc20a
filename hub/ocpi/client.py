"""The hub's OCPI HTTP client: one pooled, keep-alive session per process.

Every outgoing request carries ``Authorization: Token base64(token)``, a new
``X-Request-ID`` and the given (or a new) ``X-Correlation-ID``. Answers are
parsed into :class:`OcpiResponse`; transport failures raise
:class:`PartnerUnreachable` or :class:`PartnerTimeout`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import orjson
import requests
from requests.adapters import HTTPAdapter

from hub.security import encode_header_token


class PartnerCallError(Exception):
    """The partner could not be used (no connection, timeout, not OCPI)."""

    def __init__(self, message: str, *, request_id: str, elapsed_ms: float,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.elapsed_ms = elapsed_ms
        self.http_status = http_status


class PartnerUnreachable(PartnerCallError):
    pass


class PartnerTimeout(PartnerCallError):
    pass


class PartnerBadResponse(PartnerCallError):
    """The partner answered, but not with an OCPI envelope."""


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


class OcpiClient:
    def __init__(self, *, connect_timeout: float = 3.0, read_timeout: float = 10.0,
                 pool_size: int = 32, user_agent: str = "ChargeIndia-Hub") -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = user_agent

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
    ) -> OcpiResponse:
        request_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        all_headers = {
            "Authorization": encode_header_token(token),
            "X-Request-ID": request_id,
            "X-Correlation-ID": correlation_id,
        }
        data = None
        if json is not None:
            data = orjson.dumps(json)
            all_headers["Content-Type"] = "application/json"
        if headers:
            all_headers.update(headers)
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, url, data=data, headers=all_headers, params=params,
                timeout=timeout or self.timeout, allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise PartnerTimeout(f"{method} {url}: no answer in time", request_id=request_id,
                                 elapsed_ms=_ms(started)) from exc
        except requests.RequestException as exc:
            raise PartnerUnreachable(f"{method} {url}: {type(exc).__name__}", request_id=request_id,
                                     elapsed_ms=_ms(started)) from exc
        elapsed = _ms(started)
        try:
            body = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise PartnerBadResponse(
                f"{method} {url}: HTTP {response.status_code} without an OCPI envelope",
                request_id=request_id, elapsed_ms=elapsed, http_status=response.status_code,
            )
        return OcpiResponse(
            http_status=response.status_code,
            body=body,
            headers=dict(response.headers),
            request_id=request_id,
            correlation_id=correlation_id,
            elapsed_ms=elapsed,
            raw=response.content,
        )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
