"""Tamper evidence: whatever a database superuser changes, `hub audit verify` finds it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub.infra.chain import link_hash
from hub.infra.tlog import TLOG_TABLES
from tests.cli import run_hub
from tests.partner import role


def admin(settings):
    """A superuser connection with the append-only triggers disabled, as an attacker would."""
    conn = psycopg.connect(settings.database_url, autocommit=True)
    conn.execute(f'SET search_path TO "{settings.database_schema}"')
    conn.execute("ALTER TABLE hub_events DISABLE TRIGGER USER")
    conn.execute("ALTER TABLE hub_audit_chain DISABLE TRIGGER USER")
    for table in TLOG_TABLES:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    return conn


def wipe_tree(conn) -> None:
    """The attacker's clean-up: the Merkle tree and the hub's own checkpoints go."""
    for table in ("hub_audit_leaves", "hub_audit_nodes", "hub_audit_tree_heads"):
        conn.execute(f"DELETE FROM {table}")


@pytest.fixture
def history(hub, settings):
    """Some real traffic in the log: onboarding, a registration, requests."""
    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    for _ in range(3):
        hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token)
    partner.stop()
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        ids = [r[0] for r in conn.execute("SELECT notification_id FROM hub_events ORDER BY 1")]
    assert len(ids) >= 10
    return ids


def verify(settings, *extra) -> tuple[int, dict]:
    done = run_hub(settings, "audit", "verify", "--json", *extra, ok=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def rechain(conn) -> None:
    """Recompute every chain link from the events as they now are (SHA-256 needs no key)."""
    rows = conn.execute(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
        " ORDER BY notification_id").fetchall()
    previous = b"\x00" * 32
    for position, originator_id, version, topic, state in rows:
        previous = link_hash(previous, position, originator_id, version, topic, bytes(state))
        conn.execute("UPDATE hub_audit_chain SET hash = %s WHERE notification_id = %s", (previous, position))


def test_untouched_history_verifies(history, settings):
    code, result = verify(settings)
    assert code == 0 and result["ok"] and result["checked"] == len(history)
    assert result["head_position"] == history[-1]


def test_edited_event_is_found(history, settings):
    target = history[4]
    with admin(settings) as conn:
        conn.execute("UPDATE hub_events SET state = state || '\\x20'::bytea WHERE notification_id = %s",
                     (target,))
    code, result = verify(settings)
    assert code == 1 and result["break_position"] == target and "altered" in result["problem"]


def test_deleted_event_is_found(history, settings):
    with admin(settings) as conn:
        conn.execute("DELETE FROM hub_events WHERE notification_id = %s", (history[3],))
    code, result = verify(settings)
    assert code == 1 and result["break_position"] == history[3] and "missing" in result["problem"]


def test_deleted_event_and_its_link_are_found(history, settings):
    with admin(settings) as conn:
        conn.execute("DELETE FROM hub_events WHERE notification_id = %s", (history[3],))
        conn.execute("DELETE FROM hub_audit_chain WHERE notification_id = %s", (history[3],))
    code, result = verify(settings)
    assert code == 1 and result["break_position"] == history[4]  # the next link no longer fits


def test_swapped_events_are_found(history, settings):
    a, b = history[2], history[6]
    with admin(settings) as conn:
        conn.execute(
            "UPDATE hub_events e SET state = s.state, topic = s.topic FROM"
            " (SELECT notification_id, state, topic FROM hub_events WHERE notification_id IN (%s, %s)) s"
            " WHERE e.notification_id IN (%s, %s) AND s.notification_id <> e.notification_id",
            (a, b, a, b))
    code, result = verify(settings)
    assert code == 1 and result["break_position"] == a


def test_inserted_event_is_found(history, settings):
    forged = history[-1] + 1
    with admin(settings) as conn:
        conn.execute(
            "INSERT INTO hub_events (originator_id, originator_version, topic, state, notification_id)"
            " SELECT gen_random_uuid(), 1, topic, state, %s FROM hub_events WHERE notification_id = %s",
            (forged, history[5]))
    code, result = verify(settings)
    assert code == 1 and result["break_position"] == forged and "no chain link" in result["problem"]


def test_rewritten_history_is_caught_by_a_signed_checkpoint(history, settings, tmp_path):
    checkpoint = tmp_path / "checkpoint.note"
    run_hub(settings, "audit", "checkpoint", "--out", str(checkpoint))
    assert checkpoint.read_text().split("\n")[1] == str(len(history))  # the tree size
    # The attacker edits an event and recomputes every link after it (SHA-256 needs no key),
    # removes the tree and the checkpoints the hub kept, and lets the hub sign the new history.
    target = history[2]
    with admin(settings) as conn:
        conn.execute("UPDATE hub_events SET state = state || '\\x20'::bytea WHERE notification_id = %s",
                     (target,))
        rechain(conn)
        wipe_tree(conn)
    run_hub(settings, "audit", "checkpoint")
    assert verify(settings)[0] == 0  # the database alone is consistent again...
    code, result = verify(settings, "--checkpoint", str(checkpoint))
    assert code == 1 and result["problem"].startswith(f"fork: two checkpoints of size {len(history)}")
    with admin(settings) as conn:  # without the re-signed checkpoint, the auditor's names the rewrite
        conn.execute("DELETE FROM hub_audit_tree_heads")
    code, result = verify(settings, "--checkpoint", str(checkpoint))
    assert code == 1 and result["problem"].startswith(f"rewritten: the log's first {len(history)} events")
    # A checkpoint whose signature does not verify is refused outright.
    forged = checkpoint.read_text().replace(f"\n{len(history)}\n", f"\n{len(history) - 1}\n")
    checkpoint.write_text(forged)
    done = run_hub(settings, "audit", "verify", "--checkpoint", str(checkpoint), ok=False)
    assert done.returncode == 1 and "forged checkpoint" in done.stderr and "does not verify" in done.stderr


def test_removed_events_are_caught_by_the_checkpoint(history, hub, settings, tmp_path):
    checkpoint = tmp_path / "checkpoint.note"
    run_hub(settings, "audit", "checkpoint", "--out", str(checkpoint))
    signed = history[-1]
    hub.onboard("EMSP", "IN", "LAT", "Later")  # more events after the checkpoint
    # The attacker removes exactly the last signed event and its link, relinks everything after
    # it and drops the tree and the hub's own copies of the checkpoint.
    with admin(settings) as conn:
        conn.execute("DELETE FROM hub_events WHERE notification_id = %s", (signed,))
        conn.execute("DELETE FROM hub_audit_chain WHERE notification_id = %s", (signed,))
        wipe_tree(conn)
        rechain(conn)
    code, result = verify(settings)
    assert code == 0 and result["head_position"] > signed  # the chain alone holds...
    code, result = verify(settings, "--checkpoint", str(checkpoint))
    assert code == 1 and result["ok"] is False  # ...the auditor's checkpoint does not
    assert result["problem"].startswith(f"rewritten: the log's first {len(history)} events")
    # Cut the log short instead: everything from the signed event on is gone.
    with admin(settings) as conn:
        conn.execute("DELETE FROM hub_events WHERE notification_id >= %s", (signed,))
        conn.execute("DELETE FROM hub_audit_chain WHERE notification_id >= %s", (signed,))
    code, result = verify(settings, "--checkpoint", str(checkpoint))
    assert code == 1 and result["problem"] == (f"truncated: the log holds {len(history) - 1} events,"
                                               f" the checkpoint of size {len(history)} signed more")


def test_reordered_rows_are_found(history, settings):
    """Two events trade places in the log (their notification ids), with or without their links."""
    a, b = history[3], history[7]

    def swap(conn, table: str) -> None:
        conn.execute(f"UPDATE {table} SET notification_id = -1 WHERE notification_id = %s", (a,))
        conn.execute(f"UPDATE {table} SET notification_id = %s WHERE notification_id = %s", (a, b))
        conn.execute(f"UPDATE {table} SET notification_id = %s WHERE notification_id = -1", (b,))

    with admin(settings) as conn:
        swap(conn, "hub_events")
    code, result = verify(settings)
    assert code == 1 and result["break_position"] == a and "reordered" in result["problem"]
    with admin(settings) as conn:
        swap(conn, "hub_audit_chain")  # the links follow their events
    code, result = verify(settings)
    assert code == 1 and result["break_position"] == a and "reordered" in result["problem"]


def test_ids_skipped_by_rolled_back_inserts_are_no_break(history, hub, settings):
    """Notification ids can skip (a rolled-back insert still took its id): the scan jumps the gap."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        conn.execute("SELECT setval(pg_get_serial_sequence('hub_events', 'notification_id'), %s)",
                     (history[-1] + 12000,))
    hub.onboard("CPO", "IN", "GAP")
    code, result = verify(settings)
    assert code == 0 and result["checked"] > len(history) and result["head_position"] > history[-1] + 12000
    with admin(settings) as conn:
        conn.execute("DELETE FROM hub_events WHERE notification_id = (SELECT max(notification_id) FROM hub_events)")
    code, result = verify(settings)
    assert code == 1 and result["break_position"] == result["head_position"] > history[-1] + 12000


def test_verify_from_a_position(history, settings):
    middle = history[len(history) // 2]
    later = [p for p in history if p > middle]
    code, result = verify(settings, "--from", str(middle))
    assert code == 0 and result["checked"] == len(later) and result["head_position"] == history[-1]
    earlier, after = history[2], later[1]
    with admin(settings) as conn:
        conn.execute("UPDATE hub_events SET state = state || '\\x20'::bytea WHERE notification_id = %s",
                     (earlier,))
    assert verify(settings)[1]["break_position"] == earlier
    assert verify(settings, "--from", str(middle))[0] == 0  # before --from: not checked
    with admin(settings) as conn:
        conn.execute("UPDATE hub_events SET state = state || '\\x20'::bytea WHERE notification_id = %s",
                     (after,))
    code, result = verify(settings, "--from", str(middle))
    assert code == 1 and result["break_position"] == after


def test_chain_tables_are_append_only(history, settings):
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        for statement in ("UPDATE hub_audit_chain SET hash = '\\x00'", "DELETE FROM hub_audit_chain",
                          "TRUNCATE hub_audit_chain"):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(statement)


def test_the_worker_signs_checkpoints_by_itself(hub, settings):
    from dataclasses import replace

    from scheduler.worker import Worker

    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    partner.stop()
    worker = Worker(replace(settings, checkpoint_events=1), settings.database_url)
    try:
        worker.checkpoint()
    finally:
        worker.stop()
    code, result = verify(settings)
    assert code == 0 and result["checkpoints"] == 1


def checkpoint_positions(settings) -> list[int]:
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        return [r[0] for r in conn.execute("SELECT size FROM hub_audit_tree_heads ORDER BY 1")]


def log_head(settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        return conn.execute("SELECT count(*) FROM hub_events").fetchone()[0]  # the tree's size


def test_the_worker_checkpoints_every_n_events(hub, settings):
    from dataclasses import replace

    from scheduler.worker import Worker

    hub.onboard("CPO", "IN", "EC0")
    worker = Worker(replace(settings, checkpoint_events=20, checkpoint_every=3600), settings.database_url)
    try:
        worker.checkpoint()  # the first one at once
        first = log_head(settings)
        assert checkpoint_positions(settings) == [first]
        n = 0
        while log_head(settings) - first < 20:  # fewer than 20 new events: not yet
            worker.checkpoint()
            assert checkpoint_positions(settings) == [first]
            n += 1
            hub.onboard("CPO", "IN", f"E{n:02d}")
        worker.checkpoint()  # 20 or more: signed at the head
        assert checkpoint_positions(settings) == [first, log_head(settings)]
    finally:
        worker.stop()
    code, result = verify(settings)
    assert code == 0 and result["checkpoints"] == 2


def test_the_worker_checkpoints_every_n_seconds(hub, settings):
    from dataclasses import replace

    from scheduler.worker import Worker

    hub.onboard("CPO", "IN", "EC0")
    worker = Worker(replace(settings, checkpoint_events=10000, checkpoint_every=600), settings.database_url)
    try:
        worker.checkpoint()
        first = log_head(settings)
        hub.onboard("CPO", "IN", "EC1")
        worker.checkpoint()  # a few new events, the last checkpoint is recent: not due
        assert checkpoint_positions(settings) == [first]
        with admin(settings) as conn:  # ten minutes go by
            conn.execute("UPDATE hub_audit_tree_heads SET created_at = %s",
                         ((datetime.now(UTC) - timedelta(seconds=601)).strftime("%Y-%m-%dT%H:%M:%SZ"),))
        worker.checkpoint()
        head = log_head(settings)
        assert head > first and checkpoint_positions(settings) == [first, head]
        worker.checkpoint()  # nothing new since: no checkpoint, however old the last one
        with admin(settings) as conn:
            conn.execute("UPDATE hub_audit_tree_heads SET created_at = '2020-01-01T00:00:00Z'")
        worker.checkpoint()
        assert checkpoint_positions(settings) == [first, head]
    finally:
        worker.stop()


def test_one_save_of_many_events_is_chained_in_order(settings):
    """A save of hundreds of events (a rebuild's dataset, a batch of delivery outcomes) links
    each of them, in the log's order, exactly as the verifier recomputes them."""
    from hub.domain.audit import OperatorAction
    from hub.services.application import Hub

    app = Hub(settings, settings.database_url, pool_size=1)
    try:
        actions = [OperatorAction(command="test", arguments={"n": n}, operator="pytest", outcome="ok")
                   for n in range(600)]
        app.save(*actions[:1])
        app.save(*actions[1:])
    finally:
        app.close()
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        chained = conn.execute("SELECT count(*) FROM hub_audit_chain").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM hub_events").fetchone()[0]
    assert chained == events >= 600
    code, verdict = verify(settings)
    assert code == 0 and verdict["ok"] and verdict["checked"] == events
