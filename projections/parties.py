"""Platforms, their tokens and their parties (ClientInfo) as the hub knows them now.

Tables:
- ``view_platforms``: one row per partner platform (credentials state, the
  partner's versions URL and endpoints, its encrypted token, last contact).
- ``view_platform_tokens``: token digest -> platform; ``kind`` is ``PENDING``
  (token A, or the B the hub sent when it started the handshake: versions and
  credentials only) or ``CREDENTIALS`` (token C: every module).
- ``view_parties``: one row per party with its ClientInfo status; ``seq``
  (the log position of the party's onboarding) never changes, so the
  HubClientInfo list is paged by it and a crawl neither skips nor repeats a
  party whose status changes meanwhile.
"""

from __future__ import annotations

from typing import Any

import psycopg

from hub.domain.audit import Call, Request
from hub.domain.parties import Party, Platform
from hub.infra import invalidation
from hub.infra.eventlog import Follower
from hub.ocpi.envelope import format_datetime
from projections.parties_fold import fold


class PartiesProjection(Follower):
    name = "parties"
    read_by_dispatchers = True
    event_classes = (
        Platform.Invited, Platform.PartyAttached, Platform.Registered,
        Platform.CredentialsUpdated, Platform.Reinvited, Platform.Unregistered,
        Party.Onboarded, Party.Connected, Party.Replanned, Party.WentOffline,
        Party.CameOnline, Party.Unregistered, Party.Suspended, Party.Resumed,
        Request.Answered, Call.Made,
    )

    def ddl(self) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS view_platforms (
                platform_id uuid PRIMARY KEY,
                state text NOT NULL,
                initiated_by text NOT NULL,
                versions_url text,
                version text,
                endpoints jsonb NOT NULL DEFAULT '[]',
                roles jsonb NOT NULL DEFAULT '[]',
                partner_token text,
                created_at timestamptz NOT NULL,
                registered_at timestamptz,
                updated_at timestamptz NOT NULL,
                last_seen_at timestamptz
            )""",
            """CREATE TABLE IF NOT EXISTS view_platform_tokens (
                token_hash text PRIMARY KEY,
                platform_id uuid NOT NULL,
                kind text NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS view_platform_tokens_platform ON view_platform_tokens (platform_id)",
            """CREATE TABLE IF NOT EXISTS view_parties (
                party_uuid uuid UNIQUE NOT NULL,
                seq bigint NOT NULL,
                country_code text NOT NULL,
                party_id text NOT NULL,
                role text NOT NULL,
                name text NOT NULL,
                platform_id uuid NOT NULL,
                connection text NOT NULL,
                suspended boolean NOT NULL DEFAULT false,
                status text NOT NULL,
                last_updated timestamptz NOT NULL,
                onboarded_at timestamptz NOT NULL,
                PRIMARY KEY (country_code, party_id, role)
            )""",
            # Tables made before ``seq`` existed: add it, filled from the log. (The caches'
            # deferred triggers fire at once in this transaction: ALTER TABLE refuses a table
            # with pending trigger events.)
            "SET CONSTRAINTS ALL IMMEDIATE",
            "ALTER TABLE view_parties ADD COLUMN IF NOT EXISTS seq bigint",
            "UPDATE view_parties v SET seq = e.notification_id FROM hub_events e"
            " WHERE v.seq IS NULL AND e.originator_id = v.party_uuid AND e.originator_version = 1",
            "ALTER TABLE view_parties ALTER COLUMN seq SET NOT NULL",
            "CREATE UNIQUE INDEX IF NOT EXISTS view_parties_seq ON view_parties (seq)",
            "CREATE INDEX IF NOT EXISTS view_parties_platform ON view_parties (platform_id)",
            "CREATE INDEX IF NOT EXISTS view_parties_updated ON view_parties (last_updated, country_code, party_id, role)",
            # Changes the web side caches (tokens, parties, endpoints; not last_seen_at) NOTIFY it.
            *invalidation.ddl({
                "view_platforms": ("state", "versions_url", "endpoints", "roles", "partner_token"),
                "view_platform_tokens": (),
                "view_parties": (),
            }),
        ]

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        seen: dict[Any, Any] = {}  # platform -> latest contact in this batch: one UPDATE each
        changes = []  # platform and party events, folded set-based (projections.parties_fold)
        for position, event in events:
            if isinstance(event, Request.Answered | Call.Made):
                platform_id = _heard_from(event)
                platform_id = str(platform_id) if platform_id else None  # one array type for the batch
                if platform_id and (platform_id not in seen or seen[platform_id] < event.timestamp):
                    seen[platform_id] = event.timestamp
            else:
                changes.append((position, event))
        if changes:
            invalidation.changed_here()  # this process's caches read their own writes
            fold(cur, changes)
        if seen:  # "latest wins": one statement, the same as one UPDATE per event
            cur.execute(
                "UPDATE view_platforms p SET last_seen_at = s.moment"
                " FROM unnest(%b::text[], %b::timestamptz[]) AS s(platform_id, moment)"
                " WHERE p.platform_id = s.platform_id::uuid AND (p.last_seen_at IS NULL OR p.last_seen_at < s.moment)",
                (list(seen), list(seen.values())))


def _heard_from(event: Request.Answered | Call.Made) -> Any:
    """The platform a request came from, or that answered a call (below HTTP 500)."""
    if isinstance(event, Call.Made):
        return event.platform_id if event.http_status is not None and event.http_status < 500 else None
    return event.platform_id


def client_info_row(row: dict) -> dict:
    """A ``view_parties`` row as an OCPI ClientInfo object."""
    return {
        "party_id": row["party_id"],
        "country_code": row["country_code"],
        "role": row["role"],
        "status": row["status"],
        "last_updated": format_datetime(row["last_updated"]),
    }
