"""The tamper-evident log: every stored event is chained to the one before it.

``hub_audit_chain`` holds, for each notification id, ``hash = SHA-256(previous
hash || position || digest)``, where ``digest = SHA-256(originator id ||
version || topic || state)`` is the event's own digest. It is written by
:class:`ChainedApplicationRecorder` in the same transaction as the events,
inside the library's exclusive table lock, so the chain follows the log's
order without gaps. Both tables are append-only (triggers).

Because SHA-256 is unkeyed, someone with superuser rights who rewrites events
*and* recomputes the chain would go unnoticed by the chain alone; signed
checkpoints close that gap: :func:`sign_checkpoint` records ``(position,
head hash)`` under an HMAC key the database never holds, and an auditor can
keep the checkpoint file outside the hub. :func:`verify` recomputes the chain
and names the first position where it breaks: an edited, deleted, reordered or
inserted event.

Hashing each event's digest rather than its bytes lets a proof about one event
(:mod:`hub.audit.proof`) link it to a signed checkpoint while carrying only
the digests of the other parties' events in between, never their contents.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

GENESIS = b"\x00" * 32
CHAIN_DDL = """CREATE TABLE IF NOT EXISTS {schema}.hub_audit_chain (
    notification_id bigint PRIMARY KEY,
    hash bytea NOT NULL
)"""


def event_digest(originator_id: Any, version: int, topic: str, state: bytes) -> bytes:
    """One stored event's own digest (unambiguous: fixed widths and lengths)."""
    ident = str(originator_id).encode()
    topic_bytes = topic.encode()
    digest = hashlib.sha256(len(ident).to_bytes(4, "big") + ident)
    digest.update(int(version).to_bytes(8, "big"))
    digest.update(len(topic_bytes).to_bytes(4, "big") + topic_bytes)
    digest.update(len(state).to_bytes(8, "big") + bytes(state))
    return digest.digest()


def chain_link(previous: bytes, position: int, digest: bytes) -> bytes:
    """The chain hash at ``position``, from the one before it and the event's digest."""
    return hashlib.sha256(bytes(previous) + position.to_bytes(8, "big") + bytes(digest)).digest()


def link_hash(previous: bytes, position: int, originator_id: Any, version: int, topic: str,
              state: bytes) -> bytes:
    """The chain link of one stored event."""
    return chain_link(previous, position, event_digest(originator_id, version, topic, state))


# The chain link of every inserted event, computed by PostgreSQL in the inserting
# transaction: the same formula as event_digest() and chain_link() above.
CHAIN_FUNCTION_DDL = """CREATE OR REPLACE FUNCTION {schema}.hub_chain_link() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
    ident bytea := convert_to(NEW.originator_id::text, 'UTF8');
    topic bytea := convert_to(NEW.topic, 'UTF8');
BEGIN
    SELECT hash INTO previous FROM {schema}.hub_audit_chain ORDER BY notification_id DESC LIMIT 1;
    INSERT INTO {schema}.hub_audit_chain (notification_id, hash) VALUES (
        NEW.notification_id,
        sha256(coalesce(previous, decode(repeat('00', 32), 'hex')) || int8send(NEW.notification_id)
               || sha256(int4send(octet_length(ident)) || ident || int8send(NEW.originator_version)
                         || int4send(octet_length(topic)) || topic
                         || int8send(octet_length(NEW.state)::bigint) || NEW.state)));
    RETURN NULL;
END $$"""
CHAIN_TRIGGER_DDL = [
    "DROP TRIGGER IF EXISTS hub_events_chain ON {schema}.{events}",
    """CREATE TRIGGER hub_events_chain AFTER INSERT ON {schema}.{events}
        FOR EACH ROW EXECUTE FUNCTION {schema}.hub_chain_link()""",
]


class ChainedApplicationRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder, with the hash chain written by the database.

    An ``AFTER INSERT`` row trigger on the events table links every event as it
    is inserted, inside the insert's transaction and under the writers' lock
    (rows are inserted, and their triggers fired, in position order): a save
    costs no statement more than the library's own, and the lock every writer
    waits for is held no longer. :func:`verify` recomputes the same links in
    Python. A superuser who disables the table's triggers to insert an event
    leaves it without a link, which ``hub audit verify`` reports.
    """

    def __init__(self, datastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        names = {"schema": Identifier(datastore.schema), "events": Identifier(events_table_name)}
        self.sql_create_statements.append(SQL(CHAIN_DDL).format(schema=names["schema"]))
        self.sql_create_statements.append(SQL(CHAIN_FUNCTION_DDL).format(schema=names["schema"]))
        self.sql_create_statements.extend(SQL(statement).format(**names) for statement in CHAIN_TRIGGER_DDL)
        # Serialise writers with a transaction-level advisory lock instead of the
        # library's LOCK TABLE ... EXCLUSIVE: the same guarantee (ids are taken and
        # committed one writer at a time, so readers never pass a gap that fills in
        # later), but it needs no UPDATE/DELETE privilege, so the application's
        # database role can be limited to SELECT and INSERT on the event tables.
        self.lock_table_statements = [
            SQL("SET LOCAL lock_timeout = '{0}s'").format(self.datastore.lock_timeout),
            SQL("SELECT pg_advisory_xact_lock(hashtext({0}))").format(
                f"{datastore.schema}.{events_table_name}"),
        ]



# Checkpoints ----------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    position: int
    head: str  # hex of the chain hash at ``position``
    created_at: str
    signature: str  # HMAC-SHA256 hex over the fields above

    def payload(self) -> bytes:
        return f"chargeindia-hub-checkpoint|{self.position}|{self.head}|{self.created_at}".encode()

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes) -> Checkpoint:
        """A checkpoint file as :meth:`to_json` writes it; ValueError naming what is wrong."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("not a checkpoint: expected a JSON object")
        missing = [k for k in ("position", "head", "created_at", "signature") if k not in data]
        if missing:
            raise ValueError(f"not a checkpoint: no {', '.join(missing)}")
        position, head = data["position"], data["head"]
        if not isinstance(position, int) or isinstance(position, bool) or position < 1:
            raise ValueError("position: expected a positive integer")
        if not isinstance(head, str) or len(head) != 64 or not all(c in "0123456789abcdef" for c in head):
            raise ValueError("head: expected 64 lowercase hex digits")
        return cls(position, head, str(data["created_at"]), str(data["signature"]))


def checkpoint_key(secret: str) -> bytes:
    return hashlib.sha256(b"chargeindia-hub/audit-checkpoints\x00" + secret.encode()).digest()


def sign_checkpoint(key: bytes, position: int, head: bytes, created_at: str) -> Checkpoint:
    unsigned = Checkpoint(position, head.hex(), created_at, "")
    return Checkpoint(position, head.hex(), created_at,
                      hmac.new(key, unsigned.payload(), hashlib.sha256).hexdigest())


def checkpoint_valid(key: bytes, checkpoint: Checkpoint) -> bool:
    expected = hmac.new(key, checkpoint.payload(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, checkpoint.signature)


# Verification ---------------------------------------------------------------------
@dataclass
class Verdict:
    ok: bool
    checked: int
    head_position: int
    head: bytes
    break_position: int | None = None
    problem: str | None = None


def _rows(conn: psycopg.Connection, start: int, batch: int) -> Iterator[tuple]:
    """Every position after ``start`` held by an event or a chain link (or both), in order.

    Reads windows of ``batch`` notification ids: each side is a range scan of its
    primary key, so a batch costs the same at any depth of the log. An empty
    window (ids skipped by rolled-back inserts) jumps to the next id either table holds.
    """
    low = start
    while True:
        high = low + batch
        rows = conn.execute(
            "SELECT coalesce(e.notification_id, c.notification_id) AS position, e.notification_id,"
            " e.originator_id, e.originator_version, e.topic, e.state, c.hash"
            " FROM (SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
            "       WHERE notification_id > %(low)s AND notification_id <= %(high)s) e"
            " FULL OUTER JOIN (SELECT notification_id, hash FROM hub_audit_chain"
            "       WHERE notification_id > %(low)s AND notification_id <= %(high)s) c"
            " ON c.notification_id = e.notification_id"
            " ORDER BY 1", {"low": low, "high": high},
        ).fetchall()
        if rows:
            yield from rows
            low = high
            continue
        (following,) = conn.execute(
            "SELECT least((SELECT min(notification_id) FROM hub_events WHERE notification_id > %(high)s),"
            " (SELECT min(notification_id) FROM hub_audit_chain WHERE notification_id > %(high)s))",
            {"high": high},
        ).fetchone()
        if following is None:
            return
        low = following - 1


def verify(conn: psycopg.Connection, *, start: int = 0, checkpoints: Sequence[Checkpoint] = (),
           progress: Callable[[int], None] | None = None, batch: int = 5000,
           on_event: Callable[[int, bytes], None] | None = None) -> Verdict:
    """Recompute the chain from ``start`` (the link at or before it is trusted as stored).

    ``on_event(position, digest)`` sees every event that matched its link, in order
    (the Merkle tree is recomputed from it in the same pass: hub/audit/transparency.py).

    Every checkpoint at or after ``start`` must find its position in the log with
    the signed head there; one whose position the log no longer holds fails as missing.
    """
    previous, trusted = GENESIS, 0
    if start > 0:
        row = conn.execute("SELECT notification_id, hash FROM hub_audit_chain WHERE notification_id <= %s"
                           " ORDER BY notification_id DESC LIMIT 1", (start,)).fetchone()
        if row:
            trusted, previous = row[0], bytes(row[1])
    wanted = sorted((c.position, bytes.fromhex(c.head)) for c in checkpoints if c.position >= start)
    while wanted and wanted[0][0] == start:  # signed at ``start``: the trusted link must be that one
        _, head = wanted.pop(0)
        if trusted != start:
            return Verdict(False, 0, start, previous, start,
                           f"event {start} of the signed checkpoint is missing")
        if not hmac.compare_digest(head, previous):
            return Verdict(False, 0, start, previous, start,
                           f"the chain at {start} differs from the signed checkpoint (history rewritten)")
    upcoming = iter(wanted)
    signed = next(upcoming, None)
    checked, position = 0, start
    for position, event_id, originator_id, version, topic, state, stored_hash in _rows(conn, start, batch):
        if signed is not None and signed[0] < position:
            return Verdict(False, checked, position, previous, signed[0],
                           f"event {signed[0]} of the signed checkpoint is missing")
        checked += 1
        if progress is not None and checked % batch == 0:
            progress(position)
        if event_id is None:
            return Verdict(False, checked, position, previous, position,
                           f"event {position} is missing (deleted) but its chain link remains")
        if stored_hash is None:
            return Verdict(False, checked, position, previous, position,
                           f"event {position} has no chain link (inserted outside the hub?)")
        digest = event_digest(originator_id, version, topic, bytes(state))
        expected = chain_link(previous, position, digest)
        if not hmac.compare_digest(expected, bytes(stored_hash)):
            return Verdict(False, checked, position, previous, position,
                           f"event {position} does not match the chain (altered, or an earlier event "
                           "was removed or reordered)")
        while signed is not None and signed[0] == position:  # several checkpoints may sign one position
            if not hmac.compare_digest(signed[1], expected):
                return Verdict(False, checked, position, previous, position,
                               f"the chain at {position} differs from the signed checkpoint (history rewritten)")
            signed = next(upcoming, None)
        previous = expected
        if on_event is not None:
            on_event(position, digest)
    if signed is not None:
        return Verdict(False, checked, position, previous, signed[0],
                       f"the log ends at {position}, before the signed checkpoint at {signed[0]}"
                       " (events removed)")
    return Verdict(True, checked, position, previous)


def take_checkpoint(conn: psycopg.Connection, key: bytes, created_at: str) -> Checkpoint | None:
    """Sign the chain head now and keep it in ``hub_audit_checkpoints`` (None: empty log)."""
    row = conn.execute(
        "SELECT notification_id, hash FROM hub_audit_chain ORDER BY notification_id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    checkpoint = sign_checkpoint(key, row[0], bytes(row[1]), created_at)
    conn.execute(
        "INSERT INTO hub_audit_checkpoints (position, head, created_at, signature) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (position) DO NOTHING",
        (checkpoint.position, checkpoint.head, checkpoint.created_at, checkpoint.signature),
    )
    return checkpoint


def stored_checkpoints(conn: psycopg.Connection) -> list[Checkpoint]:
    rows = conn.execute(
        "SELECT position, head, created_at, signature FROM hub_audit_checkpoints ORDER BY position"
    ).fetchall()
    return [Checkpoint(*row) for row in rows]
