"""The routing rules in force now (``view_routing_rules``), and reading them.

One row per (CPO party, eMSP-side party, module or ``*``); a removed rule has
no row (its history stays in the event log). Evaluation is in
:mod:`hub.domain.ruleset`; :func:`load_rules` gives a :class:`hub.domain.ruleset.RuleSet`.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from hub.domain.rules import RoutingRule
from hub.domain.ruleset import RuleSet
from hub.infra import invalidation
from hub.infra.eventlog import Follower

RULE_COLUMNS = ("cpo", "emsp", "module", "effect", "reason", "set_by", "updated_at")


class RulesProjection(Follower):
    name = "routing-rules"
    event_classes = (RoutingRule.Set, RoutingRule.Changed, RoutingRule.Removed)

    def ddl(self) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS view_routing_rules (
                cpo text NOT NULL,
                emsp text NOT NULL,
                module text NOT NULL,
                effect text NOT NULL,
                reason text NOT NULL DEFAULT '',
                set_by text NOT NULL,
                updated_at timestamptz NOT NULL,
                PRIMARY KEY (cpo, emsp, module)
            )""",
            *invalidation.ddl({"view_routing_rules": ()}),  # NOTIFY the web side's caches
        ]

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        if events:
            invalidation.changed_here()  # this process's caches read their own writes
        for _, e in events:
            if isinstance(e, RoutingRule.Removed):
                cur.execute(
                    "DELETE FROM view_routing_rules WHERE cpo = %s AND emsp = %s AND module = %s",
                    (e.cpo.upper(), e.emsp.upper(), e.module.lower()),
                )
            elif isinstance(e, RoutingRule.Set | RoutingRule.Changed):
                cur.execute(
                    "INSERT INTO view_routing_rules (cpo, emsp, module, effect, reason, set_by, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (cpo, emsp, module) DO UPDATE"
                    " SET effect = excluded.effect, reason = excluded.reason,"
                    " set_by = excluded.set_by, updated_at = excluded.updated_at",
                    (e.cpo.upper(), e.emsp.upper(), e.module.lower(), e.effect, e.reason or "",
                     e.set_by, e.timestamp),
                )


def _select(conn: psycopg.Connection | psycopg.Cursor) -> list[dict]:
    with (conn.cursor(row_factory=dict_row) if isinstance(conn, psycopg.Connection)
          else conn.connection.cursor(row_factory=dict_row)) as cur:
        return cur.execute(
            f"SELECT {', '.join(RULE_COLUMNS)} FROM view_routing_rules ORDER BY cpo, emsp, module"
        ).fetchall()


def list_rules(pool: ConnectionPool) -> list[dict]:
    """Every rule in force, ordered by CPO, eMSP, module (``updated_at`` a datetime)."""
    with pool.connection() as conn:
        return _select(conn)


def load_rules(pool: ConnectionPool) -> RuleSet:
    """The rules in force now, for :mod:`hub.domain.ruleset` decisions (one query)."""
    return RuleSet(list_rules(pool))


def load_rules_from(conn: psycopg.Connection | psycopg.Cursor) -> RuleSet:
    """Like :func:`load_rules`, inside the caller's transaction."""
    return RuleSet(_select(conn))
