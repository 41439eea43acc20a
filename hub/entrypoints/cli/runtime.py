"""Settings, the database (embedded server if needed) and the application for one command."""

from __future__ import annotations

from hub.infra.config import Settings
from hub.infra.database import NoHubDatabase, require_hub_schema, resolve_database_url


class Runtime:
    """What a command runs against.

    Only ``create=True`` (``hub serve``, ``hub migrate``) may start a new
    embedded database or generate a secret key. Every other command finds the
    hub's database, schema and key, or stops with :class:`NoHubDatabase` saying
    where it looked and what to set.
    """

    def __init__(self, *, create: bool = False) -> None:
        configured = Settings.from_env()
        self._configured = configured
        self.create = create
        self.database_url, self.server = resolve_database_url(configured, create=create)
        self.settings = configured.with_database(self.database_url)
        self._checked = create
        self._app = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def require_hub(self) -> str:
        """The database URL, once it holds a hub and this process has its key."""
        if not self._checked:
            require_hub_schema(self.database_url, self._configured)
            if self.settings.existing_secret_key() is None:
                raise NoHubDatabase(
                    f"no secret key: HUB_SECRET_KEY is unset and {self.settings.secret_key_file} does not"
                    " exist; set HUB_SECRET_KEY to the one the hub's processes use, or HUB_DATA_DIR to the"
                    " hub's directory")
            self._checked = True
        return self.database_url

    @property
    def app(self):
        if self._app is None:
            from hub.services.application import Hub

            self.require_hub()
            self._app = Hub(self.settings, self.database_url)
        return self._app

    def catch_up(self, _position: int | None = None) -> None:
        """Bring the views up to date now (operator commands read their own writes)."""
        from hub.infra.eventlog import EventLog
        from projections import all_projections

        log = EventLog(self.app)
        for projection in all_projections():
            log.catch_up(projection)

    def migrate(self) -> None:
        from hub.services.schema import migrate
        from projections import all_projections
        from scheduler.outbox import DDL
        from scheduler.worker import dispatchers

        migrate(self.settings, self.database_url, [*all_projections(), *dispatchers()], DDL)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None
