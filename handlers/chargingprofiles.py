"""ChargingProfiles module (smart charging), relayed both ways.

RECEIVER (eMSPs and SCSPs call it as they would a CPO's):
``/chargingprofiles/receiver/{session_id}`` with GET (``duration``, ``response_url``: the
active profile), PUT (SetChargingProfile) and DELETE (``response_url``: clear the profile).
The hub finds the CPO (``OCPI-to``, or the CPO that pushed the session: for an eMSP one of
its own sessions, for an SCSP any), replaces ``response_url`` with a hub URL, forwards at
once and relays the CPO's ChargingProfileResponse unchanged.

SENDER (CPOs):
- ``POST /chargingprofiles/sender/results/{result_id}``: the hub's ``response_url``. The
  CPO's ActiveChargingProfileResult, ChargingProfileResult or ClearProfileResult is recorded
  and delivered to the requester's own ``response_url`` durably, with retries
  (``scheduler/chargingprofiles.py``). Routing headers are optional there: the URL names
  the exchange; headers that are sent must name its CPO (and requester).
- ``PUT /chargingprofiles/sender/{session_id}``: an unsolicited ActiveChargingProfile,
  delivered to the eMSP that owns the session (or the party named with ``OCPI-to``).
"""

from __future__ import annotations

from handlers.commands import check_response_url
from handlers.context import WebContext
from handlers.tokens import relay
from hub.domain.chargingprofiles import RESULT_MODELS, ProfileRequest, find_exchange
from hub.domain.routing import DIRECTED
from hub.ocpi import models
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import HubError, InvalidParameters, NotFound
from hub.ocpi.status import OcpiStatus
from hub.ocpi.validation import validate
from hub.services.chargingprofiles import MODULE, ChargingProfiles
from hub.services.realtime import check_forwardable
from projections.chargingprofiles import session_cpos, session_emsp
from projections.queries import session_owners


def _service(ctx: WebContext) -> ChargingProfiles:
    return ChargingProfiles(ctx.realtime, ctx.realtime.snapshot_loader)


class ProfileReceiver:
    """An eMSP's or SCSP's request for one session, forwarded to the CPO."""

    module = MODULE
    interface = "RECEIVER"

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_get(self, req, resp, session_id) -> None:
        duration = req.get_param("duration")
        if duration is None or not duration.isdigit():
            raise InvalidParameters(f"duration: {str(duration)[:20]!r} is not a number of seconds "
                                    "(required on GET)")
        self._relay(req, resp, session_id, "GET", self._url(req), None, {"duration": duration})

    def on_put(self, req, resp, session_id) -> None:
        body = req.get_media()
        validate(models.SetChargingProfile, body)
        check_forwardable(body)
        self._relay(req, resp, session_id, "PUT", body["response_url"], body, None)

    def on_delete(self, req, resp, session_id) -> None:
        self._relay(req, resp, session_id, "DELETE", self._url(req), None, {})

    @staticmethod
    def _url(req) -> str:
        url = req.get_param("response_url")
        if not url:
            raise InvalidParameters(f"response_url: required on {req.method}")
        return url

    def _relay(self, req, resp, session_id, method, response_url, body, params) -> None:
        check_response_url(response_url, self.ctx.client.guard)
        req.context.keep = True  # the exchange and the forwarded call are recorded whatever comes back
        routing = req.context.routing
        response, receiver = _service(self.ctx).relay(
            req.context.uow, routing, method=method, session_id=session_id, cpo=self._cpo(routing, session_id),
            response_url=response_url, body=body, params=params, correlation_id=req.context.correlation_id,
            request_id=req.context.request_id, received_at=req.context.received_at)
        relay(req, resp, response, receiver)

    def _cpo(self, routing, session_id: str) -> tuple[str, str]:
        """The addressed CPO, or (open routing) the CPO that pushed the session."""
        if routing.scenario == DIRECTED:
            return routing.to_country_code, routing.to_party_id
        pool = self.ctx.app.pool
        if routing.from_role == "EMSP":
            owners = session_owners(pool, session_id, (routing.from_country_code, routing.from_party_id))
        else:
            owners = session_cpos(pool, session_id)
        return self.ctx.realtime.sole_owner(owners, module=MODULE, requester=routing.sender_key,
                                            what=f"pushed session {session_id}")


class ProfileResult:
    """The hub's ``response_url``: the CPO's result, passed on to the requester."""

    module = MODULE
    interface = "SENDER"
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def sender_named_by_url(self, req, params: dict) -> tuple[str, str] | None:
        """The URL names the exchange: a result posted without OCPI-from headers comes from its CPO
        (as for commands, see handlers/middleware.py)."""
        exchange = find_exchange(self.ctx.app, params.get("result_id", ""))
        if exchange is None:
            return None
        cc, pid, _role = exchange.cpo.split("/")
        return cc, pid

    def on_post(self, req, resp, result_id) -> None:
        routing = req.context.routing
        body = req.get_media()

        def check(exchange: ProfileRequest) -> None:
            if routing.sender_key != exchange.cpo:
                raise InvalidParameters(f"{routing.sender_key.rsplit('/', 1)[0]} (OCPI-from) is not "
                                        "the CPO this request was sent to")
            if routing.scenario == DIRECTED and routing.receiver_key != exchange.requester:
                raise InvalidParameters(f"OCPI-to-party-id: {routing.to_country_code}/"
                                        f"{routing.to_party_id} did not send this request")
            validate(getattr(models, RESULT_MODELS[exchange.method]), body)

        found = _service(self.ctx).receive_result(result_id, check, body, req.context.request_id,
                                                  req.context.received_at)
        if found is None:
            raise NotFound(f"no charging profile request waits for a result at {req.path}",
                           OcpiStatus.INVALID_PARAMETERS)
        resp.media = envelope()


class ActiveProfileUpdate:
    """The CPO's unsolicited ActiveChargingProfile for a session."""

    module = MODULE
    interface = "SENDER"

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_put(self, req, resp, session_id) -> None:
        body = req.get_media()
        validate(models.ActiveChargingProfile, body)
        check_forwardable(body)
        routing = req.context.routing
        cpo = (routing.from_country_code, routing.from_party_id)
        if routing.scenario == DIRECTED:
            recipient = (routing.to_country_code, routing.to_party_id)
        else:
            recipient = session_emsp(self.ctx.app.pool, cpo, session_id)
            if recipient is None:
                raise HubError(OcpiStatus.UNKNOWN_RECEIVER,
                               f"{cpo[0]}/{cpo[1]} pushed no session {session_id}: address its owner "
                               "with OCPI-to")
        _service(self.ctx).receive_update(
            req.context.uow, routing.sender_key, session_id, recipient, body, req.context.correlation_id,
            req.context.request_id, req.context.received_at)
        resp.media = envelope()


ENDPOINTS = [(MODULE, "SENDER", "chargingprofiles/sender"), (MODULE, "RECEIVER", "chargingprofiles/receiver")]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    return [
        ("chargingprofiles/receiver/{session_id}", ProfileReceiver(ctx)),
        ("chargingprofiles/sender/results/{result_id}", ProfileResult(ctx)),
        ("chargingprofiles/sender/{session_id}", ActiveProfileUpdate(ctx)),
    ]
