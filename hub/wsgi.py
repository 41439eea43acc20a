"""The WSGI entry point: ``gunicorn hub.wsgi:app``.

The Falcon app (and its database pools) is built on the first request inside
each worker, never at import: connections and pool threads do not survive
gunicorn's fork. Schema set-up is not done here; run ``hub migrate`` first.
"""

from __future__ import annotations

import threading

from hub.config import Settings
from hub.logging_setup import configure_logging


class LazyApp:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._app = None
        self._context = None
        self._lock = threading.Lock()

    def _build(self):
        from handlers.app import create_app
        from handlers.context import WebContext

        settings = self._settings or Settings.from_env()
        if not settings.database_url:
            raise RuntimeError("HUB_DATABASE_URL must be set for web workers (hub serve sets it)")
        self._context = WebContext.open(settings, settings.database_url)
        return create_app(self._context)

    def __call__(self, environ, start_response):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._build()
        return self._app(environ, start_response)

    def close(self) -> None:
        if self._context is not None:
            self._context.close()


configure_logging()
app = LazyApp()
