"""The pull schedule (``HUB_SYNC_SCHEDULE``): the worker's scheduler runs one job per entry,
each a sync of that party (:mod:`hub.services.sync`).

A job never overlaps itself (APScheduler ``max_instances=1``), and every run takes the
party's and module's advisory lock, so a run of ``hub parties sync`` or of another
worker at the same moment makes this one report ``busy`` and leave it be.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from hub.domain.sync import ScheduleEntry
from hub.infra.client import OcpiClient
from hub.services.application import Hub
from hub.services.operators import OperatorError
from hub.services.operators.names import parse_party_name
from hub.services.operators.sync import sync
from projections.sync import pull_acceptance

log = logging.getLogger(__name__)


class SyncSchedule:
    def __init__(self, app: Hub, client: OcpiClient, entries: tuple[ScheduleEntry, ...],
                 stopping: threading.Event | None = None) -> None:
        """``stopping``: set when the worker stops; a running sync ends before its next page."""
        self.app = app
        self.client = client
        self.entries = entries
        self.stopping = stopping or threading.Event()

    def add_jobs(self, scheduler) -> None:
        """One interval job per entry, the first run at once (a pull-only partner's data is
        wanted as soon as the worker runs)."""
        for entry in self.entries:
            scheduler.add_job(self.run, "interval", seconds=entry.seconds, args=[entry],
                              id=f"sync-{entry}", max_instances=1, coalesce=True,
                              next_run_time=datetime.now(UTC))

    def run(self, entry: ScheduleEntry) -> list:
        try:
            results = sync(self.app, self.client, parse_party_name(entry.party), entry.modules,
                           accept=pull_acceptance(self.app.pool), stopping=self.stopping.is_set)
        except OperatorError as exc:
            log.warning("scheduled sync of %s not run: %s", entry.party, exc)
            return []
        except Exception:
            log.exception("scheduled sync of %s failed", entry.party)
            return []
        for result in results:
            level = logging.INFO if result.state in ("completed", "skipped") else logging.WARNING
            log.log(level, "sync %s %s: %s", result.party, result.module, result.state,
                    extra={"sync": result.as_dict()})
        return results
