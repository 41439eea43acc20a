"""A rebuild in several processes: the log split by originator between them.

For a follower whose rows each follow one aggregate (``Follower.partitioned``),
:func:`build` starts ``processes`` processes. Each reads the whole log up to the
rebuild's head but only the events of its partition (every event of an object
falls in the same one, :data:`hub.infra.rebuild.PARTITION_SQL`, so each object's
events are applied in log order by one process), builds them into temporary
tables of its own session, and at the end copies them into unlogged staging
tables of the hub's schema (``hub_rb_<part>_<table>``). The rebuild's own
session then gathers the staging tables into its new tables and goes on as a
single-process rebuild does (the events that came meanwhile, the swap).

Killed mid-way (the command, or any of its processes), nothing of the live
views has changed: the partitions notice their parent is gone at their next
batch and end; the next rebuild waits for them (they hold a shared advisory
lock), drops what they left and starts again from position zero.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
from contextlib import suppress
from typing import Any

import psycopg

from hub.infra import rebuild as rebuilding

STAGING_LOCK = 0x5250  # "RP": held shared by a rebuild's partition processes


def staging(part: int, table: str) -> str:
    return f"hub_rb_{part}_{table}"


def build(conn: psycopg.Connection, schema: str, follower: Any, head: int, processes: int, opener,
          progress, timer: rebuilding.Timer) -> int:
    """Fill the session's new tables with the follower's events up to ``head``, in ``processes``
    processes; returns how many events they applied."""
    key = (STAGING_LOCK, f"{schema}.{follower.name}")
    conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", key)  # partitions of a killed run end
    try:
        _drop_staging(conn, schema, follower.tables())
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    children = [context.Process(target=_partition, name=f"rebuild-{follower.name}-{part}", daemon=True,
                                args=(opener, follower, head, part, processes, messages, os.getpid()))
                for part in range(processes)]
    for child in children:
        child.start()
    positions, applied, finished = [0] * processes, [0] * processes, set()
    try:
        while len(finished) < processes:
            try:
                part, position, count, totals = messages.get(timeout=1.0)
            except queue.Empty:
                failed = [c for i, c in enumerate(children) if i not in finished and c.exitcode is not None]
                if failed:
                    raise rebuilding.RebuildFailed(f"rebuild process {failed[0].name} ended with exit code"
                                       f" {failed[0].exitcode}; see its log above, then run the rebuild again")
                continue
            positions[part], applied[part] = position, count
            if totals is not None:
                finished.add(part)
                timer.merge(totals)
            if progress is not None:
                progress(min(positions), head, sum(applied))
        for child in children:
            child.join()
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join()
    tables = follower.tables()
    for part in range(processes):
        for table in tables:
            conn.execute(f'INSERT INTO pg_temp."{table}" SELECT * FROM "{schema}"."{staging(part, table)}"')
    _drop_staging(conn, schema, tables)
    return sum(applied)


def _drop_staging(conn: psycopg.Connection, schema: str, tables: list[str]) -> None:
    names = [table for table, in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename ~ '^hub_rb_[0-9]+_'"
        " AND substring(tablename FROM '^hub_rb_[0-9]+_(.*)$') = ANY(%s)", (schema, tables)).fetchall()]
    for name in names:
        conn.execute(f'DROP TABLE IF EXISTS "{schema}"."{name}"')


def _partition(opener, follower, head: int, part: int, parts: int, messages, parent: int) -> None:
    """One partition's process: its events into its session's tables, then into staging tables."""
    from hub.infra.eventlog import EventLog

    app = opener()
    try:
        log = EventLog(app)
        schema = app.settings.database_schema
        timer = rebuilding.Timer()
        with log._session() as conn, rebuilding.few_collections():
            conn.execute("SELECT pg_advisory_lock_shared(%s, hashtext(%s))",
                         (STAGING_LOCK, f"{schema}.{follower.name}"))
            tables = follower.tables()
            for table in tables:
                rebuilding.create_beside(conn, schema, table)
            conn.cursor_factory = timer.cursor

            def on_batch(position: int, applied: int) -> None:
                if os.getppid() != parent:
                    raise SystemExit(0)  # the rebuild was stopped: end quietly, leave the rest
                messages.put((part, position, applied, None))

            _, applied = log.fill(conn, follower, 0, head, timer, on_batch, (part, parts))
            gc.collect()
            for table in tables:
                conn.execute(f'CREATE UNLOGGED TABLE "{schema}"."{staging(part, table)}"'
                             f' AS SELECT * FROM pg_temp."{table}"')
            messages.put((part, head, applied, dict(timer.totals)))
    finally:
        with suppress(Exception):
            app.close()
