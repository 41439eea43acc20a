"""What the web side needs per process, built once after fork."""

from __future__ import annotations

import logging
import queue
import threading
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

log = logging.getLogger("hub.requests")


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
    recorder: Recorder | None = None

    @classmethod
    def open(cls, settings: Settings, database_url: str) -> WebContext:
        app = Hub(settings, database_url)
        client = OcpiClient(read_timeout=settings.forward_timeout, guard=settings.outbound_guard())
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
            recorder=Recorder(app),
        )

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()  # every answered request is recorded before the pool closes
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



class Recorder:
    """Commits the records of answered real-time requests off the request threads.

    One thread per process takes what is waiting and saves it in one transaction (one
    round trip, one WAL flush for several requests); if that fails, each request's events
    are saved on their own, so one bad record never costs the others. At most ``pending``
    wait; beyond that :meth:`submit` waits (memory stays bounded, nothing is dropped).
    :meth:`close` saves everything still waiting.
    """

    def __init__(self, app: Hub, pending: int = 1000, batch: int = 100) -> None:
        self.app = app
        self.batch = batch
        self._queue: queue.Queue = queue.Queue(maxsize=pending)
        self._thread = threading.Thread(target=self._run, name="hub-recorder", daemon=True)
        self._thread.start()

    def submit(self, events: list, what: str) -> None:
        """Save ``events`` (already collected from their aggregates) soon; ``what`` names them in logs."""
        if self._thread is None:
            self._save([(events, what)])
        else:
            self._queue.put((events, what))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            items = [item]
            while len(items) < self.batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._save(items)
                    return
                items.append(more)
            self._save(items)

    def _save(self, items: list[tuple[list, str]]) -> None:
        try:
            self.app.save(*(event for events, _ in items for event in events))
            return
        except Exception:
            if len(items) == 1:
                log.exception("could not record %s after answering", items[0][1])
                return
        for events, what in items:  # one at a time: only a failing one is lost (and logged)
            try:
                self.app.save(*events)
            except Exception:
                log.exception("could not record %s after answering", what)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
