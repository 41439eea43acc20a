"""Current views of client-owned objects: Locations (with EVSEs and connectors),
Tariffs, Sessions and CDRs pushed by CPOs, Tokens pushed by eMSPs, in one
table ``view_objects`` (Tokens' ``object_id`` is ``UID|TYPE``).

Rows keep the object exactly as the hub holds it (the same merge functions as
the aggregates), plus what pulls filter on: ``last_updated``, the eMSP a
Session or CDR belongs to (``cdr_token``), ``publish``/``publish_allowed_to``
for Locations, and ``audience``: NULL when the object was ever broadcast (or
open-routed), else the parties it was addressed to directly.

``seq`` (the log position of the object's first event) never changes, so list
pages ordered by it neither skip nor repeat an object that changes while a
partner crawls.
"""

from __future__ import annotations

from typing import Any

import psycopg

from hub.domain import objects as o
from hub.domain.modules import CDR_TOKEN, MODULES
from hub.domain.recipients import cdr_token_emsp
from hub.infra.eventlog import Follower
from hub.ocpi.envelope import parse_datetime
from hub.ocpi.numbers import dumps


def body_after(event: Any, body: dict | None) -> dict | None:
    """The object's body after ``event`` (None: the event changes no body)."""
    merge = _MERGES.get(type(event))
    if merge is None:
        return None
    if merge is _replace:
        return event.body
    return None if body is None else merge(event, body)


def _replace(event: Any, body: dict | None) -> dict:
    return event.body


# How each event type changes a body: a lookup by the event's class, not a chain of
# isinstance checks, since a rebuild asks this for every event of the log. A view's body
# may hold the event's own dicts (``owned``, as a PUT's body is used as it is): the batch's
# events are decoded for this follower alone, and the merges never change a dict in place.
_MERGES = {
    **dict.fromkeys((o.Location.Put, o.Location.Replaced, o.Tariff.Put, o.Tariff.Replaced, o.Session.Put,
                     o.Session.Replaced, o.Cdr.Posted, o.Token.Put, o.Token.Replaced), _replace),
    o.Location.Patched: lambda e, body: o.patched_location(body, e.body),
    o.Location.EvsePut: lambda e, body: o.location_with_evse(body, e.evse_uid, e.body, patch=False, owned=True),
    o.Location.EvsePatched: lambda e, body: o.location_with_evse(body, e.evse_uid, e.body, patch=True, owned=True),
    o.Location.ConnectorPut: lambda e, body: o.location_with_connector(
        body, e.evse_uid, e.connector_id, e.body, patch=False),
    o.Location.ConnectorPatched: lambda e, body: o.location_with_connector(
        body, e.evse_uid, e.connector_id, e.body, patch=True),
    o.Session.Patched: lambda e, body: o.patched_session(body, e.body),
    o.Token.Patched: lambda e, body: {**body, **e.body},
}


CHANGE_EVENTS = (
    o.Location.Put, o.Location.Replaced, o.Location.Patched, o.Location.EvsePut,
    o.Location.EvsePatched, o.Location.ConnectorPut, o.Location.ConnectorPatched,
    o.Tariff.Put, o.Tariff.Replaced, o.Tariff.Deleted,
    o.Session.Put, o.Session.Replaced, o.Session.Patched,
    o.Cdr.Posted,
    o.Token.Put, o.Token.Replaced, o.Token.Patched,
)


def module_of(event: Any) -> str:
    owner = type(event).__qualname__.split(".")[0]
    return {"Location": "locations", "Tariff": "tariffs", "Session": "sessions", "Cdr": "cdrs",
            "Token": "tokens"}[owner]


class ObjectsProjection(Follower):
    name = "objects"
    event_classes = CHANGE_EVENTS
    batch_size = 1000
    partitioned = True  # one row per object (originator)
    read_by_dispatchers = True

    def ddl(self) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS view_objects (
                object_uuid uuid UNIQUE NOT NULL,
                module text NOT NULL,
                country_code text NOT NULL,
                party_id text NOT NULL,
                object_id text NOT NULL,
                seq bigint NOT NULL,
                body json NOT NULL,  -- json, not jsonb: keeps the partner's key order
                last_updated timestamptz NOT NULL,
                deleted boolean NOT NULL DEFAULT false,
                emsp_country_code text,
                emsp_party_id text,
                publish boolean,
                audience jsonb,
                position bigint NOT NULL,
                PRIMARY KEY (module, country_code, party_id, object_id)
            )""",
            "CREATE UNIQUE INDEX IF NOT EXISTS view_objects_seq ON view_objects (module, seq)",
            "CREATE INDEX IF NOT EXISTS view_objects_updated ON view_objects (module, last_updated)",
            """CREATE INDEX IF NOT EXISTS view_objects_emsp
                ON view_objects (module, emsp_country_code, emsp_party_id, seq)""",
        ]

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        # Load every row the batch touches once, apply in memory, write back once. An object
        # whose first event (version 1) is in the batch has no row yet: nothing to load. Rows
        # are keyed by the UUID's integer (a UUID hashes and compares in Python code).
        touched = {e.originator_id.int: e.originator_id for _, e in events if e.originator_version != 1}
        if touched:
            for _, e in events:
                if e.originator_version == 1:
                    touched.pop(e.originator_id.int, None)
        rows = self._load(cur, list(touched.values())) if touched else {}
        deleted = o.Tariff.Deleted
        for position, event in events:
            key = event.originator_id.int
            row = rows.get(key)
            if row is None:
                if not hasattr(event, "country_code"):
                    continue  # an update of an object whose creation this view never saw
                row = {"object_uuid": event.originator_id, "module": module_of(event),
                       "country_code": event.country_code.upper(), "party_id": event.party_id.upper(),
                       "object_id": event.object_id.upper(), "seq": position, "body": None,
                       "deleted": False, "audience": []}
                rows[key] = row
            if type(event) is deleted:
                row["deleted"] = True
            else:
                body = body_after(event, row["body"])
                if body is not None:
                    row["body"] = body
                    row["deleted"] = False
            if row["audience"] is not None:  # (once NULL, it stays NULL)
                row["audience"] = _audience(row["audience"], event.message)
            row["position"] = position
            row["dirty"] = True
        written = [self._values(row) for row in rows.values() if row.get("dirty") and row["body"] is not None]
        if written:
            cur.execute(UPSERT, [list(column) for column in zip(*written, strict=True)])  # one statement

    @staticmethod
    def _load(cur: psycopg.Cursor, ids: list) -> dict:
        found = cur.execute(
            "SELECT object_uuid, module, country_code, party_id, object_id, seq, body, deleted, audience"
            " FROM view_objects WHERE object_uuid = ANY(%s)",
            (ids,),
        ).fetchall()
        names = ("object_uuid", "module", "country_code", "party_id", "object_id", "seq", "body",
                 "deleted", "audience")
        return {r[0].int: dict(zip(names, r, strict=True)) for r in found}

    @staticmethod
    def _values(row: dict) -> tuple:
        body = row["body"]
        emsp = cdr_token_emsp(body) if MODULES[row["module"]].routing == CDR_TOKEN else None
        emsp_cc, emsp_pid = (emsp[0] or None, emsp[1] or None) if emsp else (None, None)
        publish = body.get("publish") if row["module"] == "locations" else None
        return (row["object_uuid"], row["module"], row["country_code"], row["party_id"], row["object_id"],
                row["seq"], _dumps(body), parse_datetime(body["last_updated"]), row["deleted"], emsp_cc,
                emsp_pid, publish, None if row["audience"] is None else _dumps(row["audience"]), row["position"])


def _dumps(value: dict | list) -> str:
    """JSON text in the partner's key order, numbers as sent (hub/ocpi/numbers.py); text, because
    the set-based batches send their arrays of bodies as ``text[]``."""
    return dumps(value).decode()


# A batch's rows in one statement: each column an array, unnested into rows (no two rows of
# one batch share an object, so no row is updated twice by it). Arrays go in binary (%b):
# as text, escaping the JSON bodies' quotes costs more than the whole statement.
UPSERT = (
    "INSERT INTO view_objects (object_uuid, module, country_code, party_id, object_id, seq, body,"
    " last_updated, deleted, emsp_country_code, emsp_party_id, publish, audience, position)"
    " SELECT u, m, cc, pid, oid, seq, body::json, lu, del, ecc, epid, pub, aud::jsonb, pos FROM unnest("
    "%b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[],"
    " %b::timestamptz[], %b::boolean[], %b::text[], %b::text[], %b::boolean[], %b::text[], %b::bigint[])"
    " AS r(u, m, cc, pid, oid, seq, body, lu, del, ecc, epid, pub, aud, pos)"
    " ON CONFLICT (object_uuid) DO UPDATE SET"
    " body = excluded.body, last_updated = excluded.last_updated, deleted = excluded.deleted,"
    " emsp_country_code = excluded.emsp_country_code, emsp_party_id = excluded.emsp_party_id,"
    " publish = excluded.publish, audience = excluded.audience, position = excluded.position"
)


def _audience(current: list | None, message: dict) -> list | None:
    """NULL once the object was broadcast or open-routed; else the parties addressed."""
    if current is None or message.get("scenario") != "directed":
        return None
    receiver = message.get("to")
    return current if receiver in current else [*current, receiver]


def _visibility(where: list, params: list, owners, emsp, viewer) -> None:
    """The visibility filters shared by list and single-object reads."""
    if owners is not None:
        where.append("(country_code, party_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))")
        params += [[o[0] for o in owners], [o[1] for o in owners]]
    if emsp is not None:
        where.append("emsp_country_code = %s AND emsp_party_id = %s")
        params += [emsp[0], emsp[1]]
    if viewer is not None:
        where.append("(audience IS NULL OR audience ? %s)")
        params.append(viewer)


def page_objects(
    conn: psycopg.Connection,
    module: str,
    page,
    *,
    owners: list[tuple[str, str]] | None = None,
    emsp: tuple[str, str] | None = None,
    viewer: str | None = None,
    published_only: bool = False,
    unpublished_allowed: list | None = None,
    as_text: bool = False,
) -> tuple[list, int, int | None, bool]:
    """One page of a module's objects visible under the given filters.

    ``owners``: the owner parties the caller may see (None: any); ``emsp``:
    only objects of this eMSP (sessions, CDRs); ``viewer``: the caller's party
    key, for objects pushed directed to some parties only. Returns the bodies
    (``as_text``: each as its stored JSON text, not parsed), the total count,
    the cursor for the next page and whether more follow.
    """
    where = ["module = %s", "NOT deleted"]
    params: list = [module]
    _visibility(where, params, owners, emsp, viewer)
    if published_only:
        where.append("(publish IS NOT FALSE OR object_uuid = ANY(%s))")
        params.append(unpublished_allowed or [])
    if page.date_from is not None:
        where.append("last_updated >= %s")
        params.append(page.date_from)
    if page.date_to is not None:
        where.append("last_updated < %s")
        params.append(page.date_to)
    clause = " AND ".join(where)
    (total,) = conn.execute(f"SELECT count(*) FROM view_objects WHERE {clause}", params).fetchone()
    # The page's rows are chosen on the narrow columns first, then only they are read in
    # full: whatever plan PostgreSQL picks (e.g. before a fresh view is analyzed), no body
    # beyond the page is detoasted or converted.
    if page.cursor is not None:
        chosen, page_params = f"{clause} AND seq > %s ORDER BY seq LIMIT %s", [page.cursor, page.limit + 1]
    else:
        chosen, page_params = f"{clause} ORDER BY seq OFFSET %s LIMIT %s", [page.offset, page.limit + 1]
    body = "v.body::text" if as_text else "v.body"
    rows = conn.execute(
        f"WITH page AS MATERIALIZED (SELECT object_uuid, seq FROM view_objects WHERE {chosen})"
        f" SELECT page.seq, {body} FROM page JOIN view_objects v USING (object_uuid) ORDER BY page.seq",
        [*params, *page_params],
    ).fetchall()
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    cursor = rows[-1][0] if rows else None
    return [r[1] for r in rows], total, cursor, more


def find_objects(conn: psycopg.Connection, module: str, object_id: str, *,
                 owners: list[tuple[str, str]] | None = None, viewer: str | None = None,
                 emsp: tuple[str, str] | None = None) -> list[dict]:
    """Visible objects of ``module`` with this id (several CPOs may use one id)."""
    where = ["module = %s", "object_id = %s", "NOT deleted"]
    params: list = [module, object_id.upper()]
    _visibility(where, params, owners, emsp, viewer)
    rows = conn.execute(f"SELECT body FROM view_objects WHERE {' AND '.join(where)}", params).fetchall()
    return [r[0] for r in rows]


def object_of(conn: psycopg.Connection | psycopg.Cursor, object_uuid) -> tuple | None:
    """``(country_code, party_id, object_id, body)`` of one object, or None."""
    return conn.execute(
        "SELECT country_code, party_id, object_id, body FROM view_objects WHERE object_uuid = %s",
        (object_uuid,),
    ).fetchone()


def emsp_tokens(conn: psycopg.Connection | psycopg.Cursor, party: str) -> list[dict]:
    """The Tokens the eMSP party ``CC/PID[/ROLE]`` has pushed."""
    cc, pid = party.split("/")[:2]
    return [r[0] for r in conn.execute(
        "SELECT body FROM view_objects WHERE module = 'tokens' AND country_code = %s AND party_id = %s"
        " AND NOT deleted", (cc, pid)).fetchall()]


def unpublished_for(conn: psycopg.Connection, viewer: str, owners: list[tuple[str, str]] | None) -> list:
    """Ids of ``publish: false`` Locations the eMSP ``viewer`` holds a matching token for."""
    from hub.domain.recipients import publish_visible

    tokens = emsp_tokens(conn, viewer)
    if not tokens:
        return []
    rows = conn.execute(
        "SELECT object_uuid, country_code, party_id, body FROM view_objects"
        " WHERE module = 'locations' AND publish IS FALSE AND NOT deleted").fetchall()
    return [uuid for uuid, owner_cc, owner_pid, body in rows
            if (owners is None or (owner_cc, owner_pid) in owners) and publish_visible(body, tokens)]
