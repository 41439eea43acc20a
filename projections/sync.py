"""What a pull sync reads from the views: the recipient policy's verdict on a pulled
Session or CDR, as the push path asks it (``handlers/pushing.py`` ``check_routable``)."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from hub.domain.modules import CDR_TOKEN, MODULES
from hub.domain.recipients import cdr_token_emsp
from projections.recipients import load_policy


def pull_acceptance(pool: ConnectionPool):
    """``accept(module, owner_key, body)`` for :class:`hub.services.sync.Sync`: None when the hub
    can deliver the object, else the reason it refuses it (a Session or CDR whose eMSP is unknown
    or refused by the routing rules, as for a push)."""

    def accept(module: str, owner_key: str, body: dict) -> str | None:
        if MODULES[module].routing != CDR_TOKEN:
            return None  # Locations, Tariffs, Tokens: open routing, whoever the policy allows
        emsp = cdr_token_emsp(body)
        if emsp is None:
            return f"{module[:-1]} {body.get('id')}: cdr_token is missing"
        policy = load_policy(pool, ids=[emsp, tuple(owner_key.split("/")[:2])])
        verdict = policy.accept_push(module, owner_key, scenario="open", emsp=emsp)
        return None if verdict.allowed else f"{module[:-1]} {body.get('id')}: {verdict.reason}"

    return accept
