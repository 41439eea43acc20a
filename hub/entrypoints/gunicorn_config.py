"""gunicorn settings of the hub's HTTP side: the one place they are decided.

``hub web`` (and so ``hub serve``) loads this module as its gunicorn
configuration and then applies its own ``--bind/--workers/--threads``;
``ops/gunicorn.conf.py`` re-exports it for ``gunicorn hub.entrypoints.wsgi:app -c …``.

- No preload. ``hub.entrypoints.wsgi:app`` opens its database pools on the first request
  inside each worker; connections and pool threads do not survive the fork.
- ``gthread`` workers by default (``HUB_WEB_THREADS``, 16): token authorization
  and commands hold a thread while the partner answers (up to
  ``HUB_FORWARD_TIMEOUT``), so one slow partner must never occupy a whole
  worker process and stall everyone else's requests. Threads also keep
  partners' connections alive. ``HUB_WEB_THREADS=1`` gives the ``sync`` worker.
- ``HUB_BIND`` (127.0.0.1:8000, comma-separated for several), ``HUB_WEB_WORKERS``
  (else gunicorn's ``WEB_CONCURRENCY``, else 2).
- Each worker process holds two pools against PostgreSQL (the eventsourcing
  recorder's, 4 + 8 overflow, and the hub's own, 8): size ``max_connections``
  for every web and worker node (docs/operations.md).
- No access log: the app logs one JSON line per request (``hub.requests``)
  with its request and correlation ids. gunicorn's own messages go to stderr
  as the same JSON lines (:class:`JsonLogger`), so the hub has one log format.
- Prometheus multiprocess mode (hub/metrics.py): a fresh
  ``PROMETHEUS_MULTIPROC_DIR`` under ``HUB_DATA_DIR/metrics`` (or the one you
  name) before the workers start, so ``/metrics`` adds up every worker.
"""

import contextlib
import os

from gunicorn.glogging import Logger

from hub.infra.logs import JsonFormatter


class JsonLogger(Logger):
    """gunicorn's error log ("Booting worker", "Handling signal") as the hub's JSON lines."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = [part.strip() for part in os.environ.get("HUB_BIND", "127.0.0.1:8000").split(",") if part.strip()]
workers = _int("HUB_WEB_WORKERS", _int("WEB_CONCURRENCY", 2))
threads = _int("HUB_WEB_THREADS", 16)
worker_class = "gthread" if threads > 1 else "sync"
preload_app = False

# A request may wait for a partner (HUB_FORWARD_TIMEOUT, 5 s), for the writers'
# lock (10 s at most) and for a view to catch up; a worker silent for a minute is stuck.
timeout = _int("HUB_WEB_TIMEOUT", 60)
# On SIGTERM a worker finishes the requests in hand; systemd's TimeoutStopSec is longer.
graceful_timeout = _int("HUB_WEB_GRACEFUL_TIMEOUT", 15)
keepalive = 5  # gthread only; behind a proxy, keep the proxy's idle timeout for upstream connections below this

accesslog = None
errorlog = "-"
logger_class = JsonLogger
loglevel = os.environ.get("HUB_LOG_LEVEL", "info").lower()
proc_name = "hub-web"

# Recent gunicorn releases open a control socket under the user's home; several hubs may run
# on one host, and the service user has no home. Older gunicorn ignores the name.
control_socket_disable = True


_metrics = contextlib.ExitStack()


def on_starting(server):
    """In the arbiter, before any worker exists: the metrics directory for this run."""
    from hub.infra.config import Settings
    from hub.infra.metrics import multiprocess_directory

    _metrics.enter_context(multiprocess_directory(Settings.from_env().data_dir))


def on_exit(server):
    _metrics.close()  # removes the directory this run made


def child_exit(server, worker):
    """A worker is gone: its live gauges stop counting (its counters stay in the totals)."""
    from hub.infra.metrics import child_exit as forget_worker

    forget_worker(server, worker)


def post_worker_init(worker):
    """Build the app in the new worker before it accepts requests (hub/wsgi.py)."""
    warm = getattr(worker.wsgi, "warm", None)
    if warm is not None:
        warm()


def pre_request(worker, req):
    """Let the app close this connection when it answers without reading the body (hub/wsgi.py)."""
    remember = getattr(worker.wsgi, "remember_request", None)
    if remember is not None:
        remember(req)


def worker_exit(server, worker):
    """Close the worker's database pools when it stops."""
    app = getattr(worker, "wsgi", None)
    close = getattr(app, "close", None)
    if close is not None:
        close()
