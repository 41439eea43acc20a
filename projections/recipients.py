"""Reading the recipient policy's snapshot: parties, their platforms' endpoints and the
routing rules, in one statement (one round trip), from the parties and rules views.

Every path that decides who receives or sees what loads its snapshot here and asks
:class:`hub.domain.recipients.Policy`.

Read through a pool that a process registered with :mod:`hub.infra.invalidation` (the
web side), snapshots and policies come from an in-process cache, never older than
``HUB_CACHE_MAX_AGE``; read through a connection or cursor (the worker's followers,
inside their transaction), they are always read afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from hub.domain.recipients import Endpoint, Party, Platform, Policy, Snapshot, Verdict
from hub.domain.ruleset import RuleSet
from hub.infra.invalidation import freshness_of
from projections.rules import RULE_COLUMNS

Source = ConnectionPool | psycopg.Connection | psycopg.Cursor


def _statement(ids: bool, tokens: bool) -> str:
    where = " WHERE (country_code, party_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))" if ids else ""
    platforms = " WHERE p.platform_id IN (SELECT platform_id FROM parties)" if ids else ""
    token = "p.partner_token" if tokens else "NULL"
    return (
        "WITH parties AS (SELECT country_code, party_id, role, status, platform_id FROM view_parties"
        f"{where})"
        " SELECT (SELECT coalesce(json_agg(json_build_object('country_code', country_code, 'party_id',"
        " party_id, 'role', role, 'status', status, 'platform_id', platform_id)"
        " ORDER BY country_code, party_id, role), '[]') FROM parties),"
        " (SELECT coalesce(json_agg(json_build_object('platform_id', p.platform_id, 'state', p.state,"
        f" 'endpoints', p.endpoints, 'token', {token})), '[]') FROM view_platforms p{platforms}),"
        f" (SELECT coalesce(json_agg(r), '[]') FROM (SELECT {', '.join(RULE_COLUMNS)}"
        " FROM view_routing_rules ORDER BY cpo, emsp, module) r)"
    )


def load_snapshot(source: Source, *, ids: Iterable[tuple[str, str]] | None = None,
                  tokens: bool = False) -> Snapshot:
    """The snapshot now (or inside the caller's transaction, given a connection or cursor).

    ``ids``: only the parties with these ``(country_code, party_id)`` and their platforms
    (the rules are always complete); ``tokens``: with the platforms' encrypted tokens.
    """
    if ids is not None:
        ids = [(cc.upper(), pid.upper()) for cc, pid in ids]
    freshness = freshness_of(source)
    if freshness is not None:
        key = (None if ids is None else tuple(ids), tokens)
        return freshness.cache("snapshots", 1024).lookup(freshness, key, lambda: _read(source, ids, tokens))
    return _read(source, ids, tokens)


def _read(source: Source, ids: list[tuple[str, str]] | None, tokens: bool) -> Snapshot:
    params: list = []
    if ids is not None:
        params = [[i[0] for i in ids], [i[1] for i in ids]]
    query = _statement(ids is not None, tokens)
    if isinstance(source, ConnectionPool):
        with source.connection() as conn:
            row = conn.execute(query, params).fetchone()
    else:
        row = source.execute(query, params).fetchone()
    parties, platforms, rules = row
    return Snapshot(
        parties=tuple(Party(p["country_code"], p["party_id"], p["role"], p["status"], _uuid(p["platform_id"]))
                      for p in parties),
        platforms={UUID(p["platform_id"]): Platform(
            UUID(p["platform_id"]), p["state"],
            tuple(Endpoint(str(e.get("identifier")), str(e.get("role")), str(e.get("url") or ""))
                  for e in p["endpoints"] or [] if isinstance(e, dict)),
            p["token"]) for p in platforms},
        rules=RuleSet(rules),
    )


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None


def load_policy(source: Source, **kw) -> Policy:
    """:class:`Policy` over :func:`load_snapshot` (same arguments)."""
    freshness = freshness_of(source)
    if freshness is not None:
        ids = kw.get("ids")
        key = (None if ids is None else tuple((cc.upper(), pid.upper()) for cc, pid in ids), kw.get("tokens", False))
        return freshness.cache("policies", 1024).lookup(freshness, key, lambda: Policy(load_snapshot(source, **kw)))
    return Policy(load_snapshot(source, **kw))


def explain(source: Source, cpo_key: str, emsp_key: str, module: str) -> tuple[Verdict, Verdict]:
    """:meth:`Policy.explain` and the rules' part of it (:meth:`Policy.explain_rules`) with the
    snapshot of these two parties (``hub routing explain``)."""
    ids = [tuple(key.upper().split("/")[:2]) for key in (cpo_key, emsp_key)]
    policy = load_policy(source, ids=ids)
    return policy.explain(cpo_key, emsp_key, module), policy.explain_rules(cpo_key, emsp_key, module)
