"""Building a follower's tables afresh beside the live ones, and swapping the rows in
(:meth:`hub.infra.eventlog.EventLog.rebuild`).

The new tables are temporary tables of one session, named like the live ones
(:func:`create_beside`); the swap makes each live table's rows equal the new
table's, touching only the rows that differ (:func:`swap_rows`).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import psycopg

# The partition of an event: its originator's id (a UUID) hashed by its last two bytes, which
# are uniform for random and name-based UUIDs alike. Every event of an object falls in one.
PARTITION_SQL = "(get_byte(uuid_send(originator_id), 14) * 256 + get_byte(uuid_send(originator_id), 15)) %% %s = %s"


def partition(sql: str, part: tuple[int, int] | None) -> tuple[str, tuple]:
    """``sql`` (a read of the log ending in ``ORDER BY``) narrowed to partition ``part`` of ``parts``
    (``(part, parts)``), and the parameters that go before its ``LIMIT``."""
    if part is None:
        return sql, ()
    index, parts = part
    head, order = sql.split(" ORDER BY ")
    return f"{head} AND {PARTITION_SQL} ORDER BY {order}", (parts, index)


class Timer:
    """Where a rebuild's time goes: ``read`` (fetching the log), ``decode`` (rows to events),
    ``apply`` (the followers' ``apply``, SQL included) and ``write`` (SQL statements of the
    rebuild's session: the view writes and lookups of ``apply``, ANALYZE, the swap)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {"read": 0.0, "decode": 0.0, "apply": 0.0, "write": 0.0}
        self._lock = threading.Lock()
        timer = self

        class TimedCursor(psycopg.Cursor):
            def execute(self, *args, **kwargs):
                started = time.perf_counter()
                try:
                    return super().execute(*args, **kwargs)
                finally:
                    timer.add("write", time.perf_counter() - started)

            def executemany(self, *args, **kwargs):
                started = time.perf_counter()
                try:
                    return super().executemany(*args, **kwargs)
                finally:
                    timer.add("write", time.perf_counter() - started)

        self.cursor = TimedCursor

    def add(self, what: str, seconds: float) -> None:
        with self._lock:
            self.totals[what] = self.totals.get(what, 0.0) + seconds

    def merge(self, totals: dict[str, float]) -> None:
        for what, seconds in totals.items():
            self.add(what, seconds)

    def seconds(self) -> dict[str, float]:
        """The totals, with ``apply`` split: ``apply`` is its Python part, ``write`` its SQL."""
        with self._lock:
            totals = dict(self.totals)
        totals["apply"] = max(0.0, totals["apply"] - totals["write"])
        return totals


class RebuildRefused(Exception):
    """Another rebuild of the same follower is running."""


class RebuildFailed(Exception):
    """A process of a rebuild in several processes failed; nothing live has changed."""


def create_beside(conn: psycopg.Connection, schema: str, table: str) -> None:
    """A temporary table of the session like the live ``table`` (same name, columns, keys)."""
    new = f'pg_temp."{table}"'
    conn.execute(f'CREATE TEMPORARY TABLE "{table}" (LIKE "{schema}"."{table}" INCLUDING ALL)')
    # Only the unique indexes matter while building (conflict targets, lookups by key).
    for (index,) in conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = %s::regclass AND NOT i.indisunique", (new,)).fetchall():
        conn.execute(f'DROP INDEX pg_temp."{index}"')


def analyze(conn: psycopg.Connection, tables: list[str]) -> None:
    for table in tables:
        conn.execute(f'ANALYZE pg_temp."{table}"')


@contextmanager
def few_collections() -> Iterator[None]:
    """The cyclic garbage collector paused: decoded batches stay alive until applied, and
    its passes over them would cost a rebuild a third of its time. Reference counting
    still frees them; the caller collects now and then."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Rebuilt(NamedTuple):
    events: int  # events applied to the new tables
    rows_changed: int  # rows of the live tables the swap deleted, inserted or replaced
    seconds: dict | None = None  # Timer.seconds(): summed over the processes of the rebuild
    processes: int = 1  # processes that built the tables (1 when the log was not split)


def swap_rows(cur: psycopg.Cursor, schema: str, table: str) -> int:
    """Make the live table's rows equal the session's table of the same name.

    Rows are matched by primary key and compared column by column (``json`` and
    ``xml`` have no equality: as text): only rows that differ are deleted and
    inserted, so an unchanged view costs no writes and leaves no dead rows.
    Returns how many keys changed.
    """
    live, new = f'"{schema}"."{table}"', f'pg_temp."{table}"'
    columns = cur.execute(
        "SELECT quote_ident(a.attname), a.atttypid IN ('json'::regtype, 'xml'::regtype),"
        " coalesce(a.attnum = ANY(i.indkey), false) FROM pg_attribute a"
        " LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (live,)).fetchall()
    keys = [name for name, _, key in columns if key]
    names = ", ".join(name for name, _, _ in columns)
    copy = f"INSERT INTO {live} ({names}) SELECT {', '.join(f'n.{name}' for name, _, _ in columns)} FROM {new} AS n"
    if not keys:  # nothing to match rows by: replace them all
        deleted = cur.execute(f"DELETE FROM {live}").rowcount
        return deleted + cur.execute(copy).rowcount
    same_key = " AND ".join(f"n.{k} = l.{k}" for k in keys)
    same_row = " AND ".join(f"n.{c}::text IS NOT DISTINCT FROM l.{c}::text" if as_text
                            else f"n.{c} IS NOT DISTINCT FROM l.{c}" for c, as_text, key in columns if not key)
    returning = ", ".join(keys)
    deleted = cur.execute(f"DELETE FROM {live} AS l WHERE NOT EXISTS (SELECT FROM {new} AS n"
                          f" WHERE {same_key} AND {same_row or 'true'}) RETURNING {returning}").fetchall()
    inserted = cur.execute(f"{copy} WHERE NOT EXISTS (SELECT FROM {live} AS l WHERE {same_key})"
                           f" RETURNING {returning}").fetchall()
    return len(set(deleted) | set(inserted))
