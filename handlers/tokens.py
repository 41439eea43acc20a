"""Tokens module.

RECEIVER (eMSPs push): ``/tokens/receiver/{country_code}/{party_id}/{token_uid}[?type=]``
with GET (the hub's copy), PUT and PATCH; forwarded to CPOs.
SENDER (CPOs): ``/tokens/sender`` (GET all, the tokens of eMSPs the rules allow)
and ``/tokens/sender/{token_uid}/authorize[?type=]`` (real-time authorization,
forwarded at once to the eMSP that owns the token).
"""

from __future__ import annotations

from urllib.parse import quote

import falcon

from handlers.context import WebContext
from handlers.pulls import ObjectList
from handlers.pushing import answer, check_body_ids, check_owner, check_routable, message_of, read_body
from hub.domain.objects import Token
from hub.domain.routing import DIRECTED
from hub.ocpi import models
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import InvalidParameters, NotFound
from hub.ocpi.status import OcpiStatus
from hub.ocpi.urls import endpoint_url
from hub.ocpi.validation import validate
from projections.queries import token_owners

TOKEN_TYPES = frozenset(t.value for t in models.TokenType)


def token_type_of(req: falcon.Request) -> str:
    value = req.get_param("type") or "RFID"
    if value not in TOKEN_TYPES:
        raise InvalidParameters(f"type: {value[:20]!r} is not a TokenType ({', '.join(sorted(TOKEN_TYPES))})")
    return value


class TokenReceiver:
    module = "tokens"
    interface = "RECEIVER"
    retry_on_conflict = True  # a lost write race runs the push again (handlers/middleware.py)

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_get(self, req, resp, country_code, party_id, token_uid) -> None:
        check_owner(req, country_code, party_id, "tokens")
        token = self.ctx.pushes.get(Token, country_code, party_id,
                                    Token.object_id_of(token_uid, token_type_of(req)))
        if token is None:
            raise NotFound(f"the hub holds no token {token_uid}", OcpiStatus.UNKNOWN_TOKEN)
        resp.media = envelope(token.body)

    def _common(self, req, country_code, party_id, token_uid, *, partial: bool) -> tuple[dict, str, dict]:
        check_owner(req, country_code, party_id, "tokens")
        check_routable(req, "tokens")
        token_type = token_type_of(req)
        body = read_body(req, models.Token, partial=partial)
        check_body_ids(body, country_code, party_id, id_field="uid", object_id=token_uid)
        if body.get("type") is not None and body["type"] != token_type:
            raise InvalidParameters(f"type: {body['type']!r} does not match the URL's type ({token_type!r})")
        path = f"/{country_code}/{party_id}/{token_uid}?type={token_type}"
        return body, token_type, message_of(req, req.method, path)

    def on_put(self, req, resp, country_code, party_id, token_uid) -> None:
        body, token_type, message = self._common(req, country_code, party_id, token_uid, partial=False)
        result = self.ctx.pushes.put_token(req.context.uow, country_code, party_id, token_uid, token_type,
                                           body, message)
        answer(resp, result, "token")

    def on_patch(self, req, resp, country_code, party_id, token_uid) -> None:
        body, token_type, message = self._common(req, country_code, party_id, token_uid, partial=True)
        result = self.ctx.pushes.patch_token(req.context.uow, country_code, party_id, token_uid,
                                             token_type, body, message)
        answer(resp, result, "token")


class Authorize:
    """Real-time authorization: the CPO asks, the token's eMSP answers, the hub relays."""

    module = "tokens"
    interface = "SENDER"
    record_after_answer = True  # the call and the request are recorded once the answer is sent

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def _owner(self, req, token_uid: str, token_type: str) -> tuple[str, str]:
        routing = req.context.routing
        if routing.scenario == DIRECTED:
            return routing.to_country_code, routing.to_party_id
        # Open routing (or addressed to the hub): the eMSP that pushed this token decides.
        owners = token_owners(self.ctx.app.pool, Token.object_id_of(token_uid, token_type))
        return self.ctx.realtime.sole_owner(
            owners, module="tokens", requester=routing.sender_key,
            what=f"pushed token {token_uid} ({token_type})")

    def on_post(self, req, resp, token_uid) -> None:
        token_type = token_type_of(req)
        body = req.get_media(default_when_empty=None)
        if body is not None:
            validate(models.LocationReferences, body)
        routing = req.context.routing
        req.context.keep = True  # the forwarded call is recorded whatever comes back
        country_code, party_id = self._owner(req, token_uid, token_type)
        receiver = self.ctx.realtime.receiver(
            module="tokens", requester=routing.sender_key, country_code=country_code, party_id=party_id)
        url = endpoint_url(receiver.endpoint, f"/{quote(token_uid, safe='')}/authorize")
        response = self.ctx.realtime.forward(
            req.context.uow, receiver, routing, method="POST", url=url, body=body, module="tokens",
            params={"type": req.get_param("type")} if req.get_param("type") else None,
            correlation_id=req.context.correlation_id, sent={"location_references": body},
            answer_fields=("allowed", "authorization_reference"), answer_model=models.AuthorizationInfo)
        relay(req, resp, response, receiver)


def relay(req: falcon.Request, resp: falcon.Response, response, receiver) -> None:
    """The receiver's answer, unchanged, with the routing headers of its leg back."""
    resp.status = response.http_status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = response.raw
    req.context.status_code = response.status_code
    req.context.status_message = response.body.get("status_message")
    routing = req.context.routing
    resp.set_header("OCPI-from-country-code", receiver.country_code)
    resp.set_header("OCPI-from-party-id", receiver.party_id)
    resp.set_header("OCPI-to-country-code", routing.from_country_code)
    resp.set_header("OCPI-to-party-id", routing.from_party_id)


ENDPOINTS = [("tokens", "SENDER", "tokens/sender"), ("tokens", "RECEIVER", "tokens/receiver")]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    return [
        ("tokens/sender", ObjectList(ctx, "tokens")),
        ("tokens/sender/{token_uid}/authorize", Authorize(ctx)),
        ("tokens/receiver/{country_code}/{party_id}/{token_uid}", TokenReceiver(ctx)),
    ]
