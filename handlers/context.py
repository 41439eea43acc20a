"""What the web side needs per process, built once after fork."""

from __future__ import annotations

from dataclasses import dataclass

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

    @classmethod
    def open(cls, settings: Settings, database_url: str) -> WebContext:
        app = Hub(settings, database_url)
        client = OcpiClient(read_timeout=settings.forward_timeout)
        return cls(
            settings=settings,
            app=app,
            log=EventLog(app),
            client=client,
            registration=Registration(app, client),
            parties=PartiesProjection(),
            pushes=Pushes(app),
            realtime=Realtime(app, client, lambda **kw: load_snapshot(app.pool, **kw)),
        )

    def close(self) -> None:
        self.client.close()
        self.app.close()

    def catch_up_parties(self, position: int) -> None:
        """Read-your-writes for credentials and party changes: apply them now."""
        self.log.catch_up(self.parties, until=position)
