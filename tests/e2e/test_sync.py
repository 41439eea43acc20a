"""Pull-only partners end to end: ``hub web`` under gunicorn, ``hub worker`` with a
``HUB_SYNC_SCHEDULE``, the ``hub parties sync`` command, partner servers on 127.0.0.1."""

from __future__ import annotations

import json
import os

from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import HubUnderTest, _answers, wait_until
from tests.integration.test_forwarding import received, stamp
from tests.partner import role


def test_pull_only_cpo_through_the_command_and_the_schedule(settings, processes):
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    port = settings.extra["port"]
    processes.start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env)
    hub = HubUnderTest(settings, f"http://127.0.0.1:{port}")
    assert wait_until(lambda: _answers(hub.url + "/health"), timeout=30), processes.log_tail()
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    nap = hub.connect_partner([role("NAP", "IN", "NAP")])
    locations = [ex.location(id=f"LOC{n}", last_updated=stamp(n)) for n in range(5)]
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")], page_size=2, held={
        "locations": locations, "tariffs": [ex.tariff(id="T1", last_updated=stamp(1))]})
    # The worker pulls the CPO's Tariffs on its schedule; Locations are pulled by the operator.
    processes.start(["worker"], {**env, "HUB_SYNC_SCHEDULE": "IN/ECP:tariffs=2s"})
    try:
        done = run_hub(settings, "parties", "sync", "IN/ECP", "--module", "locations", "--json")
        (result,) = json.loads(done.stdout)
        assert (result["state"], result["pages"], result["stored"]) == ("completed", 3, 5)
        for partner in (emsp, nap):  # an eMSP and a NAP receive what was pulled
            assert wait_until(lambda p=partner: len(received(p, "locations", "PUT")) == 5, timeout=20), \
                processes.log_tail()
            assert sorted(r.body["id"] for r in received(partner, "locations", "PUT")) == [
                f"LOC{n}" for n in range(5)]
        assert wait_until(lambda: received(emsp, "tariffs", "PUT"), timeout=20), processes.log_tail()
        assert received(emsp, "tariffs", "PUT")[0].path == "/ocpi/2.2.1/tariffs/receiver/IN/ECP/T1"
        # Later scheduled runs ask only for what changed since the last successful one.
        assert wait_until(lambda: len(cpo.requests_to("/ocpi/2.2.1/tariffs/sender")) >= 2, timeout=20)
        assert "date_from=" in cpo.requests_to("/ocpi/2.2.1/tariffs/sender")[1].query
        assert len(received(emsp, "tariffs", "PUT")) == 1
    finally:
        for partner in (emsp, nap, cpo):
            partner.stop()
