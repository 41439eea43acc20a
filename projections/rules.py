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
    partitioned = True  # one row per rule, whose aggregate id is derived from its key
    read_by_dispatchers = True

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
        if not events:
            return
        invalidation.changed_here()  # this process's caches read their own writes
        # The batch folded into each rule's last state (None: removed), then one DELETE and
        # one upsert: what one statement per event leaves.
        final: dict[tuple[str, str, str], tuple | None] = {}
        for _, e in events:
            key = (e.cpo.upper(), e.emsp.upper(), e.module.lower())
            if isinstance(e, RoutingRule.Removed):
                final[key] = None
            elif isinstance(e, RoutingRule.Set | RoutingRule.Changed):
                final[key] = (*key, e.effect, e.reason or "", e.set_by, e.timestamp)
        removed = [key for key, row in final.items() if row is None]
        if removed:
            cur.execute("DELETE FROM view_routing_rules WHERE (cpo, emsp, module) IN"
                        " (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))",
                        [list(column) for column in zip(*removed, strict=True)])
        written = [row for row in final.values() if row is not None]
        if written:
            cur.execute(
                "INSERT INTO view_routing_rules (cpo, emsp, module, effect, reason, set_by, updated_at)"
                " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],"
                " %b::text[], %b::timestamptz[]) ON CONFLICT (cpo, emsp, module) DO UPDATE"
                " SET effect = excluded.effect, reason = excluded.reason,"
                " set_by = excluded.set_by, updated_at = excluded.updated_at",
                [list(column) for column in zip(*written, strict=True)])


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
