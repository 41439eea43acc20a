"""HubClientInfo module, SENDER interface: the ClientInfo of every party, paginated."""

from __future__ import annotations

import falcon

from handlers.context import WebContext
from handlers.paging import set_page_headers
from hub.ocpi.envelope import envelope
from hub.ocpi.pagination import parse_page
from projections.queries import client_info_page


class ClientInfoListResource:
    module = "hubclientinfo"
    interface = "SENDER"
    is_list = True

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = parse_page(req.params, self.ctx.settings.page_limit)
        viewers = [p.key for p in req.context.caller.parties]
        items, total, cursor, more = client_info_page(self.ctx.app.pool, page, viewers)
        set_page_headers(req, resp, page, total=total, returned=len(items),
                         base_url=self.ctx.settings.base_url, next_cursor=cursor, has_more=more)
        resp.media = envelope(items)


ENDPOINTS = [("hubclientinfo", "SENDER", "hubclientinfo")]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    return [("hubclientinfo", ClientInfoListResource(ctx))]
