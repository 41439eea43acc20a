"""Who may see whose objects: routing rules applied to the parties views.

Used by GET-all pulls and by the dispatcher, so both decide alike (the rule
itself is evaluated in :mod:`hub.rules`, the one place rules are decided).
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from projections.rules import load_rules


def visible_owners(pool: ConnectionPool, module: str, viewer_key: str) -> list[tuple[str, str]]:
    """The CPO parties whose ``module`` objects the party ``viewer_key`` may receive."""
    rules = load_rules(pool)
    with pool.connection() as conn:
        cpos = conn.execute(
            "SELECT country_code, party_id, status FROM view_parties WHERE role = 'CPO'"
        ).fetchall()
        (viewer_status,) = conn.execute(
            "SELECT coalesce((SELECT status FROM view_parties WHERE country_code || '/' || party_id"
            " || '/' || role = %s), 'UNKNOWN')", (viewer_key,)
        ).fetchone()
    return [
        (cc, pid) for cc, pid, status in cpos
        if rules.decide(f"{cc}/{pid}/CPO", viewer_key, module, sender_status=status,
                        receiver_status=viewer_status).allowed
    ]
