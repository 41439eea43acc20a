"""5. Large pulls: an eMSP crawling every Location, page by page, through ``hub web``.

The eMSP (``IN/BEM``) GETs ``locations/sender`` (addressed to the hub) and
follows the ``Link`` header to the end, as OCPI clients do, over the dataset
of ``ops/bench/dataset.py`` (100,000 Locations at full size). Figures: the
time of a page at the end of the crawl against one at the start (mean of the
first and of the last ``window`` pages; goal: ratio ≈ 1, i.e. no slowdown with
the offset; met when ≤ 1.2) and the whole crawl.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from ops.bench.common import HUB_TO, Http, Result, Row, log, percentile
from ops.bench.dataset import EMSP_PARTY, shared_dataset

SIZES = {"smoke": {"limit": 20, "window": 5}, "full": {"limit": 100, "window": 20}}


def next_link(headers: dict[str, str]) -> str | None:
    link = headers.get("link")
    if not link or 'rel="next"' not in link:
        return None
    url = link.split(";", 1)[0].strip().lstrip("<").rstrip(">")
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def crawl(url: str, token: str, limit: int) -> tuple[list[float], list[int], int, set[str]]:
    """Every page of the Locations list: (page times in ms, items per page, X-Total-Count, ids)."""
    client = Http(url, token, {"OCPI-from-country-code": "IN", "OCPI-from-party-id": EMSP_PARTY, **HUB_TO})
    path: str | None = f"/ocpi/2.2.1/locations/sender?limit={limit}"
    times, counts, ids, total = [], [], set(), 0
    while path:
        started = time.perf_counter()
        status, headers, body = client.request("GET", path)
        times.append((time.perf_counter() - started) * 1000)
        answer = json.loads(body)
        if status != 200 or answer.get("status_code") != 1000:
            raise RuntimeError(f"page {len(times)}: {status} {body[:300]!r}")
        counts.append(len(answer["data"]))
        ids.update(item["id"] for item in answer["data"])
        total = int(headers.get("x-total-count", 0))
        path = next_link(headers)
    client.close()
    return times, counts, total, ids


def ensure_views(dataset) -> None:
    if not dataset.views_built:
        log("pulls: building the views first (hub projections rebuild)")
        _, dataset.rebuild_peak_rss = dataset.hub.run_hub_measured("projections", "rebuild")
        dataset.views_built = True


def run(db, size: str, shared: dict | None = None) -> Result:
    cfg = SIZES[size]
    dataset, owned = shared_dataset(db, size, shared)
    result = Result("pulls", "an eMSP crawling every Location page by page", size)
    try:
        ensure_views(dataset)
        hub = dataset.hub
        hub.migrate()  # idempotent; as every start-up does
        hub.start_web()
        expected = dataset.cfg["locations"]
        log(f"pulls: crawling {expected:,} Locations, {cfg['limit']} per page")
        started = time.monotonic()
        times, counts, total, ids = crawl(hub.url, dataset.emsp.hub_token, cfg["limit"])
        whole = time.monotonic() - started
        window = min(cfg["window"], max(1, len(times) // 3))
        # The last page may be short; compare full pages.
        full_pages = [t for t, c in zip(times, counts, strict=True) if c == cfg["limit"]] or times
        first = sum(full_pages[:window]) / window
        last = sum(full_pages[-window:]) / window
        result.add(
            Row(f"page time, last {window} pages vs first {window}", last, first, "ms", goal="≈ 1 (≤ 1.2)",
                met=last <= 1.2 * first),
            Row("page time p50 over the crawl", percentile(times, 50), None, "ms"),
            Row("page time p99 over the crawl", percentile(times, 99), None, "ms"),
            Row("whole crawl", whole, None, "s"),
            Row("Locations per second", len(ids) / whole, None, "/s"),
        )
        complete = len(ids) == expected == sum(counts)
        result.note(f"{len(times)} pages of {cfg['limit']}; {sum(counts):,} Locations received, "
                    f"{len(ids):,} distinct, X-Total-Count {total:,}, expected {expected:,}"
                    + ("" if complete else " — INCOMPLETE OR DUPLICATED"))
        result.note(dataset.describe())
        hub.stop("web")
        return result
    finally:
        if owned:
            dataset.close()
