"""What the web side needs per process, built once after fork."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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
    recorder: Recorder = field(default_factory=lambda: Recorder())

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

    ``threads`` commit concurrently (so the event store's group commit can share their
    transactions); at most ``pending`` wait, after which :meth:`submit` waits (memory
    stays bounded and no record is dropped). :meth:`close` waits for all of them.
    """

    def __init__(self, threads: int = 4, pending: int = 1000) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hub-recorder")
        self._slots = threading.BoundedSemaphore(pending)

    def submit(self, job: Callable[[], None]) -> None:
        self._slots.acquire()

        def run() -> None:
            try:
                job()
            except Exception:
                logging.getLogger("hub.requests").exception("a request record failed")
            finally:
                self._slots.release()

        try:
            self._pool.submit(run)
        except RuntimeError:  # shutting down: record in this thread
            self._slots.release()
            job()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
