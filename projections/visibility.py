"""Who may see whose objects: routing rules applied to the parties views.

Used by GET-all pulls and by the dispatcher, so both decide alike (the rule
itself is evaluated in :mod:`hub.domain.ruleset`, the one place rules are decided).
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from projections.rules import load_rules


def visible_owners(pool: ConnectionPool, module: str, viewer_key: str) -> list[tuple[str, str]]:
    """The owner parties whose ``module`` objects the party ``viewer_key`` may receive:
    CPOs for Locations and Tariffs (viewer an eMSP), eMSPs for Tokens (viewer a CPO)."""
    rules = load_rules(pool)
    owner_roles = ["EMSP"] if module == "tokens" else ["CPO"]
    with pool.connection() as conn:
        owners = conn.execute(
            "SELECT country_code, party_id, role, status FROM view_parties WHERE role = ANY(%s)",
            (owner_roles,),
        ).fetchall()
        (viewer_status,) = conn.execute(
            "SELECT coalesce((SELECT status FROM view_parties WHERE country_code || '/' || party_id"
            " || '/' || role = %s), 'UNKNOWN')", (viewer_key,)
        ).fetchone()
    visible = []
    for cc, pid, role, status in owners:
        owner = f"{cc}/{pid}/{role}"
        cpo, emsp = (viewer_key, owner) if module == "tokens" else (owner, viewer_key)
        if rules.decide(cpo, emsp, module, sender_status=status, receiver_status=viewer_status).allowed:
            visible.append((cc, pid))
    return visible
