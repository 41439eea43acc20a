"""Every error becomes the OCPI envelope with the HTTP status the spec pairs."""

from __future__ import annotations

import logging

import falcon

from hub.infra.database import database_unavailable
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import OcpiError
from hub.ocpi.limits import JsonTooDeep
from hub.ocpi.status import OcpiStatus

log = logging.getLogger(__name__)


def handle_ocpi_error(req: falcon.Request, resp: falcon.Response, exc: OcpiError, params) -> None:
    resp.status = exc.http_status
    resp.media = envelope(exc.data, exc.status_code, exc.message)
    if exc.http_status == 401:
        resp.set_header("WWW-Authenticate", "Token")
    for name, value in (getattr(exc, "headers", None) or {}).items():  # e.g. a 429's Retry-After
        resp.set_header(name, value)


def serialize_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Falcon's own errors (unknown path, wrong method, bad JSON) as envelopes."""
    if isinstance(exc, falcon.MediaMalformedError) and isinstance(exc.__cause__, JsonTooDeep):
        code, message = OcpiStatus.INVALID_PARAMETERS, f"body: {exc.__cause__}; not an OCPI object"
    elif isinstance(exc, falcon.MediaMalformedError):
        code, message = OcpiStatus.INVALID_PARAMETERS, "body: not valid JSON"
    elif isinstance(exc, falcon.MediaNotFoundError):
        code, message = OcpiStatus.INVALID_PARAMETERS, "body: missing; expected JSON"
    elif isinstance(exc, falcon.HTTPUnsupportedMediaType):  # a Content-Type that is no media type
        code, message = OcpiStatus.INVALID_PARAMETERS, "Content-Type: not a media type; send application/json"
    elif isinstance(exc, falcon.HTTPNotFound):
        code, message = OcpiStatus.CLIENT_ERROR, f"no such endpoint: {req.path}"
    elif isinstance(exc, falcon.HTTPMethodNotAllowed):
        code, message = OcpiStatus.CLIENT_ERROR, f"method {req.method} is not allowed on {req.path}"
    elif exc.status_code >= 500:
        code, message = OcpiStatus.SERVER_ERROR, exc.title or "server error"
    else:
        code = OcpiStatus.CLIENT_ERROR
        message = exc.description or exc.title or "client error"
    resp.media = envelope(None, code, message)
    resp.content_type = falcon.MEDIA_JSON


def handle_unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception, params) -> None:
    if isinstance(exc, falcon.HTTPError):  # keep Falcon's own status codes
        resp.status = exc.status
        serialize_http_error(req, resp, exc)
        for name, value in (exc.headers or {}).items():
            resp.set_header(name, value)
        return
    if database_unavailable(exc):
        database_down(req, resp, exc)
        return
    log.exception("unexpected error on %s %s", req.method, req.path)
    resp.status = 500
    resp.media = envelope(None, OcpiStatus.SERVER_ERROR, "internal error; the request was not accepted")


#: Seconds a partner is asked to wait before sending again while the database is unavailable.
RETRY_AFTER = 5


def database_down(req: falcon.Request, resp: falcon.Response, exc: BaseException) -> None:
    """PostgreSQL could not be used: 503, 3000 and Retry-After. A 503 acknowledges nothing:
    the partner sends the request again (pushes are idempotent)."""
    log.warning("database unavailable on %s %s: %s", req.method, req.path,
                (str(exc).strip().splitlines() or [type(exc).__name__])[0])
    req.context.database_down = True  # the middleware records nothing (it could not)
    resp.status = 503
    resp.media = envelope(None, OcpiStatus.SERVER_ERROR,
                          "the hub's database is unavailable; send the request again later")
    resp.set_header("Retry-After", str(RETRY_AFTER))
