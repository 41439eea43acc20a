"""The sandbox's simulated partners against the real hub (in process, real HTTP, real PostgreSQL):
data flows between them, and each fault mode has the effect docs/sandbox.md documents."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest
import requests

from hub.sandbox import client
from hub.sandbox.faults import Fault
from hub.sandbox.partner import Partner
from scheduler.worker import Worker
from tests.cli import run_hub
from tests.conftest import wait_until


def joined(hub, role: str, party_id: str, name: str, **options) -> Partner:
    """A sandbox partner onboarded by the operator and registered through the handshake."""
    token_a = hub.onboard(role, "IN", party_id, name)["token_a"]
    partner = Partner(role, "IN", party_id, name, **options).start()
    client.register(partner, hub.versions_url, token_a)
    return partner


@pytest.fixture
def pair(hub):
    cpo = joined(hub, "CPO", "VYC", "Volt Yatra Charging", locations=3)
    emsp = joined(hub, "EMSP", "CHL", "Chalo EV")
    yield cpo, emsp
    cpo.stop()
    emsp.stop()


def deliveries_to(settings, party: str) -> list[dict]:
    return json.loads(run_hub(settings, "deliveries", "list", "--party", party, "--json").stdout)


def allowed(answer: requests.Response) -> str | None:
    return (answer.json().get("data") or {}).get("allowed")


def test_locations_tokens_authorization_and_commands_flow_through_the_hub(hub, worker, pair):
    cpo, emsp = pair
    assert client.push_all(emsp) == 5 and client.push_all(cpo) == 2 + 3
    # The CPO's Locations and Tariffs reach the eMSP as the CPO built them; the tokens reach the CPO.
    ids = {loc["id"] for loc in cpo.held["locations"]}
    assert wait_until(lambda: {k.rsplit("/", 1)[1] for k in emsp.stored.get("locations", {})} == ids, timeout=20)
    first = cpo.held["locations"][0]
    assert emsp.stored["locations"][f"IN/VYC/{first['id']}"]["city"] == first["city"]
    assert wait_until(lambda: len(cpo.stored.get("tokens", {})) == 5, timeout=20)
    # An EVSE status change is forwarded as the PATCH it was.
    evse = first["evses"][0]
    client.push(cpo, "locations", {"status": "OUTOFORDER", "last_updated": "2030-01-01T00:00:00Z"}, "PATCH",
                first["id"], evse["uid"])
    assert wait_until(lambda: emsp.stored["locations"][f"IN/VYC/{first['id']}"]["evses"][0]["status"]
                      == "OUTOFORDER", timeout=20)
    # Real-time authorization: the CPO asks the hub, the eMSP that owns the token answers.
    card, lost = emsp.held["tokens"][0], emsp.held["tokens"][-1]
    assert wait_until(lambda: allowed(client.authorize(cpo, card, first["id"])) == "ALLOWED")
    assert allowed(client.authorize(cpo, lost)) == "BLOCKED"
    # A command: the eMSP's START_SESSION reaches the CPO, whose result comes back to the eMSP,
    # and the Session the charge started reaches the eMSP too.
    result_url = f"{emsp.base_url}/ocpi/2.2.1/commands/START_SESSION/{uuid.uuid4().hex[:8]}"
    body = {"response_url": result_url, "token": card, "location_id": first["id"], "evse_uid": evse["uid"]}
    answer = requests.post(f"{hub.url}/ocpi/2.2.1/commands/receiver/START_SESSION", json=body, timeout=15,
                           headers={**client._auth(emsp.token_c), **client._routing(emsp, ("IN", "VYC"))})
    assert answer.json()["status_code"] == 1000 and answer.json()["data"]["result"] == "ACCEPTED"
    assert wait_until(lambda: any(r["module"] == "commands" and r["method"] == "POST" and
                                  (r["body"] or {}).get("result") == "ACCEPTED" for r in emsp.received), timeout=20)
    assert wait_until(lambda: any(s.get("auth_method") == "COMMAND" for s in emsp.stored.get("sessions", {}).values()),
                      timeout=20)


def test_5xx_deliveries_are_retried_then_parked_and_counted_failed(hub, settings, pair):
    cpo, emsp = pair
    emsp.set_fault(Fault.parse("5xx"))
    client.push(cpo, "locations", cpo.held["locations"][0])
    worker = Worker(replace(settings, delivery_give_up_after=0.0), settings.database_url)
    try:
        worker.follow_once()
        worker.deliver()
        rows = [r for r in deliveries_to(settings, "IN/CHL") if r["module"] == "locations"]
        assert rows and rows[0]["last_http_status"] == 503 and rows[0]["attempts"] >= 1
        worker.sweep()  # the worker's periodic give-up sweep
        rows = [r for r in deliveries_to(settings, "IN/CHL") if r["module"] == "locations"]
        assert rows[0]["state"] == "FAILED"  # given up at once: HUB_DELIVERY_GIVE_UP_AFTER=0
        failed = json.loads(run_hub(settings, "deliveries", "list", "--failed", "--json").stdout)
        assert [r["recipient"] for r in failed if r["module"] == "locations"] == ["IN/CHL/EMSP"]
    finally:
        worker.stop()


def test_5xx_is_retried_while_the_give_up_time_has_not_passed(hub, settings, pair):
    cpo, emsp = pair
    emsp.set_fault(Fault.parse("5xx"))
    client.push(cpo, "locations", cpo.held["locations"][0])
    worker = Worker(settings, settings.database_url)
    try:
        worker.follow_once()
        worker.deliver()
        (row,) = [r for r in deliveries_to(settings, "IN/CHL") if r["module"] == "locations"]
        assert (row["state"], row["last_http_status"]) == ("PENDING", 503)
        stats = {r["party"]: r for r in json.loads(run_hub(settings, "deliveries", "stats", "--json").stdout)}
        assert stats["IN/CHL/EMSP"]["pending"] >= 1
    finally:
        worker.stop()


def test_429_is_retried_after_retry_after(hub, settings, pair):
    import psycopg

    cpo, emsp = pair
    emsp.set_fault(Fault.parse("429", 120))
    client.push(cpo, "locations", cpo.held["locations"][0])
    worker = Worker(settings, settings.database_url)
    try:
        worker.follow_once()
        worker.deliver()
        (row,) = [r for r in deliveries_to(settings, "IN/CHL") if r["module"] == "locations"]
        assert (row["state"], row["last_http_status"]) == ("PENDING", 429)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{settings.database_schema}"')
            waits = conn.execute("SELECT extract(epoch FROM next_attempt_at - last_attempt_at) FROM hub_deliveries"
                                 " WHERE id = %s", (row["id"],)).fetchone()[0]
        assert waits >= 100  # the partner's Retry-After: 120, not the hub's own first pause
        # Once the partner takes calls again, the retry (made due here) delivers it.
        emsp.set_fault(Fault.parse("off"))
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{settings.database_schema}"')
            conn.execute("UPDATE hub_deliveries SET next_attempt_at = now() WHERE id = %s", (row["id"],))
        worker.deliver()
        (row,) = [r for r in deliveries_to(settings, "IN/CHL") if r["id"] == row["id"]]
        assert row["state"] == "DELIVERED" and row["attempts"] == 2
        assert emsp.stored["locations"][f"IN/VYC/{cpo.held['locations'][0]['id']}"]["id"] == cpo.held["locations"][0]["id"]
    finally:
        worker.stop()


def test_timeout_makes_authorization_4002_and_slow_still_answers(hub, worker, settings, pair):
    cpo, emsp = pair
    client.push_all(emsp)
    card = emsp.held["tokens"][0]
    emsp.set_fault(Fault.parse("slow", 1))
    assert wait_until(lambda: allowed(client.authorize(cpo, card)) == "ALLOWED")  # once the token view has it
    emsp.set_fault(Fault.parse("timeout", settings.forward_timeout + 5))
    late = client.authorize(cpo, card).json()
    assert late["status_code"] == 4002 and "did not answer within" in late["status_message"]
    emsp.set_fault(Fault.parse("off"))


def test_invalid_bodies_are_refused_naming_the_field(hub, worker, settings, pair):
    cpo, emsp = pair
    client.push_all(emsp)
    cpo.set_fault(Fault.parse("invalid"))
    with pytest.raises(client.HubError) as refused:
        client.push(cpo, "locations", cpo.held["locations"][0])
    assert "2001" in str(refused.value) and "coordinates" in str(refused.value)
    # What the hub pulls from it is refused object by object, each naming the field.
    result = json.loads(run_hub(settings, "parties", "sync", "IN/VYC", "--module", "locations", "--json").stdout)[0]
    assert (result["received"], result["stored"], result["refused"]) == (3, 0, 3)
    assert all("coordinates" in r for r in result["refusals"])
    # An eMSP answering authorization with an AuthorizationInfo that is not one: the hub never relays
    # it (the CPO would act on it); the CPO gets 4000 naming the field.
    emsp.set_fault(Fault.parse("invalid"))
    answer = client.authorize(cpo, emsp.held["tokens"][0]).json()
    assert answer["status_code"] == 4000 and "data" not in answer, answer
    assert "not a valid AuthorizationInfo" in answer["status_message"] and "allowed" in answer["status_message"]


def test_pagination_stress_sync_pulls_every_page(hub, settings):
    cpo = joined(hub, "CPO", "GRP", "GridPath Energy", locations=7)
    try:
        cpo.set_fault(Fault.parse("pagination"))
        result = json.loads(run_hub(settings, "parties", "sync", "IN/GRP", "--module", "locations",
                                    "--json").stdout)[0]
        assert result["state"] == "completed"
        assert (result["pages"], result["received"], result["stored"]) == (7, 7, 7)
        gets = [r for r in cpo.received if r["module"] == "locations" and r["method"] == "GET"]
        assert len(gets) == 7
    finally:
        cpo.stop()


def test_hub_sandbox_attaches_to_a_running_hub(hub, worker, settings, tmp_path):
    """``--hub-url``: no hub of its own; the operator side uses this environment's hub."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    out, log = open(tmp_path / "sandbox.out", "w"), open(tmp_path / "sandbox.log", "w")
    sandbox = subprocess.Popen([sys.executable, "-m", "hub", "sandbox", "--hub-url", hub.url, "--interval", "1",
                                "--json"], cwd=ROOT, env=env, stdout=out, stderr=log)
    control = settings.data_dir / "sandbox-control"
    try:
        assert wait_until(lambda: control.exists() or sandbox.poll() is not None, timeout=120), (
            tmp_path / "sandbox.log").read_text()
        assert sandbox.poll() is None, (tmp_path / "sandbox.log").read_text()
        said = (tmp_path / "sandbox.log").read_text()
        assert f"Attaching to the hub at {hub.url}" in said and "HUB_PARTNER_NETWORKS_ALLOWED" in said
        started = json.loads((tmp_path / "sandbox.out").read_text())
        assert started["own_hub"] is False and started["versions_url"] == hub.versions_url
        listed = json.loads(run_hub(settings, "parties", "list", "--json").stdout)
        assert sorted(p["party"] for p in listed if p["state"] == "CONNECTED") == [
            "IN/CHL/EMSP", "IN/GRP/CPO", "IN/MRG/EMSP", "IN/VYC/CPO"]
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(timeout=60)
    assert sandbox.returncode == 0, (tmp_path / "sandbox.log").read_text()
    assert hub.call("GET", "/health").status_code == 200  # the hub it attached to keeps running
