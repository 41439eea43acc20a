"""The transparency log: an RFC 9162 Merkle tree over the event log, and its signed checkpoints.

Leaf ``i`` is the ``i``-th stored event in log order (notification ids may skip
numbers; the tree does not): ``leaf_hash(position || event digest)``.
``hub_audit_leaves`` holds the leaves in runs: a row is the run starting at leaf ``idx``
and log position ``position``; ``positions`` lists the run's positions (NULL: a run of
one leaf, the only form before schema 5) and ``hash`` is their leaf hashes, 32 bytes
each, in order. The worker appends whole runs of ``RUN`` (16) leaves and leaves fewer
for its next round; signing a checkpoint appends what is left as a shorter run, so
every checkpoint's size is stored. ``hub_audit_nodes`` keeps every complete subtree of
``2**NODE_LEVEL`` (16) leaves or more as soon as its last leaf is in; a smaller one is
hashed again from its leaves (one or two rows, one query) when a root or proof needs
it. So the root of any past size, and any proof, is read back in O(log² n) lookups
(:mod:`hub.infra.merkle`), and the tree costs about one row per 8 events instead of two
per event (docs/performance.md "Issue 15"). Rows of the earlier layout (a leaf per row,
nodes from level 1) stay valid and are read as they are.
The worker appends new events
(:func:`catch_up`) and signs checkpoints (:func:`sign_checkpoint`);
``hub_audit_tree_heads`` keeps every signed checkpoint note, and ``hub_audit_keys``
every verifier key the hub ever signed with (older checkpoints stay verifiable
after a key rotation).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg

from hub.infra.merkle import Tree, node_hash
from hub.infra.notes import Signer, TreeHead, Verifier

TREE_LOCK = 0x544C_4F47  # "TLOG": one appender at a time
NODE_LEVEL = 4  # the lowest level of hub_audit_nodes written: subtrees of 16 leaves and more
RUN = 16  # leaves per hub_audit_leaves row the worker writes (a checkpoint may write a shorter one)
HASH = 32
TLOG_DDL = [
    """CREATE TABLE IF NOT EXISTS hub_audit_leaves (
        idx bigint PRIMARY KEY,
        position bigint NOT NULL UNIQUE,
        hash bytea NOT NULL
    )""",
    # Schema 5: runs of leaves per row (NULL: one leaf, as every row of schema 4 is).
    "ALTER TABLE hub_audit_leaves ADD COLUMN IF NOT EXISTS positions bigint[]",
    """CREATE TABLE IF NOT EXISTS hub_audit_nodes (
        level smallint NOT NULL,
        idx bigint NOT NULL,
        hash bytea NOT NULL,
        PRIMARY KEY (level, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS hub_audit_tree_heads (
        id bigserial PRIMARY KEY,
        size bigint NOT NULL,
        root bytea NOT NULL,
        key_id text NOT NULL,
        created_at text NOT NULL,
        note text NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS hub_audit_tree_heads_size ON hub_audit_tree_heads (size)",
    """CREATE TABLE IF NOT EXISTS hub_audit_keys (
        vkey text PRIMARY KEY,
        first_used_at text NOT NULL
    )""",
]
# Where the queueing of checkpoint pushes to witnesses stands (scheduler/checkpoints.py); a
# database that had checkpoints before pushes existed starts after them.
PUSH_DDL = [
    """CREATE TABLE IF NOT EXISTS hub_audit_push_position (
        id smallint PRIMARY KEY CHECK (id = 1),
        head_id bigint NOT NULL
    )""",
    """INSERT INTO hub_audit_push_position (id, head_id)
        SELECT 1, coalesce(max(id), 0) FROM hub_audit_tree_heads ON CONFLICT DO NOTHING""",
]
TLOG_TABLES = ("hub_audit_leaves", "hub_audit_nodes", "hub_audit_tree_heads", "hub_audit_keys")
for _table in TLOG_TABLES:  # append-only, like the event log (hub_forbid_mutation: hub/services/schema.py)
    TLOG_DDL += [
        f"DROP TRIGGER IF EXISTS {_table}_append_only ON {_table}",
        f"""CREATE TRIGGER {_table}_append_only BEFORE UPDATE OR DELETE ON {_table}
            FOR EACH ROW EXECUTE FUNCTION hub_forbid_mutation()""",
    ]
TLOG_DDL += PUSH_DDL


def enabled() -> bool:
    """``HUB_TLOG=off`` (for measuring only: ops/bench ingest) turns off receipts and the worker's tree."""
    import os

    return os.environ.get("HUB_TLOG", "").strip().lower() not in ("off", "false", "no", "0")


def _expand(idx: int, position: int, hashes: bytes, positions: list[int] | None) -> list[tuple[int, int, bytes]]:
    """A row's leaves as (index, position, hash)."""
    hashes = bytes(hashes)
    positions = positions if positions is not None else [position]
    return [(idx + k, p, hashes[k * HASH:(k + 1) * HASH]) for k, p in enumerate(positions)]


def _last_run(conn: psycopg.Connection) -> tuple[int, int]:
    """The tree's size and the log position of its last leaf ((0, 0) when empty)."""
    row = conn.execute("SELECT idx, position, positions FROM hub_audit_leaves ORDER BY idx DESC LIMIT 1").fetchone()
    if row is None:
        return 0, 0
    idx, position, positions = row
    return (idx + len(positions), positions[-1]) if positions else (idx + 1, position)


def tree_size(conn: psycopg.Connection) -> int:
    return _last_run(conn)[0]


def leaf_range(conn: psycopg.Connection, first: int, count: int) -> list[bytes]:
    """The hashes of leaves ``first`` to ``first + count - 1`` (LookupError if some are not stored)."""
    rows = conn.execute("SELECT idx, position, hash, positions FROM hub_audit_leaves WHERE idx > %s AND idx < %s"
                        " ORDER BY idx", (first - RUN, first + count)).fetchall()
    found = [h for row in rows for i, _, h in _expand(*row) if first <= i < first + count]
    if len(found) != count:
        raise LookupError(f"the stored tree lacks leaves between index {first} and {first + count - 1}")
    return found


def stored_tree(conn: psycopg.Connection) -> Tree:
    def perfect(level: int, index: int) -> bytes:
        if level < NODE_LEVEL:  # not stored: hashed again from its leaves
            return subtree_hash(leaf_range(conn, index << level, 1 << level))
        row = conn.execute("SELECT hash FROM hub_audit_nodes WHERE level = %s AND idx = %s",
                           (level, index)).fetchone()
        if row is None:
            raise LookupError(f"the stored tree has no node at level {level}, index {index}")
        return bytes(row[0])

    return Tree(perfect)


def subtree_hash(hashes: list[bytes]) -> bytes:
    """The root of a complete subtree from its leaf hashes (a power of two of them)."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


# The leaf hash of each event, computed by PostgreSQL (the same bytes as
# leaf_hash(leaf_input(position, event_digest(...))) of hub/infra/chain.py, which
# tests/integration/test_tlog_sparse.py checks): only 32 bytes an event cross the
# wire, and no Python hashes the events' states.
_LEAF_SQL = (
    "SELECT notification_id, sha256('\\x00'::bytea || int8send(notification_id) || sha256("
    "int4send(octet_length(convert_to(originator_id::text, 'UTF8'))) || convert_to(originator_id::text, 'UTF8')"
    " || int8send(originator_version)"
    " || int4send(octet_length(convert_to(topic, 'UTF8'))) || convert_to(topic, 'UTF8')"
    " || int8send(octet_length(state)::bigint) || state))"
    " FROM hub_events WHERE notification_id > %s ORDER BY notification_id LIMIT %s")


def _leaves_after(conn: psycopg.Connection, position: int, batch: int) -> Iterator[list[tuple]]:
    """(position, leaf hash) of the events after ``position``, ``batch`` at a time."""
    while True:
        rows = conn.execute(_LEAF_SQL, (position, batch)).fetchall()
        if not rows:
            return
        yield rows
        position = rows[-1][0]


def catch_up(conn: psycopg.Connection, *, batch: int = 4096, limit: int | None = None,
             whole: bool = True) -> int:
    """Append events not yet in the tree (at most ``limit``); the new tree size.

    ``whole=False`` (the worker's rounds) appends whole runs of ``RUN`` leaves only and
    leaves the rest for a later round; ``True`` appends every event (before signing).
    Run inside a transaction: the advisory lock makes appenders take turns.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (TREE_LOCK,))
    size, last = _last_run(conn)
    tree = stored_tree(conn)
    added = 0
    for rows in _leaves_after(conn, last, batch):
        if limit is not None:
            rows = rows[:limit - added]
        final = len(rows) < batch or (limit is not None and added + len(rows) >= limit)
        if final and not whole:
            rows = rows[:len(rows) - len(rows) % RUN]
        if not rows:
            break
        runs, nodes = [], []
        fresh: dict[tuple[int, int], bytes] = {}
        start = size
        for _position, leaf in rows:
            leaf = bytes(leaf)
            level, index, current = 0, size, leaf
            fresh[(0, index)] = leaf
            while index % 2 == 1:
                left = fresh.get((level, index - 1)) or tree.perfect(level, index - 1)
                level, index, current = level + 1, index // 2, node_hash(left, current)
                fresh[(level, index)] = current
                if level >= NODE_LEVEL:
                    nodes.append((level, index, current))
            size += 1
        for k in range(0, len(rows), RUN):
            part = rows[k:k + RUN]
            runs.append((start + k, part[0][0], b"".join(fresh[(0, start + k + j)] for j in range(len(part))),
                         [r[0] for r in part]))
        # COPY: a fraction of the per-row cost of INSERTs, in the client and in PostgreSQL.
        with conn.cursor() as cur:
            with cur.copy("COPY hub_audit_leaves (idx, position, hash, positions) FROM STDIN") as copy:
                for run in runs:
                    copy.write_row(run)
            if nodes:
                with cur.copy("COPY hub_audit_nodes (level, idx, hash) FROM STDIN") as copy:
                    for node in nodes:
                        copy.write_row(node)
        added += len(rows)
        if final:
            break
    return size


def leaf_at(conn: psycopg.Connection, position: int) -> tuple[int, bytes] | None:
    """The leaf index and hash of the event at a log position (None: not in the tree yet)."""
    row = conn.execute("SELECT idx, position, hash, positions FROM hub_audit_leaves WHERE position <= %s"
                       " ORDER BY position DESC LIMIT 1", (position,)).fetchone()
    if row is None:
        return None
    return next(((i, h) for i, p, h in _expand(*row) if p == position), None)


def register_key(conn: psycopg.Connection, verifier: Verifier, now: str) -> None:
    conn.execute("INSERT INTO hub_audit_keys (vkey, first_used_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                 (verifier.vkey, now))


def known_keys(conn: psycopg.Connection) -> list[tuple[Verifier, str]]:
    rows = conn.execute("SELECT vkey, first_used_at FROM hub_audit_keys ORDER BY first_used_at").fetchall()
    return [(Verifier.parse(vkey), first) for vkey, first in rows]


def sign_checkpoint(conn: psycopg.Connection, signer: Signer, origin: str, now: str) -> tuple[TreeHead, str]:
    """Catch the tree up with the log, sign its head and keep the note; (head, note)."""
    size = catch_up(conn)
    head = TreeHead(origin, size, stored_tree(conn).root(size))
    note = signer.sign(head.text())
    register_key(conn, signer.verifier, now)
    conn.execute("INSERT INTO hub_audit_tree_heads (size, root, key_id, created_at, note)"
                 " VALUES (%s, %s, %s, %s, %s)", (size, head.root, signer.verifier.id.hex(), now, note))
    return head, note


def tree_heads(conn: psycopg.Connection) -> list[tuple[int, str, str]]:
    """Every stored checkpoint as (size, created_at, note), oldest first."""
    return [tuple(row) for row in conn.execute(
        "SELECT size, created_at, note FROM hub_audit_tree_heads ORDER BY id").fetchall()]


def latest_head(conn: psycopg.Connection) -> tuple[int, str, str] | None:
    row = conn.execute("SELECT size, created_at, note FROM hub_audit_tree_heads ORDER BY id DESC LIMIT 1"
                       ).fetchone()
    return tuple(row) if row else None
