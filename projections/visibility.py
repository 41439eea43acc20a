"""Who may see whose objects in a pull: the recipient policy over the snapshot.

GET-all lists and single-object GETs ask :meth:`hub.domain.recipients.Policy.pull`
(the same policy the dispatcher forwards with); the scope it returns is applied
by the SQL of :mod:`projections.objects`.
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from hub.domain.recipients import PullScope, publish_visible
from projections.objects import emsp_tokens, find_objects, page_objects, unpublished_for
from projections.recipients import load_policy


def pull_scope(pool: ConnectionPool, module: str, viewer_key: str,
               to: tuple[str, str] | None = None) -> PullScope:
    """What the party ``viewer_key`` may see of ``module`` (``to``: the one owner a
    directed pull addresses): the owners (CPOs for Locations, Tariffs, Sessions and
    CDRs, eMSPs for Tokens), for Sessions and CDRs only the viewer's own, and
    objects pushed directed only to the parties they named."""
    return load_policy(pool).pull(module, viewer_key, to)


def visible_owners(pool: ConnectionPool, module: str, viewer_key: str) -> list[tuple[str, str]]:
    """The owner parties whose ``module`` objects the party ``viewer_key`` may receive."""
    return pull_scope(pool, module, viewer_key).owners


def visible_page(pool: ConnectionPool, module: str, page, scope: PullScope) -> tuple[list, int, int | None, bool]:
    """One page of the ``module`` objects ``scope`` shows (each body as its stored JSON text),
    the total, the next cursor and whether more follow (:func:`projections.objects.page_objects`).
    ``publish: false`` Locations only to holders of a token ``publish_allowed_to`` names."""
    locations = module == "locations"
    with pool.connection() as conn:
        allowed = unpublished_for(conn, scope.viewer, scope.owners) if locations else None
        return page_objects(conn, module, page, owners=scope.owners, emsp=scope.emsp, viewer=scope.viewer,
                            published_only=locations, unpublished_allowed=allowed, as_text=True)


def visible_objects(pool: ConnectionPool, module: str, object_id: str, scope: PullScope,
                    viewer_key: str) -> list[dict]:
    """The objects with this id ``scope`` shows to ``viewer_key`` (several CPOs may use one id)."""
    with pool.connection() as conn:
        found = find_objects(conn, module, object_id, owners=scope.owners, emsp=scope.emsp, viewer=scope.viewer)
        if module == "locations" and any(body.get("publish") is False for body in found):
            tokens = emsp_tokens(conn, viewer_key)
            found = [body for body in found if publish_visible(body, tokens)]
    return found
