"""Reads the ChargingProfiles relay and charging preferences need: who runs a session
(the CPO to call) and who owns it (the eMSP of its ``cdr_token``), from ``view_objects``."""

from __future__ import annotations

from psycopg_pool import ConnectionPool


def session_cpos(pool: ConnectionPool, session_id: str) -> list[tuple[str, str]]:
    """``(country_code, party_id)`` of every CPO holding a Session with this id, whoever its
    eMSP (an SCSP sets profiles for sessions of any eMSP the rules let it reach)."""
    with pool.connection() as conn:
        return conn.execute(
            "SELECT DISTINCT country_code, party_id FROM view_objects WHERE module = 'sessions'"
            " AND object_id = %s ORDER BY 1, 2", (session_id.upper(),)).fetchall()


def session_emsp(pool: ConnectionPool, cpo: tuple[str, str], session_id: str) -> tuple[str, str] | None:
    """The eMSP (``cdr_token`` ids) of the CPO ``cpo``'s Session ``session_id``, or None."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT emsp_country_code, emsp_party_id FROM view_objects WHERE module = 'sessions'"
            " AND country_code = %s AND party_id = %s AND object_id = %s",
            (cpo[0].upper(), cpo[1].upper(), session_id.upper())).fetchone()
    return (row[0], row[1]) if row and row[0] else None
