"""Schema set-up (``hub migrate``): idempotent, run once per start-up.

Creates the eventsourcing tables (the event log, and ``hub_snapshots``, the
snapshot cache beside it: hub/infra/snapshots.py), makes the stored-events table append-only in
the database itself (a trigger rejects UPDATE, DELETE and TRUNCATE), runs the
DDL of every follower (projections, dispatcher) and keeps the fingerprint of
``HUB_SECRET_KEY`` (a later run with another key fails). Needs a role that owns the
schema, never a superuser. A session-level advisory lock serialises concurrent
runs (concurrent DDL from several processes fails otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import psycopg

from hub.infra.config import Settings
from hub.infra.database import connect
from hub.infra.eventlog import TRACKING_DDL, Follower
from hub.infra.security import KEY_FINGERPRINT_DDL, check_secret_key
from hub.infra.snapshots import SNAPSHOTS_DDL
from hub.infra.tlog import TLOG_DDL
from hub.services.console import CONSOLE_DDL

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5  # 2: tamper-evident chain and checkpoints; 3: snapshots (hub_snapshots); 4: Merkle tree;
# 5: the tree's leaves in runs (hub_audit_leaves.positions) and checkpoint pushes (hub_audit_push_position)
MIGRATE_LOCK = 0x4355_4948  # "CUIH": one hub migration at a time per database

APPEND_ONLY_DDL = [
    """CREATE OR REPLACE FUNCTION hub_forbid_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the event store is append-only (% on %)', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$""",
    "DROP TRIGGER IF EXISTS hub_events_append_only ON hub_events",
    """CREATE TRIGGER hub_events_append_only BEFORE UPDATE OR DELETE ON hub_events
        FOR EACH ROW EXECUTE FUNCTION hub_forbid_mutation()""",
    "DROP TRIGGER IF EXISTS hub_events_no_truncate ON hub_events",
    """CREATE TRIGGER hub_events_no_truncate BEFORE TRUNCATE ON hub_events
        FOR EACH STATEMENT EXECUTE FUNCTION hub_forbid_mutation()""",
    "DROP TRIGGER IF EXISTS hub_audit_chain_append_only ON hub_audit_chain",
    """CREATE TRIGGER hub_audit_chain_append_only BEFORE UPDATE OR DELETE ON hub_audit_chain
        FOR EACH ROW EXECUTE FUNCTION hub_forbid_mutation()""",
    "DROP TRIGGER IF EXISTS hub_audit_chain_no_truncate ON hub_audit_chain",
    """CREATE TRIGGER hub_audit_chain_no_truncate BEFORE TRUNCATE ON hub_audit_chain
        FOR EACH STATEMENT EXECUTE FUNCTION hub_forbid_mutation()""",
    """CREATE TABLE IF NOT EXISTS hub_audit_checkpoints (
        position bigint PRIMARY KEY,
        head text NOT NULL,
        created_at text NOT NULL,
        signature text NOT NULL
    )""",
]

META_DDL = """
CREATE TABLE IF NOT EXISTS hub_schema (
    component text PRIMARY KEY,
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migrate(settings: Settings, database_url: str, followers: Iterable[Follower],
            extra_ddl: Iterable[str] = ()) -> None:
    """Create or upgrade everything the hub needs; safe to run any number of times."""
    from hub.services.application import Hub

    schema = settings.database_schema
    with psycopg.connect(database_url, autocommit=True) as lock_conn:
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
        try:
            exists = lock_conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            if not exists:  # CREATE SCHEMA needs a privilege a schema owner may lack
                lock_conn.execute(f'CREATE SCHEMA "{schema}"')
            # The library creates its own tables when constructed with CREATE_TABLE=y.
            Hub(settings, database_url, create_table=True, pool_size=1).close()
            with connect(database_url, schema) as conn, conn.transaction():
                for statement in [*APPEND_ONLY_DDL, *TLOG_DDL, *SNAPSHOTS_DDL, META_DDL, KEY_FINGERPRINT_DDL, TRACKING_DDL]:
                    conn.execute(statement)
                for statement in CONSOLE_DDL:  # the operations console's sessions and jobs (docs/console.md)
                    conn.execute(statement)
                for follower in followers:
                    for statement in follower.ddl():
                        conn.execute(statement)
                for statement in extra_ddl:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO hub_schema (component, version) VALUES ('hub', %s)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version,"
                    " applied_at = now()",
                    (SCHEMA_VERSION,),
                )
                check_secret_key(conn, settings.resolved_secret_key(), record=True)
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))


def schema_version(conn: psycopg.Connection) -> int | None:
    try:
        row = conn.execute("SELECT version FROM hub_schema WHERE component = 'hub'").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None
