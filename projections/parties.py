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
from psycopg.types.json import Jsonb

from hub.domain.audit import Call, Request
from hub.domain.parties import Party, Platform
from hub.infra import invalidation
from hub.infra.eventlog import Follower
from hub.ocpi.envelope import format_datetime

PARTY_STATUS_SQL = (
    "CASE WHEN suspended OR connection = 'UNREGISTERED' THEN 'SUSPENDED' ELSE connection END"
)


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
        if any(not isinstance(event, Request.Answered | Call.Made) for _, event in events):
            invalidation.changed_here()  # this process's caches read their own writes
        for position, event in events:
            if isinstance(event, Party.Onboarded):
                self._party_onboarded(cur, event, position)
                continue
            if isinstance(event, Request.Answered | Call.Made):
                platform_id = _heard_from(event)
                platform_id = str(platform_id) if platform_id else None  # one array type for the batch
                if platform_id and (platform_id not in seen or seen[platform_id] < event.timestamp):
                    seen[platform_id] = event.timestamp
                continue
            handler = getattr(self, "_" + type(event).__qualname__.replace(".", "_"), None)
            if handler is not None:
                handler(cur, event)
        if seen:  # "latest wins": one statement, the same as one UPDATE per event
            cur.execute(
                "UPDATE view_platforms p SET last_seen_at = s.moment"
                " FROM unnest(%b::text[], %b::timestamptz[]) AS s(platform_id, moment)"
                " WHERE p.platform_id = s.platform_id::uuid AND (p.last_seen_at IS NULL OR p.last_seen_at < s.moment)",
                (list(seen), list(seen.values())))

    # Platforms --------------------------------------------------------------
    def _Platform_Invited(self, cur, e) -> None:
        cur.execute(
            "INSERT INTO view_platforms (platform_id, state, initiated_by, created_at, updated_at)"
            " VALUES (%s, 'INVITED', %s, %s, %s) ON CONFLICT (platform_id) DO NOTHING",
            (e.originator_id, e.initiated_by, e.timestamp, e.timestamp),
        )
        self._set_tokens(cur, e.originator_id, pending=e.pending_token_hash)

    def _Platform_PartyAttached(self, cur, e) -> None:
        cur.execute("UPDATE view_platforms SET updated_at = %s WHERE platform_id = %s",
                    (e.timestamp, e.originator_id))

    def _Platform_Registered(self, cur, e) -> None:
        self._credentials(cur, e, registered=True)

    def _Platform_CredentialsUpdated(self, cur, e) -> None:
        self._credentials(cur, e, registered=False)

    def _credentials(self, cur, e, *, registered: bool) -> None:
        cur.execute(
            "UPDATE view_platforms SET state = 'REGISTERED', versions_url = %s, version = %s,"
            " endpoints = %s, roles = %s, partner_token = %s, updated_at = %s,"
            " registered_at = CASE WHEN %s THEN %s ELSE registered_at END, last_seen_at = %s"
            " WHERE platform_id = %s",
            (e.versions_url, e.ocpi_version, Jsonb(e.endpoints), Jsonb(e.roles), e.partner_token,
             e.timestamp, registered, e.timestamp, e.timestamp, e.originator_id),
        )
        self._set_tokens(cur, e.originator_id, credentials=e.token_hash)

    def _Platform_Reinvited(self, cur, e) -> None:
        cur.execute(
            "UPDATE view_platforms SET state = 'INVITED', updated_at = %s WHERE platform_id = %s",
            (e.timestamp, e.originator_id),
        )
        self._set_tokens(cur, e.originator_id, pending=e.pending_token_hash)

    def _Platform_Unregistered(self, cur, e) -> None:
        cur.execute(
            "UPDATE view_platforms SET state = 'UNREGISTERED', partner_token = NULL, updated_at = %s"
            " WHERE platform_id = %s",
            (e.timestamp, e.originator_id),
        )
        self._set_tokens(cur, e.originator_id)

    @staticmethod
    def _set_tokens(cur, platform_id, *, pending: str | None = None, credentials: str | None = None) -> None:
        """Exactly the given tokens are valid for the platform from now on."""
        cur.execute("DELETE FROM view_platform_tokens WHERE platform_id = %s", (platform_id,))
        for digest, kind in ((pending, "PENDING"), (credentials, "CREDENTIALS")):
            if digest:
                cur.execute(
                    "INSERT INTO view_platform_tokens (token_hash, platform_id, kind) VALUES (%s, %s, %s)"
                    " ON CONFLICT (token_hash) DO UPDATE SET platform_id = excluded.platform_id,"
                    " kind = excluded.kind",
                    (digest, platform_id, kind),
                )

    # Parties ---------------------------------------------------------------
    def _party_onboarded(self, cur, e, position: int) -> None:
        cur.execute(
            "INSERT INTO view_parties (party_uuid, seq, country_code, party_id, role, name, platform_id,"
            " connection, suspended, status, last_updated, onboarded_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'PLANNED', false, 'PLANNED', %s, %s)"
            " ON CONFLICT (country_code, party_id, role) DO NOTHING",
            (e.originator_id, position, e.country_code.upper(), e.party_id.upper(), e.role.upper(),
             e.name, e.platform_id, e.timestamp, e.timestamp),
        )

    def _update_party(self, cur, e, assignments: str, params: tuple) -> None:
        cur.execute(
            f"UPDATE view_parties SET {assignments} WHERE party_uuid = %s",
            (*params, e.originator_id),
        )
        cur.execute(
            f"UPDATE view_parties SET last_updated = CASE WHEN status <> {PARTY_STATUS_SQL}"
            f" THEN %s ELSE last_updated END, status = {PARTY_STATUS_SQL} WHERE party_uuid = %s",
            (e.timestamp, e.originator_id),
        )

    def _Party_Connected(self, cur, e) -> None:
        self._update_party(cur, e, "connection = 'CONNECTED', platform_id = %s, name = %s",
                           (e.platform_id, e.name))

    def _Party_Replanned(self, cur, e) -> None:
        self._update_party(cur, e, "connection = 'PLANNED', platform_id = %s", (e.platform_id,))

    def _Party_WentOffline(self, cur, e) -> None:
        self._update_party(cur, e, "connection = 'OFFLINE'", ())

    def _Party_CameOnline(self, cur, e) -> None:
        self._update_party(cur, e, "connection = 'CONNECTED'", ())

    def _Party_Unregistered(self, cur, e) -> None:
        self._update_party(cur, e, "connection = 'UNREGISTERED'", ())

    def _Party_Suspended(self, cur, e) -> None:
        self._update_party(cur, e, "suspended = true", ())

    def _Party_Resumed(self, cur, e) -> None:
        self._update_party(cur, e, "suspended = false", ())


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
