"""The transparency log over a large event log: building the tree, and ``hub audit verify``.

Hub: over the dataset of ``ops/bench/dataset.py`` (1,000,000 events at full size),
``hub audit checkpoint`` (the Merkle tree built from nothing, then signed), and
``hub audit verify`` (the chain and the tree recomputed from every event, every
checkpoint checked), both as the real commands.

Baseline: reading every event's columns the digest needs (``SELECT`` in pages of
5,000 by notification id), nothing else. Goal: verify 1,000,000 events in < 60 s.
"""

from __future__ import annotations

import json
import time

from ops.bench.common import Result, Row, log
from ops.bench.dataset import shared_dataset


def read_all(hub) -> tuple[int, float]:
    started = time.perf_counter()
    count, last = 0, 0
    with hub.connect_db() as conn:
        while True:
            rows = conn.execute("SELECT notification_id, originator_id, originator_version, topic, state"
                                " FROM hub_events WHERE notification_id > %s ORDER BY notification_id LIMIT 5000",
                                (last,)).fetchall()
            if not rows:
                return count, time.perf_counter() - started
            count += len(rows)
            last = rows[-1][0]


def run(db, size: str, shared: dict | None = None) -> Result:
    dataset, owned = shared_dataset(db, size, shared)
    result = Result("tlog", "hub audit checkpoint (tree from nothing) and hub audit verify vs reading the log", size)
    try:
        hub = dataset.hub
        log(f"tlog: baseline, reading {dataset.events:,} events")
        events, read_seconds = read_all(hub)
        log("tlog: hub audit checkpoint (builds the Merkle tree)")
        started = time.perf_counter()
        hub.run_hub("audit", "checkpoint", "--json")
        build = time.perf_counter() - started
        log("tlog: hub audit verify")
        started = time.perf_counter()
        verdict = json.loads(hub.run_hub("audit", "verify", "--json").stdout)
        verify = time.perf_counter() - started
        result.add(
            Row("hub audit verify (chain + tree + checkpoints), whole command", verify, read_seconds, "s"),
            Row("hub audit checkpoint, Merkle tree built from nothing", build, read_seconds, "s"),
            Row("verified events per second (start-up included)", events / verify, events / read_seconds,
                "events/s", goal="≥ 16,667/s: 1,000,000 events in < 60 s", met=events / verify >= 1_000_000 / 60),
        )
        result.note(dataset.describe())
        result.note(f"verify answered ok={verdict['ok']}, {verdict['checked']:,} events, tree of"
                    f" {verdict['tree_size']:,} leaves, {verdict['checkpoints']} checkpoint(s)")
        return result
    finally:
        if owned:
            dataset.close()
