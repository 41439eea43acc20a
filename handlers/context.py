"""What the web side needs per process, built once after fork."""

from __future__ import annotations

from dataclasses import dataclass

from hub.infra import invalidation
from hub.infra.client import OcpiClient
from hub.infra.config import Settings
from hub.infra.eventlog import EventLog
from hub.services.application import Hub
from hub.services.pushes import Pushes
from hub.services.realtime import Realtime
from hub.services.registration import Registration
from projections.parties import PartiesProjection
from projections.recipients import load_snapshot


@dataclass
class WebContext:
    settings: Settings
    app: Hub
    log: EventLog
    client: OcpiClient
    registration: Registration
    parties: PartiesProjection
    pushes: Pushes
    realtime: Realtime
    freshness: invalidation.Freshness | None = None

    @classmethod
    def open(cls, settings: Settings, database_url: str) -> WebContext:
        app = Hub(settings, database_url)
        client = OcpiClient(read_timeout=settings.forward_timeout)
        freshness = invalidation.open_caches(app.pool, database_url, settings.database_schema,
                                             settings.cache_max_age)
        return cls(
            settings=settings,
            app=app,
            log=EventLog(app),
            client=client,
            registration=Registration(app, client),
            parties=PartiesProjection(),
            pushes=Pushes(app),
            realtime=Realtime(app, client, lambda **kw: load_snapshot(app.pool, **kw)),
            freshness=freshness,
        )

    def close(self) -> None:
        if self.freshness is not None:
            self.freshness.close()
            invalidation.unregister(self.app.pool)
        self.client.close()
        self.app.close()

    def catch_up_parties(self, position: int) -> None:
        """Read-your-writes for credentials and party changes: apply them now (and forget
        what this process cached; other processes follow within ``HUB_CACHE_MAX_AGE``)."""
        self.log.catch_up(self.parties, until=position)
        if self.freshness is not None:
            self.freshness.invalidate()

