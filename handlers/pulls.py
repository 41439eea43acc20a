"""SENDER interfaces served from the hub's store: eMSPs pull Locations,
Tariffs, Sessions and CDRs (GET all, paginated by keyset; single objects).

Visibility: Locations and Tariffs of the CPOs the routing rules let the caller
see (``publish: false`` Locations only to holders of a token matching
``publish_allowed_to``), Sessions and CDRs only of the caller's own eMSP party
(``cdr_token``) and from CPOs the rules let through; objects pushed directed to
some parties only are shown to those parties only.
"""

from __future__ import annotations

import falcon

from handlers.context import WebContext
from handlers.paging import set_page_headers
from hub.domain.recipients import PullScope
from hub.domain.routing import DIRECTED
from hub.ocpi.envelope import envelope, envelope_of_json_list
from hub.ocpi.errors import InvalidParameters, NotFound
from hub.ocpi.pagination import parse_page
from hub.ocpi.status import OcpiStatus
from projections.visibility import pull_scope, visible_objects, visible_page


def _scope(ctx: WebContext, req: falcon.Request, module: str) -> PullScope:
    """What the caller may see (the recipient policy decides); a request addressed to
    one CPO (``OCPI-to``) sees only its objects."""
    routing = req.context.routing
    to = (routing.to_country_code, routing.to_party_id) if routing.scenario == DIRECTED else None
    return pull_scope(ctx.app.pool, module, routing.sender_key, to)


def _answer_as_owner(req: falcon.Request, resp: falcon.Response, country_code: str, party_id: str) -> None:
    """A directed GET (``OCPI-to`` names the owner) is answered from the store on the owner's
    behalf: the answer carries the owner as ``OCPI-from`` and the caller as ``OCPI-to``, as if the
    owner had answered itself."""
    routing = req.context.routing
    if routing.scenario != DIRECTED:
        return
    resp.set_header("OCPI-from-country-code", country_code)
    resp.set_header("OCPI-from-party-id", party_id)
    resp.set_header("OCPI-to-country-code", routing.from_country_code)
    resp.set_header("OCPI-to-party-id", routing.from_party_id)


class ObjectList:
    """GET all of one module (``{module}/sender``)."""

    interface = "SENDER"
    is_list = True

    def __init__(self, ctx: WebContext, module: str) -> None:
        self.ctx = ctx
        self.module = module

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = parse_page(req.params, self.ctx.settings.page_limit,
                          require_date_from=self.module == "sessions")
        items, total, cursor, more = visible_page(self.ctx.app.pool, self.module, page,
                                                  _scope(self.ctx, req, self.module))
        set_page_headers(req, resp, page, total=total, returned=len(items),
                         base_url=self.ctx.settings.base_url, next_cursor=cursor, has_more=more)
        # The stored bodies go out as stored: a page of 100 Locations is never parsed and re-encoded.
        resp.content_type = falcon.MEDIA_JSON
        resp.data = envelope_of_json_list(items)
        req.context.status_code = OcpiStatus.SUCCESS
        routing = req.context.routing
        _answer_as_owner(req, resp, routing.to_country_code, routing.to_party_id)


class ObjectItem:
    """GET one object (``{module}/sender/{id}``; Locations also ``/{evse_uid}[/{connector_id}]``)."""

    interface = "SENDER"

    def __init__(self, ctx: WebContext, module: str) -> None:
        self.ctx = ctx
        self.module = module

    def on_get(self, req, resp, object_id, evse_uid=None, connector_id=None) -> None:
        from hub.domain.objects import find_connector, find_evse

        routing = req.context.routing
        found = visible_objects(self.ctx.app.pool, self.module, object_id, _scope(self.ctx, req, self.module),
                                routing.sender_key)
        unknown = OcpiStatus.UNKNOWN_LOCATION if self.module == "locations" else OcpiStatus.CLIENT_ERROR
        if not found:
            raise NotFound(f"no {self.module[:-1]} {object_id} visible to you", unknown)
        if len(found) > 1:
            raise InvalidParameters(
                f"OCPI-to-party-id: several CPOs have {self.module[:-1]} {object_id}; address one")
        obj = found[0]
        _answer_as_owner(req, resp, obj.get("country_code", routing.to_country_code),
                         obj.get("party_id", routing.to_party_id))
        if evse_uid is not None:
            obj = find_evse(obj, evse_uid)
            if obj is not None and connector_id is not None:
                obj = find_connector(obj, connector_id)
            if obj is None:
                raise NotFound(f"no such EVSE/connector at location {object_id}", unknown)
        resp.media = envelope(obj)
