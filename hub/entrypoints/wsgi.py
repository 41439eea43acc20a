"""The WSGI entry point: ``gunicorn hub.entrypoints.wsgi:app``.

The Falcon app (and its database pools) is built inside each worker after
the fork (gunicorn's ``post_worker_init`` calls :meth:`LazyApp.warm`; else on
the first request), never at import: connections and pool threads do not survive
gunicorn's fork. Schema set-up is not done here; run ``hub migrate`` first.

One short connection is made when the app object is created (in each worker
as it boots): a worker whose ``HUB_SECRET_KEY`` is not the database's exits
with gunicorn's "app failed to load" code, so gunicorn stops instead of
serving, or restarting workers, with the wrong key.

When the app answers without reading a large body (a 404, 405 or 413 before
the body; handlers/limits.py sets ``environ["hub.close_connection"]``), the
connection cannot serve another request: gunicorn is told to close it, so its
answer says ``Connection: close`` instead of announcing a keep-alive it then
breaks. (An application may not send the hop-by-hop ``Connection`` header
itself; gunicorn closes when the request asked to, so the request held by
the ``pre_request`` hook is marked so.)
"""

from __future__ import annotations

import sys
import threading

from hub.infra.config import Settings
from hub.infra.logs import configure_logging

APP_LOAD_ERROR = 4  # the worker exit code on which gunicorn's arbiter halts
CLOSE_CONNECTION = "hub.close_connection"  # the environ key handlers/limits.py sets


def refuse_a_foreign_key(settings: Settings) -> None:
    """Exit (code 4) when this process's HUB_SECRET_KEY is not the database's.

    An unreachable database is left to the first request, which reports it.
    """
    import psycopg

    from hub.infra.database import connect
    from hub.infra.security import SecretKeyMismatch, check_secret_key

    if not settings.database_url:
        return
    try:
        with connect(settings.database_url, settings.database_schema, connect_timeout=5) as conn:
            check_secret_key(conn, settings.resolved_secret_key())
    except SecretKeyMismatch as exc:
        print(exc.code, file=sys.stderr, flush=True)
        raise SystemExit(APP_LOAD_ERROR) from None
    except psycopg.Error:
        return


class LazyApp:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._app = None
        self._context = None
        self._lock = threading.Lock()
        self._current = threading.local()  # gunicorn's request being served by this thread
        refuse_a_foreign_key(settings or Settings.from_env())

    def _build(self):
        from handlers.app import create_app
        from handlers.context import WebContext

        settings = self._settings or Settings.from_env()
        if not settings.database_url:
            raise RuntimeError("HUB_DATABASE_URL must be set for web workers (hub serve sets it)")
        self._context = WebContext.open(settings, settings.database_url)
        from scheduler import outbox  # the console's retry and queue view (handlers do not import scheduler)

        return create_app(self._context, queue=outbox)

    def warm(self) -> None:
        """Build the app now (gunicorn's ``post_worker_init``), so a worker's first
        partner does not wait for imports and pools; on failure stay lazy: the
        first request then builds it and reports the error."""
        try:
            with self._lock:
                if self._app is None:
                    self._app = self._build()
        except Exception:
            import logging

            logging.getLogger(__name__).exception("could not build the app at worker start; will retry")

    def __call__(self, environ, start_response):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._build()
        gunicorn_request = getattr(self._current, "request", None)
        self._current.request = None

        def start(status, headers, exc_info=None):
            if environ.get(CLOSE_CONNECTION) and gunicorn_request is not None:
                gunicorn_request.headers.append(("CONNECTION", "close"))
            return start_response(status, headers, exc_info)

        return self._app(environ, start)

    def remember_request(self, req) -> None:
        """gunicorn's ``pre_request``: the request this thread serves next."""
        self._current.request = req

    def close(self) -> None:
        if self._context is not None:
            self._context.close()


configure_logging()
app = LazyApp()
