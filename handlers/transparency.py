"""The partner endpoint of the transparency log, under the hub's base URL (not an OCPI module).

- ``GET /audit/checkpoint``: the latest signed checkpoint (a C2SP note, text/plain);
- ``GET /audit/inclusion/{position}[?size=N]``: the inclusion proof of an event the
  partner sent or that was delivered to it (404 for anyone else's, as for no event);
- ``GET /audit/consistency?old=M&new=N``: a consistency proof, so a partner can act as
  a witness of the checkpoints it kept;
- ``GET``/``PUT``/``DELETE /audit/subscription``: the URL the hub POSTs every new
  checkpoint to (``{"url": …}``, OCPI envelope; scheduler/checkpoints.py delivers them).

Authenticated with the partner's OCPI credentials token (``Authorization: Token …``);
answered as plain JSON (docs/audit.md, "For partners").
"""

from __future__ import annotations

import falcon

from hub.audit.transparency import ProofUnavailable, concerns_partner, consistency_bundle, inclusion_bundle
from hub.infra import tlog
from hub.infra.security import header_token_candidates
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import InvalidParameters
from hub.services.operators import audit as witnesses
from projections.queries import authenticate


class _PartnerResource:
    public = True  # not an OCPI request: the OCPI middleware leaves it alone; we authenticate here

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def caller(self, req: falcon.Request):
        caller = authenticate(self.ctx.app.pool, header_token_candidates(req.get_header("Authorization")))
        if caller is None or caller.token_kind != "CREDENTIALS":
            raise falcon.HTTPUnauthorized(title="a registered partner's credentials token is required",
                                          challenges=["Token"])
        return caller

    @staticmethod
    def answer(resp: falcon.Response, media: dict) -> None:
        resp.media = media

    @staticmethod
    def int_param(req: falcon.Request, name: str, required: bool = True) -> int | None:
        value = req.get_param(name)
        if value is None and not required:
            return None
        if value is None or not value.isdigit():
            raise falcon.HTTPBadRequest(title=f"{name}: expected a non-negative integer")
        return int(value)


class CheckpointResource(_PartnerResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.caller(req)
        with self.ctx.app.pool.connection() as conn:
            latest = tlog.latest_head(conn)
        if latest is None:
            raise falcon.HTTPNotFound(title="no checkpoint has been signed yet")
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = latest[2]


class InclusionResource(_PartnerResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, position: int) -> None:
        caller = self.caller(req)
        parties = {f"{p.country_code}/{p.party_id}/{p.role}".upper() for p in caller.parties}
        size = self.int_param(req, "size", required=False)
        with self.ctx.app.pool.connection() as conn:
            if not concerns_partner(conn, position, str(caller.platform_id), parties):
                raise falcon.HTTPNotFound(title=f"no event of yours at position {position}")
            try:
                self.answer(resp, inclusion_bundle(conn, position, size))
            except ProofUnavailable as exc:
                raise falcon.HTTPNotFound(title=str(exc)) from None


class ConsistencyResource(_PartnerResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.caller(req)
        old, new = self.int_param(req, "old"), self.int_param(req, "new")
        with self.ctx.app.pool.connection() as conn:
            try:
                self.answer(resp, consistency_bundle(conn, old, new))
            except ProofUnavailable as exc:
                raise falcon.HTTPBadRequest(title=str(exc)) from None


class SubscriptionResource(_PartnerResource):
    """The caller's platform's checkpoint subscription (docs/audit.md "Checkpoints by push")."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = self.caller(req)
        resp.media = envelope(witnesses.subscription(self.ctx.app, caller.platform_id))

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = self.caller(req)
        body = req.get_media(default_when_empty=None)
        if not isinstance(body, dict) or "url" not in body:
            raise InvalidParameters("url: missing; send {\"url\": \"https://…\"}", http_status=400)
        party = min(f"{p.country_code}/{p.party_id}/{p.role}".upper() for p in caller.parties)
        try:
            done = witnesses.subscribe(self.ctx.app, self.ctx.settings.outbound_guard(), caller.platform_id,
                                       party, body["url"], by="partner")
        except witnesses.BadInput as exc:
            raise InvalidParameters(str(exc), http_status=400) from None
        resp.media = envelope(done)

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = self.caller(req)
        witnesses.unsubscribe(self.ctx.app, caller.platform_id, by="partner")
        resp.media = envelope(None)


def routes(ctx) -> list[tuple[str, object]]:
    return [("/audit/checkpoint", CheckpointResource(ctx)),
            ("/audit/inclusion/{position:int}", InclusionResource(ctx)),
            ("/audit/consistency", ConsistencyResource(ctx)),
            ("/audit/subscription", SubscriptionResource(ctx))]
