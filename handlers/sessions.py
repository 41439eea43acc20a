"""Sessions module.

RECEIVER (CPOs push): ``/sessions/receiver/{country_code}/{party_id}/{session_id}`` with
GET (the hub's copy), PUT (replaces the Session, ``charging_periods`` included) and
PATCH (``charging_periods`` in a PATCH are appended).

SENDER (eMSPs): ``/sessions/sender`` (GET all) and
``PUT /sessions/sender/{session_id}/charging_preferences``: the eMSP's ChargingPreferences,
relayed at once to the CPO that owns the session (``OCPI-to``, or the CPO that pushed
this eMSP's session) like a token authorization; its ChargingPreferencesResponse comes
back unchanged.
"""

from __future__ import annotations

from urllib.parse import quote

from handlers.context import WebContext
from handlers.pulls import ObjectItem, ObjectList
from handlers.pushing import answer, check_body_ids, check_owner, check_routable, message_of, read_body
from handlers.tokens import relay
from hub.domain.objects import Session
from hub.domain.recipients import cdr_token_emsp
from hub.domain.routing import DIRECTED
from hub.ocpi import models
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import NotFound
from hub.ocpi.status import OcpiStatus
from hub.ocpi.urls import endpoint_url
from hub.ocpi.validation import validate
from projections.queries import session_owners


class SessionReceiver:
    module = "sessions"
    interface = "RECEIVER"
    retry_on_conflict = True  # a lost write race runs the push again (handlers/middleware.py)

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_get(self, req, resp, country_code, party_id, session_id):
        check_owner(req, country_code, party_id, "sessions")
        session = self.ctx.pushes.get(Session, country_code, party_id, session_id)
        if session is None:
            raise NotFound(f"the hub holds no session {country_code}/{party_id}/{session_id}",
                           OcpiStatus.INVALID_PARAMETERS)
        resp.media = envelope(session.body)

    def on_put(self, req, resp, country_code, party_id, session_id):
        check_owner(req, country_code, party_id, "sessions")
        body = read_body(req, models.Session)
        check_body_ids(body, country_code, party_id, id_field="id", object_id=session_id)
        check_routable(req, "sessions", cdr_token_emsp(body))
        message = message_of(req, "PUT", f"/{country_code}/{party_id}/{session_id}")
        result = self.ctx.pushes.put_session(req.context.uow, country_code, party_id, session_id,
                                             body, message)
        answer(resp, result, "session")

    def on_patch(self, req, resp, country_code, party_id, session_id):
        check_owner(req, country_code, party_id, "sessions")
        body = read_body(req, models.Session, partial=True)
        check_body_ids(body, country_code, party_id, id_field="id", object_id=session_id)
        emsp = cdr_token_emsp(body)
        if emsp is None and req.context.routing.scenario == DIRECTED:
            stored = self.ctx.pushes.get(Session, country_code, party_id, session_id)
            emsp = stored.emsp if stored is not None else None
        check_routable(req, "sessions", emsp)
        message = message_of(req, "PATCH", f"/{country_code}/{party_id}/{session_id}")
        result = self.ctx.pushes.patch_session(req.context.uow, country_code, party_id, session_id,
                                               body, message)
        answer(resp, result, "session")


class ChargingPreferences:
    """Real-time: the eMSP sets preferences, the session's CPO answers, the hub relays."""

    module = "sessions"
    interface = "SENDER"
    record_after_answer = True  # the call and the request are recorded once the answer is sent

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_put(self, req, resp, object_id) -> None:
        session_id = object_id
        body = req.get_media()
        validate(models.ChargingPreferences, body)
        routing = req.context.routing
        req.context.keep = True  # the forwarded call is recorded whatever comes back
        if routing.scenario == DIRECTED:
            cc, pid = routing.to_country_code, routing.to_party_id
        else:
            owners = session_owners(self.ctx.app.pool, session_id,
                                    (routing.from_country_code, routing.from_party_id))
            cc, pid = self.ctx.realtime.sole_owner(owners, module="sessions", requester=routing.sender_key,
                                                   what=f"pushed session {session_id}")
        receiver = self.ctx.realtime.receiver(module="sessions", requester=routing.sender_key,
                                              country_code=cc, party_id=pid)
        url = endpoint_url(receiver.endpoint, f"/{quote(session_id, safe='')}/charging_preferences")
        response = self.ctx.realtime.forward(
            req.context.uow, receiver, routing, method="PUT", url=url, body=body, module="sessions",
            correlation_id=req.context.correlation_id, sent={"session_id": session_id})
        relay(req, resp, response, receiver)


ENDPOINTS = [("sessions", "SENDER", "sessions/sender"), ("sessions", "RECEIVER", "sessions/receiver")]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    return [
        ("sessions/sender", ObjectList(ctx, "sessions")),
        ("sessions/sender/{object_id}", ObjectItem(ctx, "sessions")),
        ("sessions/sender/{object_id}/charging_preferences", ChargingPreferences(ctx)),
        ("sessions/receiver/{country_code}/{party_id}/{session_id}", SessionReceiver(ctx)),
    ]
