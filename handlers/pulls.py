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
from hub.domain.recipients import publish_visible
from hub.domain.routing import DIRECTED
from hub.ocpi.envelope import envelope, envelope_of_json_list
from hub.ocpi.errors import InvalidParameters, NotFound
from hub.ocpi.pagination import parse_page
from hub.ocpi.status import OcpiStatus
from projections.objects import emsp_tokens, find_objects, page_objects, unpublished_for
from projections.visibility import pull_scope


def _filters(ctx: WebContext, req: falcon.Request, module: str) -> dict:
    """What the caller may see (the recipient policy decides); a request addressed to
    one CPO (``OCPI-to``) sees only its objects."""
    routing = req.context.routing
    to = (routing.to_country_code, routing.to_party_id) if routing.scenario == DIRECTED else None
    scope = pull_scope(ctx.app.pool, module, routing.sender_key, to)
    return {"owners": scope.owners, "emsp": scope.emsp, "viewer": scope.viewer}


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
        filters = _filters(self.ctx, req, self.module)
        with self.ctx.app.pool.connection() as conn:
            locations = self.module == "locations"
            allowed = unpublished_for(conn, filters["viewer"], filters["owners"]) if locations else None
            items, total, cursor, more = page_objects(
                conn, self.module, page, published_only=locations, unpublished_allowed=allowed,
                as_text=True, **filters)
        set_page_headers(req, resp, page, total=total, returned=len(items),
                         base_url=self.ctx.settings.base_url, next_cursor=cursor, has_more=more)
        # The stored bodies go out as stored: a page of 100 Locations is never parsed and re-encoded.
        resp.content_type = falcon.MEDIA_JSON
        resp.data = envelope_of_json_list(items)
        req.context.status_code = OcpiStatus.SUCCESS


class ObjectItem:
    """GET one object (``{module}/sender/{id}``; Locations also ``/{evse_uid}[/{connector_id}]``)."""

    interface = "SENDER"

    def __init__(self, ctx: WebContext, module: str) -> None:
        self.ctx = ctx
        self.module = module

    def on_get(self, req, resp, object_id, evse_uid=None, connector_id=None) -> None:
        from hub.domain.objects import find_connector, find_evse

        routing = req.context.routing
        filters = _filters(self.ctx, req, self.module)
        with self.ctx.app.pool.connection() as conn:
            found = find_objects(conn, self.module, object_id, **filters)
            if self.module == "locations" and any(body.get("publish") is False for body in found):
                tokens = emsp_tokens(conn, routing.sender_key)
                found = [body for body in found if publish_visible(body, tokens)]
        unknown = OcpiStatus.UNKNOWN_LOCATION if self.module == "locations" else OcpiStatus.CLIENT_ERROR
        if not found:
            raise NotFound(f"no {self.module[:-1]} {object_id} visible to you", unknown)
        if len(found) > 1:
            raise InvalidParameters(
                f"OCPI-to-party-id: several CPOs have {self.module[:-1]} {object_id}; address one")
        obj = found[0]
        if evse_uid is not None:
            obj = find_evse(obj, evse_uid)
            if obj is not None and connector_id is not None:
                obj = find_connector(obj, connector_id)
            if obj is None:
                raise NotFound(f"no such EVSE/connector at location {object_id}", unknown)
        resp.media = envelope(obj)
