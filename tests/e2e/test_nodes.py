"""Two nodes on one database: two ``hub web`` and two ``hub worker`` processes.

A node is what one machine of a deployment runs (docs/operations.md, "Scaling to
several nodes"): here two ``hub web`` servers on their own ports and two ``hub worker``
processes, all on one PostgreSQL schema, with a short ``HUB_LEASE_SECONDS``. A CPO's
pushes alternate between the two web nodes, as behind a load balancer; one worker is
killed with SIGKILL while both are sending. What the eMSPs observe is asserted: every
acknowledged push delivered to every eMSP, each object's messages in order, never two
requests for one object at once, and the dead worker's deliveries taken over well
before the old fixed 60 s lease could have expired.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tests.conftest import HubUnderTest, _answers, wait_until
from tests.e2e.test_resilience import in_order
from tests.e2e.test_workers import (
    attempts_logged,
    connect,
    holds,
    pending,
    push_locations,
    push_statuses,
)
from tests.integration.test_forwarding import Cpo
from tests.partner import free_port

LEASE_SECONDS = "3"
TAKEOVER_WITHIN = 30  # seconds: half the lease every worker had before HUB_LEASE_SECONDS


@pytest.fixture
def two_nodes(settings, processes):
    """Two ``hub web`` nodes and two ``hub worker`` processes; returns ([node A, node B], [workers])."""
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    env.update({"HUB_STILL_ALIVE_AFTER": "2", "HUB_LEASE_SECONDS": LEASE_SECONDS, "HUB_LOG_LEVEL": "INFO"})
    ports = [settings.extra["port"], free_port()]
    for port in ports:
        processes.start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env)
    workers = [processes.start(["worker"], env) for _ in range(2)]
    nodes = []
    for port in ports:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda url=url: _answers(url + "/health"), timeout=30), \
            f"hub web on {url} did not come up\n" + processes.log_tail()
        nodes.append(HubUnderTest(settings, url))
    return nodes, workers


def test_two_web_and_two_worker_nodes_deliver_everything_in_order_when_a_worker_dies(
        two_nodes, settings, processes):
    (node_a, node_b), workers = two_nodes
    emsps, cpo_a, partners = connect(node_a, 3, delay=0.03)
    cpo_b = Cpo(node_b, cpo_a.partner)  # the same CPO platform, reaching the other node
    try:
        current = push_locations(cpo_a)
        assert wait_until(lambda: all(holds(e, current) for e in emsps), timeout=60), processes.log_tail()

        # Both nodes take pushes at once: node B from a second thread, for the same Locations.
        ids = push_statuses([cpo_a, cpo_b], current, 1, 60)
        background: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def more() -> None:
            try:
                with lock:
                    background.extend(push_statuses([cpo_b, cpo_a], current, 2000, 40))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        # Kill a worker while both are sending (it holds leased rows, maybe a call in flight).
        assert wait_until(lambda: all(attempts_logged(processes, w) > 10 for w in workers), timeout=60), \
            processes.log_tail()
        victim, survivor = workers
        thread = threading.Thread(target=more)
        thread.start()
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        thread.join(timeout=120)
        assert not errors, errors
        with lock:
            ids += background
            ids += push_statuses([cpo_a, cpo_b], current, 4000, 30)

        # Taken over within the configured lease (bounded here far below the old fixed 60 s).
        assert wait_until(lambda: all(holds(e, current) for e in emsps), timeout=TAKEOVER_WITHIN), \
            processes.log_tail()
        for emsp in emsps:
            got = emsp.delivered()
            party = emsp.roles[0]["party_id"]
            assert set(ids) <= {r.header("X-Correlation-ID") for r in got}, f"{party}: an acknowledged push was lost"
            assert in_order(got), f"{party} received an object's messages out of order"
            assert max(emsp.most_at_once.values()) == 1, emsp.most_at_once  # no delivery sent twice at once
        assert survivor.poll() is None
        assert wait_until(lambda: pending(settings) == 0, timeout=30)
    finally:
        for partner in partners:
            partner.stop()
