"""HubClientInfo: statuses as partners see them, pushes, the still-alive check."""

from __future__ import annotations

from dataclasses import replace

from scheduler.worker import Worker
from tests.conftest import wait_until
from tests.partner import role


def _statuses(hub, token) -> dict:
    listed = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", token).json()["data"]
    return {f"{c['country_code']}/{c['party_id']}/{c['role']}": c["status"] for c in listed}


def test_planned_then_connected(hub):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        hub.onboard("CPO", "IN", "PLN", "Planned CPO")
        statuses = _statuses(hub, emsp.hub_token)
        assert statuses == {"IN/EMP/EMSP": "CONNECTED", "IN/PLN/CPO": "PLANNED"}
    finally:
        emsp.stop()


def test_unregistered_party_stays_listed_as_suspended(hub, worker):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        assert hub.call("DELETE", "/ocpi/2.2.1/credentials", cpo.hub_token).json()["status_code"] == 1000
        assert _statuses(hub, emsp.hub_token)["IN/ECP/CPO"] == "SUSPENDED"
        assert emsp.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/IN/ECP")
                             and r.body.get("status") == "SUSPENDED")
    finally:
        emsp.stop()
        cpo.stop()


def test_still_alive_marks_offline_and_back(hub, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    worker = Worker(replace(settings, still_alive_after=0.5), settings.database_url)
    worker.start()
    try:
        # The CPO goes away: the still-alive GET of its versions fails, it becomes OFFLINE.
        cpo.stop()
        assert wait_until(lambda: _statuses(hub, emsp.hub_token)["IN/ECP/CPO"] == "OFFLINE", timeout=30)
        assert emsp.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/IN/ECP")
                             and r.body.get("status") == "OFFLINE", timeout=15)
        # It comes back on the same port: the next probe succeeds, CONNECTED again.
        cpo.start()
        assert wait_until(lambda: _statuses(hub, emsp.hub_token)["IN/ECP/CPO"] == "CONNECTED", timeout=30)
        assert emsp.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/IN/ECP")
                             and r.body.get("status") == "CONNECTED"
                             and r is not emsp.requests_to("/ocpi/2.2.1/hubclientinfo")[0], timeout=15)
        probes = [r for r in cpo.requests_to("/ocpi/versions", "GET")]
        assert probes and all(r.token == cpo.token_for_hub for r in probes)
    finally:
        worker.stop()
        emsp.stop()
        cpo.stop()


def test_rules_hide_parties_from_hubclientinfo(hub, worker, settings):
    from tests.cli import run_hub

    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        run_hub(settings, "routing", "deny", "IN/ECP", "IN/EM2", "--module", "hubclientinfo")
        assert "IN/ECP/CPO" in _statuses(hub, em1.hub_token)
        assert "IN/ECP/CPO" not in _statuses(hub, em2.hub_token)
        assert "IN/EM2/EMSP" not in _statuses(hub, cpo.hub_token)
        assert "IN/EM1/EMSP" in _statuses(hub, em2.hub_token)  # eMSP to eMSP: no rule applies
        # Pushes follow the same rule: EM2 is not told when the CPO is suspended, EM1 is.
        run_hub(settings, "parties", "suspend", "IN", "ECP")
        assert em1.wait_for(lambda r: r.path.endswith("/IN/ECP") and r.body.get("status") == "SUSPENDED")
        worker.follow_once()
        worker.deliver()
        assert not [r for r in em2.requests_to("/ocpi/2.2.1/hubclientinfo") if r.path.endswith("/IN/ECP")
                    and r.body.get("status") == "SUSPENDED"]
    finally:
        for partner in (em1, em2, cpo):
            partner.stop()


def test_migrate_gives_parties_listed_before_an_upgrade_their_place(hub, settings):
    """A ``view_parties`` made before ``seq`` existed gets it at ``hub migrate``,
    from the log: the list comes in onboarding order, as a fresh build gives."""
    import psycopg

    from tests.cli import run_hub

    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        hub.onboard("CPO", "IN", "PL1")
        hub.onboard("CPO", "IN", "PL2")
        listed = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", emsp.hub_token).json()["data"]
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{settings.database_schema}"')
            conn.execute("ALTER TABLE view_parties DROP COLUMN seq")
        run_hub(settings, "migrate")
        again = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", emsp.hub_token, params={"limit": 1})
        pages = [again.json()["data"]]
        while "Link" in again.headers:
            again = hub.call("GET", again.links["next"]["url"], emsp.hub_token)
            pages.append(again.json()["data"])
        assert [c for page in pages for c in page] == listed
        assert [c["party_id"] for c in listed] == ["EMP", "PL1", "PL2"]
    finally:
        emsp.stop()
