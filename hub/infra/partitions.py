"""A rebuild in several processes: the log split by originator between them.

For a follower whose rows each follow one aggregate (``Follower.partitioned``),
:func:`build` starts ``processes`` processes. Each reads the whole log up to the
rebuild's head but only the events of its partition (every event of an object
falls in the same one, :data:`hub.infra.rebuild.PARTITION_SQL`, so each object's
events are applied in log order by one process), builds them into temporary
tables of its own session, and at the end copies them out (``COPY ... TO STDOUT``,
binary) into a file of a private temporary directory. The rebuild's own session
copies the files into its new tables and goes on as a single-process rebuild does
(the events that came meanwhile, the swap). No table is created outside the
sessions' temporary space, so the application role suffices.

Killed mid-way (the command, or any of its processes), nothing of the live
views has changed: the partitions notice their parent is gone at their next
batch and end; a rebuild run again starts from position zero, and removes the
files of rebuilds whose process is gone.
"""

from __future__ import annotations

import gc
import glob
import multiprocessing
import os
import queue
import shutil
import tempfile
from contextlib import suppress
from typing import Any

import psycopg

from hub.infra import rebuild as rebuilding

COPY_BLOCK = 1 << 20  # bytes per write when a partition's rows go into the rebuild's session


def staging(directory: str, part: int, table: str) -> str:
    return os.path.join(directory, f"{part}-{table}.copy")


def build(conn: psycopg.Connection, schema: str, follower: Any, head: int, processes: int, opener,
          progress, timer: rebuilding.Timer) -> int:
    """Fill the session's new tables with the follower's events up to ``head``, in ``processes``
    processes; returns how many events they applied."""
    _remove_left_behind()
    directory = tempfile.mkdtemp(prefix=f"hub-rebuild-{os.getpid()}-")
    try:
        applied = _run(directory, follower, head, processes, opener, progress, timer)
        for part in range(processes):
            for table in follower.tables():
                with open(staging(directory, part, table), "rb") as rows, conn.cursor().copy(
                        f'COPY pg_temp."{table}" FROM STDIN (FORMAT binary)') as copy:
                    while block := rows.read(COPY_BLOCK):
                        copy.write(block)
        return applied
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _remove_left_behind() -> None:
    """The directories of rebuilds that were killed (their process is gone)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "hub-rebuild-*-*")):
        pid = os.path.basename(path).split("-")[2]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(path, ignore_errors=True)


def _run(directory: str, follower: Any, head: int, processes: int, opener, progress, timer) -> int:
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    children = [context.Process(target=_partition, name=f"rebuild-{follower.name}-{part}", daemon=True,
                                args=(opener, follower, head, part, processes, messages, os.getpid(),
                                      directory))
                for part in range(processes)]
    for child in children:
        child.start()
    positions, applied, finished = [0] * processes, [0] * processes, set()
    try:
        while len(finished) < processes:
            try:
                part, position, count, totals = messages.get(timeout=1.0)
            except queue.Empty as empty:
                failed = [c for i, c in enumerate(children) if i not in finished and c.exitcode is not None]
                if failed:
                    raise rebuilding.RebuildFailed(f"rebuild process {failed[0].name} ended with exit code"
                                       f" {failed[0].exitcode}; see its log above, then run the rebuild again") from empty
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
    return sum(applied)


def _partition(opener, follower, head: int, part: int, parts: int, messages, parent: int, directory: str) -> None:
    """One partition's process: its events into its session's tables, then into files."""
    from hub.infra.eventlog import EventLog

    app = opener()
    try:
        log = EventLog(app)
        schema = app.settings.database_schema
        timer = rebuilding.Timer()
        with log._session() as conn, rebuilding.few_collections():
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
                with open(staging(directory, part, table), "wb") as rows, conn.cursor().copy(
                        f'COPY pg_temp."{table}" TO STDOUT (FORMAT binary)') as copy:
                    for block in copy:
                        rows.write(block)
            messages.put((part, head, applied, dict(timer.totals)))
    finally:
        with suppress(Exception):
            app.close()
