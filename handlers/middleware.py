"""What every OCPI request needs, in one place.

1. ``X-Request-ID`` / ``X-Correlation-ID``: read (generated when missing) and
   echoed on every response, errors included.
2. Authentication: ``Authorization: Token …`` (Base64 per 2.2.1, raw token
   accepted too); unknown or missing -> HTTP 401; a pending token (A) only on
   versions and credentials. Known tokens and the receivers ``classify`` looks up
   come from the process's caches (:mod:`hub.infra.invalidation`, ``HUB_CACHE_MAX_AGE``).
3. Routing: for functional modules, :func:`hub.domain.routing.classify` once; the
   result is ``req.context.routing``.
4. Audit and commit: the request's ``Request.Answered`` record and whatever the
   handler collected in ``req.context.uow`` are saved in one transaction
   before the response leaves; a failed commit turns the answer into 3000.
   When another request changed the same object first (the event store
   refuses a second version N+1), a push receiver's responder runs again on
   the new state, so concurrent pushes to one Location are all applied.
   A real-time relay (``record_after_answer``) is answered first and recorded by
   the process's recorder thread (:class:`handlers.context.Recorder`).
5. Inbound limits (handlers/limits.py): the body size (413) and chunked bodies
   first, before anything is read; the platform's rate (429) once its token is
   known (a request refused for its rate is logged and counted, not recorded);
   after the answer, an unread body is dropped or the connection closed.
6. Observation, last: one JSON log line per request (ids, module, party, the
   HTTP status and the OCPI status code and message, in the text too: ``POST
   /ocpi/2.2.1/credentials -> 200 3001 token A already used``; never a token)
   and the request metrics (``handlers/metrics.py``).
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from datetime import UTC, datetime

import falcon
from eventsourcing.persistence import IntegrityError

from handlers.context import WebContext
from handlers.errors import database_down, handle_ocpi_error, handle_unexpected
from handlers.limits import RateLimiter, limit_body, settle_body
from handlers.metrics import OPERATIONAL_PATHS, RequestMetrics, party_label
from handlers.receipts import attach_receipt
from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
from hub.audit.records import redact
from hub.domain.audit import Request
from hub.domain.routing import FROM_CC, FROM_PID, TO_CC, TO_PID, classify
from hub.infra.database import database_unavailable
from hub.infra.security import header_token_candidates
from hub.ocpi.envelope import envelope, format_datetime
from hub.ocpi.errors import OcpiError, Unauthorized
from hub.ocpi.status import OcpiStatus
from hub.services.application import UnitOfWork
from projections.queries import authenticate, find_party

log = logging.getLogger("hub.requests")

CONFIGURATION_MODULES = frozenset({"versions", "credentials", "hubclientinfo"})
PENDING_TOKEN_MODULES = frozenset({"versions", "credentials"})
CONFLICT_RETRIES = 20  # runs of a responder whose object another request changed meanwhile


class OcpiMiddleware:
    def __init__(self, ctx: WebContext, metrics: RequestMetrics | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.limiter = RateLimiter(ctx.settings.rate_limit)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        if "//" in req.path:
            # The published module URLs end in '/': ``{url}/{country_code}/...`` has an empty
            # segment, tolerated (Falcon routes on req.path as this sets it).
            req.path = re.sub("/{2,}", "/", req.path)
        req.context.received_at = format_datetime(datetime.now(UTC))
        req.context.request_id = _header_id(req, "X-Request-ID")
        req.context.correlation_id = _header_id(req, "X-Correlation-ID")
        req.context.caller = None
        req.context.routing = None
        req.context.uow = None
        req.context.web = self.ctx
        req.context.status_code = None
        req.context.status_message = None
        # Real-time handlers set this: what they recorded (the calls made) stays, whatever the answer.
        req.context.keep = False
        resp.set_header("X-Request-ID", req.context.request_id)
        resp.set_header("X-Correlation-ID", req.context.correlation_id)
        limit_body(req, self.ctx.settings.max_body_bytes)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        req.context.params = params
        if getattr(resource, "public", False):
            return
        module = resource.module
        caller = authenticate(self.ctx.app.pool, header_token_candidates(req.get_header("Authorization")))
        if caller is None:
            raise Unauthorized()
        self.limiter.check(str(caller.platform_id))
        req.context.caller = caller  # from here on the request is recorded, even if refused
        req.context.uow = UnitOfWork(self.ctx.app)
        if caller.token_kind == "PENDING" and module not in PENDING_TOKEN_MODULES:
            raise Unauthorized("this token is only valid for the versions and credentials modules "
                               "until registration completes")
        if (module not in PENDING_TOKEN_MODULES and caller.parties
                and all(p.suspended for p in caller.parties)):
            # Versions and credentials stay usable, so a suspended partner can rotate or unregister.
            raise Unauthorized("every party of this connection is suspended")
        if module not in CONFIGURATION_MODULES:
            req.context.routing = classify(
                module=module,
                interface=resource.interface,
                method=req.method,
                is_list=getattr(resource, "is_list", False),
                headers={h: req.get_header(h) for h in (FROM_CC, FROM_PID, TO_CC, TO_PID)},
                caller_party=lambda cc, pid, roles: _own_party(caller, cc, pid, roles),
                find_receiver=lambda cc, pid, _role: find_party(self.ctx.app.pool, cc, pid),
                able_senders=lambda roles: _able_senders(caller, roles),
                named_by_url=(lambda: resource.sender_named_by_url(req, params))
                if hasattr(resource, "sender_named_by_url") else None,
            )

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource,
                         req_succeeded: bool) -> None:
        settle_body(req)
        routing = getattr(req.context, "routing", None)
        if routing is not None and resp.get_header(FROM_CC) is None:
            # Answers come from the hub unless a forwarding handler set the receiver's ids.
            resp.set_header(TO_CC, routing.from_country_code)
            resp.set_header(TO_PID, routing.from_party_id)
            resp.set_header(FROM_CC, HUB_COUNTRY_CODE)
            resp.set_header(FROM_PID, HUB_PARTY_ID)
        caller = getattr(req.context, "caller", None)
        if caller is None and resource is None and req.path.startswith("/ocpi/"):
            # An unknown path (Falcon skips process_resource): answered 404, and recorded
            # like any other request when a partner's valid token came with it.
            caller = authenticate(self.ctx.app.pool, header_token_candidates(req.get_header("Authorization")))
            if caller is not None:
                req.context.caller, req.context.uow = caller, UnitOfWork(self.ctx.app)
        if caller is None:
            self._observe(req, resp, resource, None)
            return
        if getattr(resource, "record_after_answer", False):
            # A real-time relay: the partner's answer is final whatever the hub records, so
            # neither the charger nor the caller's next request on this connection waits for
            # the hub's disk; the record is committed by the process's recorder thread
            # (handlers/context.py ``Recorder``), which a clean shutdown drains.
            req.context.duration_ms = _elapsed_ms(req)
            uow: UnitOfWork = req.context.uow
            record = self._request_record(req, resp, resource, routing, caller, True)
            # The request's record first: it was received before the call it made, so the log (and a
            # trace, which orders steps of the same millisecond by position) tells them in that order.
            events = [e for aggregate in (record, *uow.aggregates) for e in aggregate.collect_events()]
            uow.discard()  # its events are in hand; nothing else of it is needed
            self.ctx.recorder.submit(events, f"{req.method} {redact(req.path)}")
            self._observe(req, resp, resource, caller)
            return
        req.context.duration_ms = None
        self._record(req, resp, resource, routing, caller, req_succeeded)
        attach_receipt(self.ctx, req, resp)  # the signed Hub-Receipt of a push answered 1000
        self._observe(req, resp, resource, caller)

    def _record(self, req: falcon.Request, resp: falcon.Response, resource, routing, caller,
                req_succeeded: bool) -> None:
        """Commit the request's record (retrying a push that lost a write race) before answering."""
        if getattr(req.context, "database_down", False):  # answered 503: nothing can be recorded now
            req.context.uow.release()
            return
        try:
            for attempt in range(CONFLICT_RETRIES + 1):
                try:
                    self._commit(req, resp, resource, routing, caller, req_succeeded)
                    break
                except IntegrityError:
                    if attempt < CONFLICT_RETRIES and getattr(resource, "retry_on_conflict", False):
                        # Another process wrote this object first: back off a little (jittered,
                        # so racing processes fall out of step), then apply the push again.
                        time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** attempt)))
                        req_succeeded = self._respond_again(req, resp, resource)
                        continue
                    log.exception("could not record %s %s", req.method, req.path)
                except Exception as exc:
                    if database_unavailable(exc):
                        database_down(req, resp, exc)
                        break
                    log.exception("could not record %s %s", req.method, req.path)
                resp.status = 500
                resp.media = envelope(None, OcpiStatus.SERVER_ERROR,
                                      "the hub could not store this request; nothing was accepted")
                break
        finally:
            req.context.uow.release()

    def _commit(self, req: falcon.Request, resp: falcon.Response, resource, routing, caller,
                req_succeeded: bool) -> None:
        """Save the request's record with what the handler collected, in one transaction."""
        req.context.uow.commit(self._request_record(req, resp, resource, routing, caller, req_succeeded))

    @staticmethod
    def _request_record(req: falcon.Request, resp: falcon.Response, resource, routing, caller,
                        req_succeeded: bool) -> Request:
        """The request's ``Request.Answered`` record (a refused push keeps nothing else)."""
        status_code = _status_code(resp, req)
        if not req.context.keep and (not req_succeeded or status_code != OcpiStatus.SUCCESS):
            req.context.uow.discard()  # a refused push leaves nothing behind but its record
        return Request(
            platform_id=str(caller.platform_id),
            from_party=routing.sender_key if routing else None,
            to_party=routing.receiver_key if routing else None,
            module=getattr(resource, "module", "unknown"),
            interface=getattr(resource, "interface", None),
            method=req.method,
            path=req.path,
            query=req.query_string or "",
            request_id=req.context.request_id,
            correlation_id=req.context.correlation_id,
            http_status=resp.status_code,
            status_code=status_code,
            status_message=_status_message(resp, req),
            received_at=req.context.received_at,
            duration_ms=getattr(req.context, "duration_ms", None) or _elapsed_ms(req),
        )

    def _respond_again(self, req: falcon.Request, resp: falcon.Response, resource) -> bool:
        """Run the responder once more on fresh state, after losing a write race.

        Only for resources marked ``retry_on_conflict`` (push receivers: load,
        apply, add; no calls to partners). Returns whether it succeeded.
        """
        req.context.uow.discard()
        req.context.uow = UnitOfWork(self.ctx.app)
        req.context.status_code = req.context.status_message = None
        resp.status = 200
        resp.media = None
        resp.delete_header("Location")
        params = req.context.params or {}
        try:
            getattr(resource, f"on_{req.method.lower()}")(req, resp, **params)
        except OcpiError as exc:
            handle_ocpi_error(req, resp, exc, params)
            return False
        except Exception as exc:
            handle_unexpected(req, resp, exc, params)
            return False
        return True

    def _observe(self, req: falcon.Request, resp: falcon.Response, resource, caller) -> None:
        """The request's log line and metrics, once the answer is final."""
        routing = getattr(req.context, "routing", None)
        party = party_label(caller, routing)
        status_code = _status_code(resp, req)
        status_message = _status_message(resp, req)
        if status_message is not None:
            status_message = redact(status_message)
        started = getattr(req.context, "started", None)
        log.log(
            logging.DEBUG if req.path in OPERATIONAL_PATHS else logging.INFO,  # probes and scrapes
            "%s %s -> %s",
            req.method,
            redact(req.path),  # a command's result URL is a capability: never in the logs
            outcome_text(resp.status_code, status_code, status_message),
            extra={  # never a header value or a body: they may carry tokens
                "request_id": getattr(req.context, "request_id", None),
                "correlation_id": getattr(req.context, "correlation_id", None),
                "ocpi_module": getattr(resource, "module", None),  # "module" is taken by logging
                "party": party,
                "platform_id": str(caller.platform_id) if caller else None,
                "http_status": resp.status_code,
                "status_code": status_code,
                "status_message": status_message,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3) if started else None,
                # no OCPI-from headers came: how the sender was inferred ("url" or "platform")
                **({"from_inferred": routing.from_inferred}
                   if routing is not None and routing.from_inferred else {}),
            },
        )
        if self.metrics is not None:
            try:
                self.metrics.observe(req, resp, resource, party, status_code)
            except Exception:  # metrics never change an answer
                log.exception("could not record metrics for %s %s", req.method, req.path)


def outcome_text(http_status: int, status_code: int | None, status_message: str | None) -> str:
    """``200 3001 token A already used``: the HTTP status, then the OCPI status code and
    message when the answer had an OCPI envelope (``200`` alone for ``/health``)."""
    return " ".join(str(part) for part in (http_status, status_code, status_message) if part is not None)


def _elapsed_ms(req: falcon.Request) -> float:
    return round((time.perf_counter() - req.context.started) * 1000, 3)


def _able_senders(caller, roles: frozenset[str]) -> list[tuple[str, str]]:
    """The caller's registered parties (not PLANNED, not SUSPENDED) in one of ``roles``:
    ``(country code, party id)`` each, once."""
    found = {(p.country_code, p.party_id) for p in caller.parties
             if p.role in roles and p.status not in ("PLANNED", "SUSPENDED")}
    return sorted(found)


def _own_party(caller, cc: str, pid: str, roles: frozenset[str]):
    """The caller's party with these ids in one of ``roles``; a registered one
    (not PLANNED, not SUSPENDED) before the others, so an extra role the
    operator onboarded never hides the one the platform uses."""
    found = [p for p in (caller.party(cc, pid, role) for role in sorted(roles)) if p is not None]
    found.sort(key=lambda p: p.status in ("PLANNED", "SUSPENDED"))
    return (found[0].role, found[0].status) if found else None


def _header_id(req: falcon.Request, name: str) -> str:
    """The id as sent, when it is printable text of at most 255 characters; else a new one.

    WSGI hands header values over as latin-1 decoded bytes: an id sent as UTF-8 (``réq-1``)
    is judged as the text it is, and echoed as the same bytes."""
    value = req.get_header(name) or ""
    try:
        text = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        text = value
    if text and len(text) <= 255 and text.isprintable():
        return value
    return str(uuid.uuid4())


def _status_code(resp: falcon.Response, req: falcon.Request | None = None) -> int | None:
    relayed = getattr(req.context, "status_code", None) if req is not None else None
    if relayed is not None:  # an answer relayed from a partner, as raw bytes
        return relayed
    media = resp.media if isinstance(resp.media, dict) else None
    code = media.get("status_code") if media else None
    return code if isinstance(code, int) else None


def _status_message(resp: falcon.Response, req: falcon.Request | None = None) -> str | None:
    relayed = getattr(req.context, "status_message", None) if req is not None else None
    if relayed:
        return str(relayed)[:500]
    media = resp.media if isinstance(resp.media, dict) else None
    message = media.get("status_message") if media else None
    return str(message)[:500] if message else None

