"""Prometheus multiprocess mode for the web side (``hub web``, ``hub serve``).

gunicorn runs several worker processes; each keeps its own counters. With
``PROMETHEUS_MULTIPROC_DIR`` set *before the workers import prometheus_client*,
every worker writes its samples to memory-mapped files in that directory and
``/metrics`` (any worker) adds them up (``handlers/metrics.py``).

- :func:`multiprocess_directory` gives the server a fresh directory for one run
  (under ``HUB_DATA_DIR/metrics``, else a temporary one), sets the variable
  and removes the directory when the server stops. A directory the operator (or
  ``hub serve``) already named is emptied of old samples and left in place.
- :func:`child_exit` is the gunicorn hook that tells prometheus_client a worker
  is gone (its live gauges stop counting; its counters stay in the totals).

prometheus_client is imported lazily here: the gunicorn arbiter must not load
it before the variable is set (its value class is chosen at import).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_SAMPLE_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


@contextmanager
def multiprocess_directory(data_dir: Path) -> Iterator[Path]:
    """A fresh multiprocess directory for the server started inside the ``with``."""
    named = os.environ.get(MULTIPROC_ENV)
    if named:
        path = Path(named)
        path.mkdir(parents=True, exist_ok=True)
        clear_samples(path)  # samples of an earlier run would add to this run's counters
        yield path
        return
    path = _new_directory(data_dir)
    owner = os.getpid()
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        # gunicorn's forked workers leave through this frame too (SystemExit); only the
        # process that made the directory removes it.
        if os.getpid() == owner:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(path, ignore_errors=True)


def _new_directory(data_dir: Path) -> Path:
    try:
        base = Path(data_dir) / "metrics"
        base.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(base)
        return Path(tempfile.mkdtemp(prefix=f"web-{os.getpid()}-", dir=base))
    except OSError as exc:
        log.warning("cannot use %s for metrics (%s); using a temporary directory", data_dir, exc)
        return Path(tempfile.mkdtemp(prefix="hub-metrics-"))


def _remove_abandoned(base: Path) -> None:
    """Directories of servers that died without cleaning up (killed, power loss)."""
    for path in base.glob("web-*-*"):
        try:
            pid = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def clear_samples(path: Path) -> None:
    for pattern in _SAMPLE_FILES:
        for file in Path(path).glob(pattern):
            try:
                file.unlink()
            except FileNotFoundError:
                pass


def child_exit(server, worker) -> None:
    """gunicorn ``child_exit`` hook (arbiter): forget the exited worker's live gauges."""
    if not os.environ.get(MULTIPROC_ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
