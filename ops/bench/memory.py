"""6. Memory: peak RSS of the hub's processes with a large store.

On the dataset of ``ops/bench/dataset.py`` (100,000 Locations, 1,000,000
events at full size, views built): ``hub web`` (gunicorn, 2 workers) and
``hub worker`` run while the eMSP crawls every Location page by page and the
CPO pushes a stream of EVSE status PATCHes that the worker projects and
forwards to the eMSP. Peak RSS (``VmHWM``) of each web worker (the largest is
reported) and of the worker process; also of ``hub projections rebuild`` over
the whole log.

Baseline: the same processes and the same activity on an empty hub (the same
two partners, the CPO's ``pushes`` PATCHes addressed to Locations it PUT
first). No goal is set; the ratio shows whether memory grows with the store.
"""

from __future__ import annotations

import threading
import time

from ops.bench.common import Http, Result, Row, cpo, emsp, log, push_headers, stamp
from ops.bench.dataset import CPO_PARTY, EMSP_PARTY, shared_dataset
from ops.bench.meters import peak_rss_mb
from ops.bench.processes import HubProcesses
from ops.bench.pulls import crawl, ensure_views
from tests import ocpi_examples as ex

SIZES = {"smoke": {"limit": 20, "pushes": 50, "locations": 10}, "full": {"limit": 100, "pushes": 500, "locations": 50}}
EVSE_UID = "EVSE-BLR-0001-1"


def exercise(hub: HubProcesses, cpo_token: str, emsp_token: str, cfg: dict, locations: list[str]) -> dict:
    """Crawl every Location while the CPO pushes PATCHes; then wait for the worker; peak RSS in MiB."""
    pushed = []

    def push() -> None:
        client = Http(hub.url, cpo_token)
        for n in range(cfg["pushes"]):
            location = locations[n % len(locations)]
            status, _, body = client.request(
                "PATCH", f"/ocpi/2.2.1/locations/receiver/IN/{CPO_PARTY}/{location}/{EVSE_UID}",
                {"status": ("CHARGING", "AVAILABLE")[n % 2], "last_updated": stamp(100_000 + n)},
                push_headers(CPO_PARTY))
            assert status == 200, body[:300]
            pushed.append(n)
            time.sleep(0.02)
        client.close()

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    _, counts, _, _ = crawl(hub.url, emsp_token, cfg["limit"])
    pusher.join()
    quiet = hub.wait_quiet(timeout=600)
    web = [peak_rss_mb(p) or 0.0 for p in hub.web_worker_pids()]
    worker = [peak_rss_mb(p) or 0.0 for p in hub.worker_pids()]
    return {"web": max(web), "worker": max(worker), "pages": len(counts), "items": sum(counts),
            "pushed": len(pushed), "quiet": quiet}


def run(db, size: str, shared: dict | None = None) -> Result:
    cfg = SIZES[size]
    dataset, owned = shared_dataset(db, size, shared)
    result = Result("memory", "peak RSS with a large store vs the same activity on an empty hub", size)
    try:
        # Baseline: an empty hub, the same partners, the same activity.
        empty = HubProcesses(db.url, "memempty")
        try:
            empty.migrate()
            empty.start_web()
            empty.start_worker()
            (cpo_partner,) = empty.connect_partners([cpo(CPO_PARTY)])
            (emsp_partner,) = empty.connect_partners([emsp(EMSP_PARTY)])
            client = Http(empty.url, cpo_partner.hub_token)
            locations = [f"LOC{n:06d}" for n in range(cfg["locations"])]
            for location in locations:
                body = ex.location(party_id=CPO_PARTY, id=location, last_updated=stamp(1))
                status, _, answer = client.request("PUT", f"/ocpi/2.2.1/locations/receiver/IN/{CPO_PARTY}/{location}",
                                                   body, push_headers(CPO_PARTY))
                assert status == 201, answer[:300]
            client.close()
            log("memory: baseline, an empty hub")
            base = exercise(empty, cpo_partner.hub_token, emsp_partner.hub_token, cfg, locations)
        finally:
            empty.close()

        ensure_views(dataset)
        hub = dataset.hub
        hub.migrate()  # idempotent; as every start-up does
        hub.start_worker()
        hub.start_web()
        log(f"memory: the hub with {dataset.events:,} events and {dataset.cfg['locations']:,} Locations")
        big = exercise(hub, dataset.cpo.hub_token, dataset.emsp.hub_token, cfg, locations)
        hub.stop("web")
        hub.stop("worker")

        result.add(
            Row("peak RSS of a web worker (largest of 2)", big["web"], base["web"], "MiB"),
            Row("peak RSS of hub worker", big["worker"], base["worker"], "MiB"),
        )
        if dataset.rebuild_peak_rss is not None:
            result.add(Row(f"peak RSS of hub projections rebuild ({dataset.events:,} events)",
                           dataset.rebuild_peak_rss, None, "MiB"))
        result.note(f"activity: a crawl of every Location ({big['pages']} pages of {cfg['limit']}, "
                    f"{big['items']:,} Locations; empty hub: {base['items']}) while the CPO pushed "
                    f"{big['pushed']} EVSE PATCHes forwarded to the eMSP; worker caught up: "
                    f"{big['quiet'] and base['quiet']}")
        result.note(dataset.describe())
        result.note("no goal is set for memory; the baseline is the same processes on an empty hub")
        return result
    finally:
        if owned:
            dataset.close()
