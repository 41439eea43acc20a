"""Reads of the parties views that the web side needs on every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from hub.domain.parties import party_key, party_state
from hub.infra.invalidation import freshness_of
from hub.infra.security import same_hash, token_hash
from hub.ocpi.pagination import PageRequest
from projections.parties import client_info_row


@dataclass(frozen=True)
class PartyRef:
    country_code: str
    party_id: str
    role: str
    status: str
    suspended: bool

    @property
    def key(self) -> str:
        return party_key(self.country_code, self.party_id, self.role)


@dataclass(frozen=True)
class Caller:
    """The authenticated platform behind a request."""

    platform_id: UUID
    state: str
    token_kind: str  # PENDING (token A / outgoing B) or CREDENTIALS (token C)
    token: str = field(repr=False)
    parties: tuple[PartyRef, ...] = ()

    def party(self, country_code: str, party_id: str, role: str | None = None) -> PartyRef | None:
        cc, pid = country_code.upper(), party_id.upper()
        for party in self.parties:
            if party.country_code == cc and party.party_id == pid and (role is None or party.role == role):
                return party
        return None


def authenticate(pool: ConnectionPool, candidates: list[str]) -> Caller | None:
    """The platform owning one of the candidate tokens, or None.

    In a process that registered ``pool`` with :mod:`hub.infra.invalidation` (the web
    side), known tokens are answered from memory, never older than ``HUB_CACHE_MAX_AGE``
    (a revoked token or a suspended party is refused within that bound); unknown tokens
    are always looked up (a token issued a moment ago works at once).
    """
    if not candidates:
        return None
    digests = {token_hash(token): token for token in candidates}
    freshness = freshness_of(pool)
    if freshness is not None:
        return freshness.cache("callers", 4096).lookup(
            freshness, tuple(sorted(digests)), lambda: _authenticate(pool, digests),
            keep=lambda caller: caller is not None)
    return _authenticate(pool, digests)


def _authenticate(pool: ConnectionPool, digests: dict[str, str]) -> Caller | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(  # one round trip: every request starts here
            "SELECT t.token_hash, t.kind, p.platform_id, p.state, coalesce((SELECT json_agg(json_build_object("
            "'country_code', v.country_code, 'party_id', v.party_id, 'role', v.role, 'status', v.status,"
            " 'suspended', v.suspended) ORDER BY v.country_code, v.party_id, v.role)"
            " FROM view_parties v WHERE v.platform_id = p.platform_id), '[]') AS parties"
            " FROM view_platform_tokens t JOIN view_platforms p USING (platform_id)"
            " WHERE t.token_hash = ANY(%s) LIMIT 1",
            (list(digests),),
        ).fetchone()
    if row is None:
        return None
    token = next(t for d, t in digests.items() if same_hash(d, row["token_hash"]))
    parties = row["parties"]
    return Caller(
        platform_id=row["platform_id"],
        state=row["state"],
        token_kind=row["kind"],
        token=token,
        parties=tuple(PartyRef(**p) for p in parties),
    )


def find_party(pool: ConnectionPool, country_code: str, party_id: str,
               role: str | None = None) -> list[dict]:
    """Parties with these ids (any role unless ``role``), with their platform state
    and ``state`` (the operators' vocabulary, :func:`hub.domain.parties.party_state`).

    Cached like :func:`authenticate` in a process that registered ``pool``."""
    freshness = freshness_of(pool)
    if freshness is not None:
        key = (country_code.upper(), party_id.upper(), role.upper() if role else None)
        rows = freshness.cache("parties", 4096).lookup(
            freshness, key, lambda: _find_party(pool, country_code, party_id, role))
        return [dict(row) for row in rows]
    return _find_party(pool, country_code, party_id, role)


def _find_party(pool: ConnectionPool, country_code: str, party_id: str, role: str | None) -> list[dict]:
    query = (
        "SELECT v.*, p.state AS platform_state FROM view_parties v"
        " JOIN view_platforms p USING (platform_id)"
        " WHERE v.country_code = %s AND v.party_id = %s"
    )
    params: list = [country_code.upper(), party_id.upper()]
    if role:
        query += " AND v.role = %s"
        params.append(role.upper())
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return _with_state(cur.execute(query, params).fetchall())


def list_parties(pool: ConnectionPool) -> list[dict]:
    """Every party, with ``state`` (the operators' vocabulary) and its platform's details."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return _with_state(cur.execute(
            "SELECT v.*, p.state AS platform_state, p.versions_url, p.last_seen_at,"
            " p.initiated_by FROM view_parties v JOIN view_platforms p USING (platform_id)"
            " ORDER BY v.country_code, v.party_id, v.role"
        ).fetchall())


def _with_state(rows: list[dict]) -> list[dict]:
    for row in rows:
        row["state"] = party_state(row["connection"], row["suspended"])
    return rows


def client_info_page(pool: ConnectionPool, page: PageRequest,
                     viewer_keys: list[str]) -> tuple[list[dict], int, int | None, bool]:
    """ClientInfo objects for a HubClientInfo GET: one page, the total count,
    the cursor for the next page and whether more follow.

    Only parties the recipient policy lets the caller's platform see (``hubclientinfo``
    rules; :meth:`hub.domain.recipients.Policy.client_info_visible`).
    Ordered by ``seq`` (when the party was onboarded), which a status change
    never moves; ``date_from``/``date_to`` filter on ``last_updated``.
    """
    from projections.recipients import load_policy

    policy = load_policy(pool)
    where, params = [], []
    if page.date_from is not None:
        where.append("last_updated >= %s")
        params.append(page.date_from)
    if page.date_to is not None:
        where.append("last_updated < %s")
        params.append(page.date_to)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT * FROM view_parties{clause} ORDER BY seq", params).fetchall()
    visible = [r for r in rows if policy.client_info_visible(
        viewer_keys, party_key(r["country_code"], r["party_id"], r["role"]))]
    if page.cursor is not None:
        rest = [r for r in visible if r["seq"] > page.cursor]
    else:
        rest = visible[page.offset:]
    chosen = rest[: page.limit]
    cursor = chosen[-1]["seq"] if chosen else None
    return [client_info_row(r) for r in chosen], len(visible), cursor, len(rest) > page.limit


def token_owners(pool: ConnectionPool, object_id: str) -> list[tuple[str, str]]:
    """``(country_code, party_id)`` of every eMSP that pushed the token ``UID|TYPE``."""
    with pool.connection() as conn:
        return conn.execute(
            "SELECT DISTINCT country_code, party_id FROM view_objects WHERE module = 'tokens'"
            " AND object_id = %s ORDER BY 1, 2", (object_id,)).fetchall()


def location_owners(pool: ConnectionPool, location_id: str) -> list[tuple[str, str]]:
    """``(country_code, party_id)`` of every CPO that pushed a Location with this id."""
    with pool.connection() as conn:
        return conn.execute(
            "SELECT DISTINCT country_code, party_id FROM view_objects WHERE module = 'locations'"
            " AND object_id = %s ORDER BY 1, 2", (location_id.upper(),)).fetchall()


def session_owners(pool: ConnectionPool, session_id: str, emsp: tuple[str, str]) -> list[tuple[str, str]]:
    """``(country_code, party_id)`` of every CPO holding a Session with this id for the eMSP ``emsp``."""
    with pool.connection() as conn:
        return conn.execute(
            "SELECT DISTINCT country_code, party_id FROM view_objects WHERE module = 'sessions'"
            " AND object_id = %s AND emsp_country_code = %s AND emsp_party_id = %s ORDER BY 1, 2",
            (session_id.upper(), emsp[0], emsp[1])).fetchall()


def reservation_cpos(pool: ConnectionPool, emsp_key: str, reservation_id: str) -> list[tuple[str, str]]:
    """``(country_code, party_id)`` of every CPO that received a RESERVE_NOW from ``emsp_key``
    with this ``reservation_id``."""
    with pool.connection() as conn:
        return conn.execute(
            "SELECT DISTINCT split_part(cpo, '/', 1), split_part(cpo, '/', 2) FROM view_commands"
            " WHERE command = 'RESERVE_NOW' AND emsp = %s AND reservation_id = %s ORDER BY 1, 2",
            (emsp_key, reservation_id.upper())).fetchall()
