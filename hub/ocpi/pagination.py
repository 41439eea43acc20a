"""Pagination of every OCPI list endpoint (transport_and_format § Pagination).

One parser for ``offset``, ``limit``, ``date_from`` (inclusive) and ``date_to``
(exclusive, both on ``last_updated``), one builder for ``Link``,
``X-Total-Count`` and ``X-Limit``. List endpoints call :func:`parse_page` and
:func:`page_headers`; nothing else reads these parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from hub.ocpi.envelope import parse_datetime
from hub.ocpi.errors import InvalidParameters

#: Largest ``offset`` accepted (PostgreSQL's OFFSET is a bigint; beyond it the query fails).
MAX_OFFSET = 2**31 - 1


@dataclass(frozen=True)
class PageRequest:
    offset: int
    limit: int
    date_from: datetime | None
    date_to: datetime | None
    max_limit: int
    extra: tuple[tuple[str, str], ...] = ()  # other query parameters, kept in Link
    cursor: int | None = None  # keyset position from a Link the hub handed out


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidParameters(f"{name}: expected a non-negative integer, got {str(raw)[:20]!r}") from None
    if value < 0:
        raise InvalidParameters(f"{name}: expected a non-negative integer, got {value}")
    return value


def _date_param(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_datetime(raw)
    except ValueError as exc:
        raise InvalidParameters(f"{name}: {exc}") from None


def parse_page(
    params: Mapping[str, str], max_limit: int, *, require_date_from: bool = False
) -> PageRequest:
    """Read the pagination parameters; a bad one raises 2001 naming it."""
    offset = _int_param(params, "offset", 0)
    if offset > MAX_OFFSET:
        raise InvalidParameters(f"offset: expected at most {MAX_OFFSET}")
    limit = _int_param(params, "limit", max_limit)
    limit = max_limit if limit == 0 or limit > max_limit else limit
    date_from = _date_param(params, "date_from")
    date_to = _date_param(params, "date_to")
    if require_date_from and date_from is None:
        raise InvalidParameters("date_from: required for this list")
    cursor = _int_param(params, "cursor", -1)
    extra = tuple(
        (key, str(value))
        for key, value in sorted(params.items())
        if key not in {"offset", "limit", "date_from", "date_to", "cursor"}
    )
    return PageRequest(offset, limit, date_from, date_to, max_limit, extra,
                       None if cursor < 0 else cursor)


def page_headers(
    page: PageRequest, *, total: int, returned: int, url: str, raw_params: Mapping[str, str],
    next_cursor: int | None = None, has_more: bool | None = None,
) -> dict[str, str]:
    """``X-Total-Count``, ``X-Limit`` and, unless this is the last page, ``Link``.

    The next-page URL keeps every filter of the request (as sent) and moves
    ``offset`` on by what this page returned. Lists served by keyset also put
    ``cursor`` (the last object's position) in it and say themselves whether
    more follows (``has_more``), so a crawl neither skips nor repeats objects
    that change meanwhile, and a deep page costs what the first does.
    """
    headers = {"X-Total-Count": str(total), "X-Limit": str(page.max_limit)}
    next_offset = page.offset + returned
    more = (next_offset < total) if has_more is None else has_more
    if returned and more:
        query = [(k, v) for k, v in raw_params.items() if k not in {"offset", "limit", "cursor"}]
        query += [("offset", str(next_offset)), ("limit", str(page.limit))]
        if next_cursor is not None:
            query.append(("cursor", str(next_cursor)))
        headers["Link"] = f'<{url}?{urlencode(query)}>; rel="next"'
    return headers
