"""The parties projection's batch, set-based: platform and party events folded into their rows in
memory, then one statement per table (:class:`projections.parties.PartiesProjection`).

The fold does what one statement per event did, in log order: a platform's row is created by
``Invited`` (kept if it exists) and changed by its later events; each of ``Invited``,
``Registered``, ``CredentialsUpdated``, ``Reinvited`` and ``Unregistered`` makes exactly its
tokens valid for the platform (a token another platform held moves); a party's row is created by
``Onboarded`` unless its key exists, and its ``status`` follows ``connection`` and ``suspended``,
``last_updated`` moving only when the status changes.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from hub.domain.parties import Party, Platform

PLATFORM_COLUMNS = ("platform_id", "state", "initiated_by", "versions_url", "version", "endpoints", "roles",
                    "partner_token", "created_at", "registered_at", "updated_at", "last_seen_at")
PLATFORM_TYPES = ("uuid", "text", "text", "text", "text", "jsonb", "jsonb", "text", "timestamptz",
                  "timestamptz", "timestamptz", "timestamptz")
PARTY_COLUMNS = ("party_uuid", "seq", "country_code", "party_id", "role", "name", "platform_id", "connection",
                 "suspended", "status", "last_updated", "onboarded_at")
PARTY_TYPES = ("uuid", "bigint", "text", "text", "text", "text", "uuid", "text", "boolean", "text",
               "timestamptz", "timestamptz")
JSON_TYPES = {"jsonb"}
PLATFORM_EVENTS = (Platform.Invited, Platform.PartyAttached, Platform.Registered, Platform.CredentialsUpdated,
                   Platform.Reinvited, Platform.Unregistered)


def _upsert(table: str, columns: tuple, types: tuple, conflict: str) -> str:
    values = ", ".join(f"%b::{'text' if t in JSON_TYPES else t}[]" for t in types)  # binary arrays
    selected = ", ".join(f"{c}::{t}" if t in JSON_TYPES else c for c, t in zip(columns, types, strict=True))
    keys = {k.strip() for k in conflict.split(",")}
    return (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selected} FROM unnest({values})"
            f" AS r({', '.join(columns)}) ON CONFLICT ({conflict}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys))


PLATFORMS_UPSERT = _upsert("view_platforms", PLATFORM_COLUMNS, PLATFORM_TYPES, "platform_id")
PARTIES_UPSERT = _upsert("view_parties", PARTY_COLUMNS, PARTY_TYPES, "country_code, party_id, role")


def _status(row: dict) -> str:
    return "SUSPENDED" if row["suspended"] or row["connection"] == "UNREGISTERED" else row["connection"]


PARTY_CHANGES = {
    Party.Connected: lambda e: {"connection": "CONNECTED", "platform_id": e.platform_id, "name": e.name},
    Party.Replanned: lambda e: {"connection": "PLANNED", "platform_id": e.platform_id},
    Party.WentOffline: lambda e: {"connection": "OFFLINE"},
    Party.CameOnline: lambda e: {"connection": "CONNECTED"},
    Party.Unregistered: lambda e: {"connection": "UNREGISTERED"},
    Party.Suspended: lambda e: {"suspended": True},
    Party.Resumed: lambda e: {"suspended": False},
}


def fold(cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
    """Apply the batch's platform and party events (``(position, event)``, in log order)."""
    platform_ids = list({e.originator_id for _, e in events if isinstance(e, PLATFORM_EVENTS)})
    digests = list({d for _, e in events for d in (getattr(e, "pending_token_hash", None),
                                                   getattr(e, "token_hash", None)) if d})
    party_uuids = list({e.originator_id for _, e in events if isinstance(e, (Party.Onboarded, *PARTY_CHANGES))})
    keys = {(e.country_code.upper(), e.party_id.upper(), e.role.upper())
            for _, e in events if isinstance(e, Party.Onboarded)}
    platforms = {r[0]: dict(zip(PLATFORM_COLUMNS, r, strict=True)) for r in cur.execute(
        f"SELECT {', '.join(PLATFORM_COLUMNS)} FROM view_platforms WHERE platform_id = ANY(%s)",
        (platform_ids,)).fetchall()}
    tokens = {r[0]: (r[1], r[2]) for r in cur.execute(
        "SELECT token_hash, platform_id, kind FROM view_platform_tokens"
        " WHERE platform_id = ANY(%s) OR token_hash = ANY(%s)", (platform_ids, digests)).fetchall()}
    held = set(tokens)
    parties = {r[0]: dict(zip(PARTY_COLUMNS, r, strict=True)) for r in cur.execute(
        f"SELECT {', '.join(PARTY_COLUMNS)} FROM view_parties WHERE party_uuid = ANY(%s)"
        " OR (country_code, party_id, role) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
        (party_uuids, *([list(c) for c in zip(*keys, strict=True)] if keys else [[], [], []]))).fetchall()}
    taken = {(r["country_code"], r["party_id"], r["role"]) for r in parties.values()}
    dirty_platforms, dirty_parties, tokens_changed = set(), set(), False

    def set_tokens(platform_id, pending=None, credentials=None) -> None:
        nonlocal tokens_changed
        tokens_changed = True
        for digest in [d for d, (owner, _) in tokens.items() if owner == platform_id]:
            del tokens[digest]
        for digest, kind in ((pending, "PENDING"), (credentials, "CREDENTIALS")):
            if digest:
                tokens[digest] = (platform_id, kind)

    for position, e in events:
        at = e.timestamp
        if isinstance(e, PLATFORM_EVENTS):
            row = platforms.get(e.originator_id)
            if isinstance(e, Platform.Invited):
                if row is None:
                    row = platforms[e.originator_id] = {
                        **dict.fromkeys(PLATFORM_COLUMNS), "platform_id": e.originator_id, "state": "INVITED",
                        "initiated_by": e.initiated_by, "endpoints": [], "roles": [], "created_at": at,
                        "updated_at": at}
                    dirty_platforms.add(e.originator_id)
                set_tokens(e.originator_id, pending=e.pending_token_hash)
                continue
            changes: dict = {}
            if isinstance(e, Platform.PartyAttached):
                changes = {"updated_at": at}
            elif isinstance(e, Platform.Registered | Platform.CredentialsUpdated):
                changes = {"state": "REGISTERED", "versions_url": e.versions_url, "version": e.ocpi_version,
                           "endpoints": e.endpoints, "roles": e.roles, "partner_token": e.partner_token,
                           "updated_at": at, "last_seen_at": at}
                if isinstance(e, Platform.Registered):
                    changes["registered_at"] = at
                set_tokens(e.originator_id, credentials=e.token_hash)
            elif isinstance(e, Platform.Reinvited):
                changes = {"state": "INVITED", "updated_at": at}
                set_tokens(e.originator_id, pending=e.pending_token_hash)
            elif isinstance(e, Platform.Unregistered):
                changes = {"state": "UNREGISTERED", "partner_token": None, "updated_at": at}
                set_tokens(e.originator_id)
            if row is not None and changes:
                row.update(changes)
                dirty_platforms.add(e.originator_id)
        elif isinstance(e, Party.Onboarded):
            key = (e.country_code.upper(), e.party_id.upper(), e.role.upper())
            if key in taken:
                continue  # as INSERT ... ON CONFLICT DO NOTHING
            taken.add(key)
            parties[e.originator_id] = {
                "party_uuid": e.originator_id, "seq": position, "country_code": key[0], "party_id": key[1],
                "role": key[2], "name": e.name, "platform_id": e.platform_id, "connection": "PLANNED",
                "suspended": False, "status": "PLANNED", "last_updated": at, "onboarded_at": at}
            dirty_parties.add(e.originator_id)
        elif type(e) in PARTY_CHANGES:
            row = parties.get(e.originator_id)
            if row is None:
                continue  # as an UPDATE that finds no row
            row.update(PARTY_CHANGES[type(e)](e))
            status = _status(row)
            if status != row["status"]:
                row["status"], row["last_updated"] = status, at
            dirty_parties.add(e.originator_id)

    if dirty_platforms:
        rows = [platforms[p] for p in dirty_platforms]
        cur.execute(PLATFORMS_UPSERT, [[json.dumps(r[c]) if t in JSON_TYPES else r[c] for r in rows]
                                       for c, t in zip(PLATFORM_COLUMNS, PLATFORM_TYPES, strict=True)])
    if tokens_changed:
        cur.execute("DELETE FROM view_platform_tokens WHERE token_hash = ANY(%s)", (list(held),))
        if tokens:
            cur.execute("INSERT INTO view_platform_tokens (token_hash, platform_id, kind)"
                        " SELECT * FROM unnest(%b::text[], %b::uuid[], %b::text[])",
                        [list(tokens), [o for o, _ in tokens.values()], [k for _, k in tokens.values()]])
    if dirty_parties:
        rows = [parties[p] for p in dirty_parties]
        cur.execute(PARTIES_UPSERT, [[r[c] for r in rows] for c in PARTY_COLUMNS])
