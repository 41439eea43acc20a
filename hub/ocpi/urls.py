"""Building a partner's URLs: the one place where the hub appends to a URL a partner published.

OCPI appends path segments to a module's endpoint URL (``{endpoint}/{country_code}/{party_id}/{id}``,
``{endpoint}/{token_uid}/authorize``, ``{endpoint}/{command}``) and nothing to the CDRs URL a
CDR is POSTed to. The published URL is used exactly as published: a trailing ``/`` is kept
(some implementations answer the URL without it with a redirect), and only the separator between
it and the appended segments is not doubled.
"""

from __future__ import annotations


def endpoint_url(published: str, path: str = "") -> str:
    """``published`` with ``path`` (``""`` or ``/segment/...``, maybe with a query) appended.

    >>> endpoint_url("https://e.example/cdrs/")
    'https://e.example/cdrs/'
    >>> endpoint_url("https://e.example/locations/", "/IN/ECP/LOC1")
    'https://e.example/locations/IN/ECP/LOC1'
    >>> endpoint_url("https://e.example/locations", "/IN/ECP/LOC1")
    'https://e.example/locations/IN/ECP/LOC1'
    """
    if not path:
        return published
    if not path.startswith(("/", "?")):
        path = "/" + path
    if published.endswith("/") and path.startswith("/"):
        return published + path[1:]
    return published + path
