"""Pagination headers on a Falcon response (the rules live in hub.ocpi.pagination)."""

from __future__ import annotations

import falcon

from hub.ocpi.pagination import PageRequest, page_headers


def set_page_headers(req: falcon.Request, resp: falcon.Response, page: PageRequest, *,
                     total: int, returned: int, base_url: str, next_cursor: int | None = None,
                     has_more: bool | None = None) -> None:
    url = base_url + req.path
    for name, value in page_headers(page, total=total, returned=returned, url=url,
                                    raw_params=req.params, next_cursor=next_cursor,
                                    has_more=has_more).items():
        resp.set_header(name, value)
