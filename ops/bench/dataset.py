"""A large event log for the rebuild, pulls and memory benchmarks.

``locations`` Locations of one CPO (``IN/BCP``, registered over the real
handshake, as is the eMSP ``IN/BEM`` that crawls them), each pushed as a
broadcast PUT and then ``patches`` times an EVSE status PATCH: ``locations ×
(1 + patches)`` events. They are written through the hub's own application
(``hub.services.application.Hub``, the domain's ``Location`` aggregate, messages shaped
as ``handlers.pushing.message_of`` builds them) with batched
``app.save(*aggregates)``, by ``loaders`` processes in parallel.

The views are left empty: the rebuild benchmark (or ``hub projections
rebuild``) builds them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from ops.bench.common import ROOT, cpo, emsp, gather_loaders, log, stamp
from ops.bench.processes import HubProcesses

SIZES = {
    "smoke": {"locations": 500, "patches": 9, "loaders": 2},
    "full": {"locations": 100_000, "patches": 9, "loaders": 2},
}
CPO_PARTY, EMSP_PARTY = "BCP", "BEM"
SAVE_AGGREGATES = 25  # aggregates per save(): one transaction of ~250 events (the log lock is held that long)


def message(method: str, path: str) -> dict:
    return {"request_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()), "from": f"IN/{CPO_PARTY}/CPO",
            "scenario": "broadcast", "to": "IN/CIH/HUB", "method": method, "path": path,
            "received_at": "2026-01-01T00:00:00.000Z"}


def load(env: dict, first: int, count: int, patches: int) -> int:
    """Write Locations ``first .. first+count-1`` and their patches; returns the events written."""
    from hub.domain.objects import Location
    from hub.infra.config import Settings
    from hub.services.application import Hub
    from tests import ocpi_examples as ex

    settings = Settings.from_env(env)
    app = Hub(settings, settings.database_url, pool_size=1)
    template = ex.location(party_id=CPO_PARTY, last_updated=stamp(1))
    evses = [e["uid"] for e in template["evses"]]
    written = 0
    def build(start: int) -> list:
        batch = []
        for n in range(start, min(start + SAVE_AGGREGATES, first + count)):
            location_id = f"LOC{n:06d}"
            body = {**template, "id": location_id}
            location = Location(country_code="IN", party_id=CPO_PARTY, object_id=location_id, body=body,
                                message=message("PUT", f"/IN/{CPO_PARTY}/{location_id}"))
            for k in range(patches):
                evse = evses[k % len(evses)]
                location.patch_evse(evse, {"status": ("CHARGING", "AVAILABLE")[k % 2],
                                           "last_updated": stamp(2 + k)},
                                    message("PATCH", f"/IN/{CPO_PARTY}/{location_id}/{evse}"))
            batch.append(location)
        return batch

    try:
        for start in range(first, first + count, SAVE_AGGREGATES):
            for attempt in range(1, 21):
                batch = build(start)  # a failed save has taken the batch's pending events: build it again
                try:
                    app.save(*batch)
                    break
                except Exception as exc:
                    # The other loader held the log's lock past its timeout (a busy machine): try again.
                    if "lock timeout" not in str(exc) or attempt == 20:
                        raise
            written += len(batch) * (1 + patches)
    finally:
        app.close()
    return written


class Dataset:
    """The hub's schema holding the log; web and worker are started by the benchmarks that need them."""

    def __init__(self, db, size: str) -> None:
        self.cfg = SIZES[size]
        self.size = size
        self.hub = HubProcesses(db.url, "data")
        self.events = 0
        self.load_seconds = 0.0
        self.views_built = False
        self.rebuild_peak_rss: float | None = None

    def build(self) -> Dataset:
        hub, cfg = self.hub, self.cfg
        hub.migrate()
        hub.start_web()
        (self.cpo,) = hub.connect_partners([cpo(CPO_PARTY)])
        (self.emsp,) = hub.connect_partners([emsp(EMSP_PARTY)])
        hub.stop("web")  # the registrations are in the log and the parties' views
        total = cfg["locations"]
        loaders = cfg["loaders"]
        share = -(-total // loaders)
        log(f"dataset: writing {total:,} Locations × {1 + cfg['patches']} events with {loaders} loader processes")
        started = time.monotonic()
        children = []
        for i in range(loaders):
            first, count = i * share, min(share, total - i * share)
            if count <= 0:
                continue
            job = json.dumps({"env": hub.env, "first": first, "count": count, "patches": cfg["patches"]})
            children.append(subprocess.Popen([sys.executable, "-m", "ops.bench.dataset"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, text=True, cwd=ROOT))
            children[-1].stdin.write(job)
            children[-1].stdin.close()
        written = gather_loaders(children, "dataset")
        self.load_seconds = time.monotonic() - started
        self._dispatched()
        with hub.connect_db() as conn:
            (self.events,) = conn.execute("SELECT count(*) FROM hub_events").fetchone()
            # The log as a hub that has run for a while holds it: vacuumed and analyzed. A log
            # written seconds before leaves PostgreSQL's autovacuum and hint-bit writes to
            # whichever benchmark reads it first, the baseline or the hub, by chance of timing.
            started = time.monotonic()
            conn.execute("VACUUM (ANALYZE) hub_events")
            log(f"dataset: the log vacuumed and analyzed in {time.monotonic() - started:.0f} s")
        log(f"dataset: {written:,} events written in {self.load_seconds:.0f} s "
            f"({written / self.load_seconds:,.0f} events/s); {self.events:,} events in the log")
        return self

    def _dispatched(self) -> None:
        """The one write outside the hub's code: the dispatchers' tracking positions go to the head
        of the log, as a live ``hub worker`` would have left them after forwarding those pushes
        when they came in (otherwise the worker would now forward all of them to the eMSP)."""
        from scheduler.worker import dispatchers

        with self.hub.connect_db() as conn:
            conn.execute(
                "INSERT INTO hub_tracking (name, position) SELECT name, (SELECT max(notification_id)"
                " FROM hub_events) FROM unnest(%s::text[]) AS name"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()",
                ([d.name for d in dispatchers()],))

    def describe(self) -> str:
        return (f"{self.cfg['locations']:,} Locations (~3.3 kB each) × (1 PUT + {self.cfg['patches']} EVSE PATCHes) "
                f"= {self.events:,} events in the log, written through the hub's application in "
                f"{self.load_seconds:.0f} s ({(self.events / max(self.load_seconds, 1e-9)):,.0f} events/s, "
                f"{self.cfg['loaders']} processes, {SAVE_AGGREGATES} aggregates per save)")

    def close(self) -> None:
        self.hub.close()


def shared_dataset(db, size: str, shared: dict | None) -> tuple[Dataset, bool]:
    """The run's dataset (built once per ``all`` run); returns it and whether the caller owns it."""
    if shared is not None and shared.get("dataset") is not None:
        return shared["dataset"], False
    dataset = Dataset(db, size)
    try:
        dataset.build()
    except BaseException:
        dataset.close()
        raise
    if shared is not None:
        shared["dataset"] = dataset
        return dataset, False
    return dataset, True


if __name__ == "__main__":
    job = json.load(sys.stdin)
    print(load(job["env"], job["first"], job["count"], job["patches"]))
