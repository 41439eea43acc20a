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
                size = tlog.catch_up(conn, limit=step)
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


def test_a_tree_stored_with_every_level_before_still_reads(hub, settings):
    """Databases whose worker stored nodes of levels 1 to 3 (before): those rows are left and ignored."""
    partner = hub.connect_partner([role("CPO", "IN", "OLD")])
    for _ in range(20):
        hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token)
    partner.stop()
    with _connect(settings) as conn:
        reference = MemoryTree(_leaves(conn))
        with conn.transaction():
            size = tlog.catch_up(conn, limit=20)
        with conn.transaction():  # what the earlier layout held besides
            for level in (1, 2, 3):
                for index in range(size >> level):
                    conn.execute("INSERT INTO hub_audit_nodes (level, idx, hash) VALUES (%s, %s, %s)",
                                 (level, index, reference.perfect(level, index)))
        with conn.transaction():
            size = tlog.catch_up(conn)
        tree = tlog.stored_tree(conn)
        assert [tree.root(n) for n in range(1, size + 1)] == [reference.root(n) for n in range(1, size + 1)]
