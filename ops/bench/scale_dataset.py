"""The scale benchmark's network: Locations with long histories, written through the hub's application.

Two writers, chosen by ``HUB_BENCH_SCALE_WRITER`` (or the size's default):

- ``pushes``: ``hub.services.pushes.Pushes`` on a ``Hub``, exactly the service call a push
  makes (load the Location, check staleness, apply, ``UnitOfWork.commit``), one event per
  Location and ``PER_UOW`` Locations per UnitOfWork; a loader takes ``CHUNK`` Locations through
  all their rounds together, so the aggregate cache serves the next round. About 1.5 ms per event.
- ``domain``: the ``Location`` aggregate's own methods (those ``Pushes`` calls once the stale
  check passed) applied in memory and saved with ``Hub.save``, whole histories per transaction:
  the same events, about ten times faster.

Run as ``python -m ops.bench.scale_dataset`` with a JSON job on stdin (one loader process).
"""

from __future__ import annotations

import json
import sys
import uuid

from ops.bench.common import stamp

PER_UOW = 200  # Locations (one event each) per UnitOfWork while generating
CHUNK = 1_000  # Locations a loader takes through all their rounds together (< the 2,000-aggregate cache)
EVSES = ("EVSE-BLR-0001-1", "EVSE-BLR-0001-2")
STATUSES = ("CHARGING", "AVAILABLE", "BLOCKED", "AVAILABLE")


def cpo_party(i: int) -> str:
    return f"S{i:02d}"


def location_id(n: int, prefix: str = "L") -> str:
    return f"{prefix}{n:05d}"


def message(party: str, method: str, path: str) -> dict:
    """A push's routing facts, shaped as ``handlers.pushing.message_of`` builds them."""
    return {"request_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()), "from": f"IN/{party}/CPO",
            "scenario": "broadcast", "to": "IN/CIH/HUB", "method": method, "path": path,
            "received_at": "2026-01-01T00:00:00.000Z"}


# Generation (runs in loader processes) ------------------------------------------------
def load(env: dict, slices: list[list], history: int, writer: str = "pushes", prefix: str = "L") -> int:
    """Write the Locations of ``slices`` ([party, first, count]) with their histories; returns the events."""
    from hub.infra.config import Settings
    from hub.services.application import Hub, UnitOfWork
    from hub.services.pushes import Pushes
    from tests import ocpi_examples as ex

    settings = Settings.from_env(env)
    app = Hub(settings, settings.database_url, pool_size=1)
    pushes = Pushes(app)
    written = 0
    try:
        if writer == "domain":
            return load_domain(app, slices, history, prefix)
        for party, first, count in slices:
            for start in range(first, first + count, CHUNK):
                ids = [location_id(n, prefix) for n in range(start, min(start + CHUNK, first + count))]
                for rnd in range(history):
                    for b in range(0, len(ids), PER_UOW):
                        uow = UnitOfWork(app)
                        try:
                            for loc in ids[b:b + PER_UOW]:
                                path = f"/IN/{party}/{loc}"
                                if rnd == 0:
                                    body = ex.location(party_id=party, id=loc, last_updated=stamp(1))
                                    pushes.put_location(uow, "IN", party, loc, body, message(party, "PUT", path))
                                else:
                                    evse = EVSES[rnd % len(EVSES)]
                                    body = {"status": STATUSES[rnd % len(STATUSES)], "last_updated": stamp(1 + rnd)}
                                    pushes.patch_location(uow, "IN", party, loc, body,
                                                          message(party, "PATCH", f"{path}/{evse}"), evse_uid=evse)
                            uow.commit()
                        except BaseException:
                            uow.discard()
                            raise
                        written += len(ids[b:b + PER_UOW])
    finally:
        app.close()
    return written


def load_domain(app, slices: list[list], history: int, prefix: str = "L") -> int:
    """The same events built on the ``Location`` aggregate in memory (its own methods, as
    ``Pushes`` calls them once the stale check passed) and saved with ``Hub.save``, several
    whole histories per transaction: about ten times faster than one push at a time."""
    from hub.domain.objects import Location
    from tests import ocpi_examples as ex

    per_save = max(1, 2_000 // history)
    written = 0
    for party, first, count in slices:
        for start in range(first, first + count, per_save):
            batch = []
            for n in range(start, min(start + per_save, first + count)):
                loc = location_id(n, prefix)
                path = f"/IN/{party}/{loc}"
                body = ex.location(party_id=party, id=loc, last_updated=stamp(1))
                location = Location(country_code="IN", party_id=party, object_id=loc, body=body,
                                    message=message(party, "PUT", path))
                for rnd in range(1, history):
                    evse = EVSES[rnd % len(EVSES)]
                    location.patch_evse(evse, {"status": STATUSES[rnd % len(STATUSES)], "last_updated": stamp(1 + rnd)},
                                        message(party, "PATCH", f"{path}/{evse}"))
                batch.append(location)
            app.save(*batch)
            written += len(batch) * history
    return written


def writer_text(writer: str) -> str:
    if writer == "pushes":
        return f"hub.services.pushes, {PER_UOW} events per UnitOfWork"
    return "Location aggregates saved by Hub.save, whole histories per transaction"


if __name__ == "__main__":
    job = json.load(sys.stdin)
    print(load(job["env"], job["slices"], job["history"], job["writer"]))
