"""CDRs module, RECEIVER interface (CPOs push).

POST ``/cdrs/receiver`` stores a CDR once and answers 201 with a ``Location``
header: ``/cdrs/receiver/{country_code}/{party_id}/{cdr_id}``, where the CPO
can GET it back. CDRs are immutable: PUT, PATCH and DELETE answer 405.
"""

from __future__ import annotations

from urllib.parse import quote

from handlers.context import WebContext
from handlers.pulls import ObjectItem, ObjectList
from handlers.pushing import answer, check_owner, check_routable, message_of, read_body
from hub.domain.objects import Cdr
from hub.domain.recipients import cdr_token_emsp
from hub.ocpi import models
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import NotFound
from hub.ocpi.status import OcpiStatus

BASE = "cdrs/receiver"


class CdrPost:
    """POST of a new CDR (``/cdrs/receiver``)."""

    module = "cdrs"
    interface = "RECEIVER"
    retry_on_conflict = True  # a lost write race runs the push again (handlers/middleware.py)

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_post(self, req, resp):
        body = read_body(req, models.CDR)
        check_owner(req, body["country_code"], body["party_id"], "cdrs",
                    field="country_code/party_id in the body")
        check_routable(req, "cdrs", cdr_token_emsp(body))
        # Forwarded as OCPI says: POST to the eMSP's cdrs endpoint itself (no ids in the path).
        result = self.ctx.pushes.post_cdr(req.context.uow, body, message_of(req, "POST", ""))
        answer(resp, result, "CDR")
        cdr = result.aggregate
        resp.set_header("Location", "/".join([
            self.ctx.settings.module_url(BASE), quote(cdr.country_code, safe=""),
            quote(cdr.party_id, safe=""), quote(cdr.object_id, safe="")]))


class CdrItem:
    """GET of one stored CDR, at the URL the POST answered in ``Location``."""

    module = "cdrs"
    interface = "RECEIVER"

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_get(self, req, resp, country_code, party_id, cdr_id):
        check_owner(req, country_code, party_id, "cdrs")
        cdr = self.ctx.pushes.get(Cdr, country_code, party_id, cdr_id)
        if cdr is None:
            raise NotFound(f"the hub holds no CDR {country_code}/{party_id}/{cdr_id}",
                           OcpiStatus.INVALID_PARAMETERS)
        resp.media = envelope(cdr.body)


ENDPOINTS = [("cdrs", "SENDER", "cdrs/sender"), ("cdrs", "RECEIVER", BASE)]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    return [
        ("cdrs/sender", ObjectList(ctx, "cdrs")),
        ("cdrs/sender/{object_id}", ObjectItem(ctx, "cdrs")),
        (BASE, CdrPost(ctx)),
        (BASE + "/{country_code}/{party_id}/{cdr_id}", CdrItem(ctx)),
    ]
