"""Who may see whose objects in a pull: the recipient policy over the snapshot.

GET-all lists and single-object GETs ask :meth:`hub.domain.recipients.Policy.pull`
(the same policy the dispatcher forwards with); the scope it returns is applied
by the SQL of :mod:`projections.objects`.
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from hub.domain.recipients import PullScope
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
