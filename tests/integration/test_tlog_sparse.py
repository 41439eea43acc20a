"""The stored tree keeps nodes of 16 leaves and more only; every root and proof still matches."""

from __future__ import annotations

import psycopg

from hub.infra import tlog
from hub.infra.chain import event_digest
from hub.infra.merkle import MemoryTree, leaf_hash, leaf_input, verify_consistency, verify_inclusion
from tests.partner import role


def _connect(settings) -> psycopg.Connection:
    conn = psycopg.connect(settings.database_url)
    conn.execute(f'SET search_path TO "{settings.database_schema}"')
    return conn


def _leaves(conn) -> list[bytes]:
    rows = conn.execute("SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
                        " ORDER BY notification_id").fetchall()
    return [leaf_hash(leaf_input(p, event_digest(o, v, t, bytes(s)))) for p, o, v, t, s in rows]


def test_roots_and_proofs_of_the_sparse_tree_match_a_full_one_at_every_size(hub, settings):
    partner = hub.connect_partner([role("CPO", "IN", "SPT")])
    for _ in range(45):
        hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token)
    partner.stop()
    with _connect(settings) as conn:
        reference = MemoryTree(_leaves(conn))
        total = len(reference.levels[0])
        assert total > 48
        size = 0
        for step in (1, 6, 9, 15, 16, 3, 17, total):  # appends of every shape, across 16-leaf boundaries
            with conn.transaction():
                size = tlog.catch_up(conn, limit=step)  # whole: every event read
            tree = tlog.stored_tree(conn)
            for n in range(1, size + 1):
                assert tree.root(n) == reference.root(n), n
        assert size == total
        levels = {row[0] for row in conn.execute("SELECT DISTINCT level FROM hub_audit_nodes")}
        assert levels and min(levels) == tlog.NODE_LEVEL
        (nodes,) = conn.execute("SELECT count(*) FROM hub_audit_nodes").fetchone()
        assert nodes <= total // 8
        tree = tlog.stored_tree(conn)
        for n in (1, 5, 16, 17, 33, total):
            root = reference.root(n)
            for index in {0, n // 2, n - 1}:
                assert verify_inclusion(index, n, reference.levels[0][index], tree.inclusion(index, n), root)
            for old in (1, 7, 16, n):
                if old <= n:
                    assert verify_consistency(old, n, reference.root(old), root, tree.consistency(old, n))


def test_a_tree_stored_in_the_layout_of_schema_4_still_reads_and_grows(hub, settings):
    """Schema 4 stored a row per leaf and every node from level 1; those rows stay valid as they are."""
    partner = hub.connect_partner([role("CPO", "IN", "OLD")])
    for _ in range(30):
        hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token)
    partner.stop()
    with _connect(settings) as conn:
        reference = MemoryTree(_leaves(conn))
        positions = [row[0] for row in conn.execute("SELECT notification_id FROM hub_events ORDER BY 1")]
        old = 21  # what the earlier worker had appended
        with conn.transaction():
            for index in range(old):
                conn.execute("INSERT INTO hub_audit_leaves (idx, position, hash) VALUES (%s, %s, %s)",
                             (index, positions[index], reference.levels[0][index]))
            for level in range(1, 5):
                for index in range(old >> level):
                    conn.execute("INSERT INTO hub_audit_nodes (level, idx, hash) VALUES (%s, %s, %s)",
                                 (level, index, reference.perfect(level, index)))
        assert tlog.tree_size(conn) == old
        assert tlog.leaf_at(conn, positions[7]) == (7, reference.levels[0][7])
        with conn.transaction():  # the worker's round: whole runs of 16 only
            size = tlog.catch_up(conn, whole=False)
        assert size == old + (len(positions) - old) // tlog.RUN * tlog.RUN
        with conn.transaction():  # a checkpoint: everything
            size = tlog.catch_up(conn)
        assert size == len(positions)
        tree = tlog.stored_tree(conn)
        assert [tree.root(n) for n in range(1, size + 1)] == [reference.root(n) for n in range(1, size + 1)]
        for index in (0, 20, 21, 36, size - 1):
            assert tlog.leaf_at(conn, positions[index]) == (index, reference.levels[0][index])
        assert tlog.leaf_at(conn, positions[-1] + 1) is None
