"""Pull-only partners (issue 14 item 3): the hub pulls a partner's Sender interfaces
(GET, Link, date_from), stores what it gets as pushes are stored, forwards and lists it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

from hub.domain.objects import object_uuid
from hub.domain.sync import parse_schedule
from hub.services.application import Hub
from scheduler.worker import Worker
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.integration.test_forwarding import received, stamp
from tests.partner import role


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _sync(settings, *args: str, ok: bool = True):
    done = run_hub(settings, "parties", "sync", *args, "--json", ok=ok)
    return {r["module"]: r for r in json.loads(done.stdout)}, done


EMP = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP", "OCPI-to-country-code": "IN",
       "OCPI-to-party-id": "CIH"}


def _gets(partner, module: str) -> list:
    return partner.requests_to(f"/ocpi/2.2.1/{module}/sender", "GET")


def _messages(settings, module: str, cc: str, pid: str, oid: str) -> list[dict]:
    """The ``message`` of every stored event of one object, as an auditor reads the log."""
    app = Hub(settings, settings.database_url, pool_size=1)
    try:
        events = app.events.get(object_uuid(module, cc, pid, oid))
        return [e.message for e in events if hasattr(e, "message")]
    finally:
        app.close()


def test_pull_only_cpo_locations_paged_then_incremental(hub, worker, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    held = [ex.location(id=f"LOC{n}", last_updated=stamp(n)) for n in range(7)]
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")], held={"locations": held}, page_size=2)
    try:
        results, done = _sync(settings, "IN/ECP", "--module", "locations")
        first = results["locations"]
        assert first["state"] == "completed" and first["date_from"] is None
        assert (first["pages"], first["received"], first["stored"]) == (4, 7, 7)
        assert "page 4" in done.stderr  # progress for people
        gets = _gets(cpo, "locations")
        assert len(gets) == 4 and "date_from" not in gets[0].query
        assert [g.query for g in gets[1:]] == ["offset=2&limit=2", "offset=4&limit=2", "offset=6&limit=2"]
        assert gets[0].header("OCPI-to-party-id") == "ECP" and gets[0].header("OCPI-from-party-id") == "CIH"
        assert gets[0].token == cpo.token_for_hub
        # Forwarded to the eMSP exactly as pulled, FROM the CPO (open routing) ...
        assert wait_until(lambda: len(received(emsp, "locations", "PUT")) == 7)
        puts = {r.path.rsplit("/", 1)[1]: r for r in received(emsp, "locations", "PUT")}
        assert puts["LOC3"].body == held[3] and puts["LOC3"].header("OCPI-from-party-id") == "ECP"
        # ... listed to eMSPs that pull from the hub ...
        listed = hub.call("GET", "/ocpi/2.2.1/locations/sender", emsp.hub_token, params={"limit": 100},
                          headers=EMP)
        assert sorted(o["id"] for o in listed.json()["data"]) == [f"LOC{n}" for n in range(7)]
        # ... and recorded as received by pull, with the GET's request id.
        (message,) = _messages(settings, "locations", "IN", "ECP", "LOC0")
        assert message["received_by"] == "pull" and message["request_id"] == gets[0].header("X-Request-ID")
        trace = json.loads(run_hub(settings, "audit", "trace", first["correlation_id"], "--json").stdout)
        steps = [s["step"] for s in trace]  # the operator's run, its 4 GETs, 7 objects stored and delivered
        assert (steps.count("operator action"), steps.count("pull"), steps.count("stored")) == (1, 4, 7)
        assert wait_until(lambda: [s["step"] for s in json.loads(run_hub(
            settings, "audit", "trace", first["correlation_id"], "--json").stdout)].count("delivered") == 7)
        history = json.loads(run_hub(settings, "audit", "history", "locations", "IN/ECP", "LOC0", "--json").stdout)
        assert [s["who"] for s in history if s["step"] == "stored"] == ["hub pulled from IN/ECP/CPO (open routing)"]

        # Incremental: only what changed since the last successful pull (date_from).
        since = _now()
        held[2] = ex.location(id="LOC2", last_updated=since, name="Renamed")
        held[5] = ex.location(id="LOC5", last_updated=since, name="Moved")
        held.append(ex.location(id="LOC7", last_updated=since))
        second = _sync(settings, "IN/ECP", "--module", "locations")[0]["locations"]
        assert second["state"] == "completed" and second["date_from"] is not None
        assert (second["received"], second["stored"]) == (3, 3)
        assert "date_from=" in _gets(cpo, "locations")[4].query
        assert wait_until(lambda: len(received(emsp, "locations", "PUT")) == 10)
        assert any(r.body.get("name") == "Renamed" for r in received(emsp, "locations", "PUT")[7:])

        # The stale guard: an older copy pulled again (--full) changes nothing, and what is
        # unchanged is not stored twice.
        held[2] = ex.location(id="LOC2", last_updated=stamp(2), name="Old name")
        third = _sync(settings, "IN/ECP", "--module", "locations", "--full")[0]["locations"]
        assert (third["received"], third["stale"], third["stored"], third["unchanged"]) == (8, 1, 0, 7)
        shown = hub.call("GET", "/ocpi/2.2.1/locations/sender/LOC2", emsp.hub_token, headers={
            **EMP, "OCPI-to-party-id": "ECP"}).json()["data"]
        assert shown["name"] == "Renamed"
        assert len(received(emsp, "locations", "PUT")) == 10
    finally:
        emsp.stop()
        cpo.stop()


def test_tokens_pulled_from_an_emsp_reach_cpos(hub, worker, settings):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    tokens = [ex.token(uid=f"UID{n}", last_updated=stamp(n)) for n in range(3)]
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")], held={"tokens": tokens}, page_size=2)
    try:
        results = _sync(settings, "IN/EMP")[0]
        assert list(results) == ["tokens"]
        assert results["tokens"]["state"] == "completed" and results["tokens"]["stored"] == 3
        assert wait_until(lambda: len(received(cpo, "tokens", "PUT")) == 3)
        assert {r.path for r in received(cpo, "tokens", "PUT")} == {
            f"/ocpi/2.2.1/tokens/receiver/IN/EMP/UID{n}" for n in range(3)}
        # A module the role does not own: named in the refusal.
        done = run_hub(settings, "parties", "sync", "IN/EMP", "--module", "locations", ok=False)
        assert done.returncode == 1 and "--module locations: a EMSP can be pulled for tokens" in done.stderr
    finally:
        emsp.stop()
        cpo.stop()


def test_pulled_objects_of_another_platform_and_invalid_ones_are_refused(hub, settings):
    held = [ex.location(id="GOOD", last_updated=stamp(1)),
            ex.location(id="THEIRS", party_id="XYZ", last_updated=stamp(1)),
            {"id": "BROKEN", "country_code": "IN", "party_id": "ECP", "last_updated": stamp(1)}]
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")], held={"locations": held}, page_size=5)
    try:
        result = _sync(settings, "IN/ECP", "--module", "locations")[0]["locations"]
        assert (result["received"], result["stored"], result["refused"]) == (3, 1, 2)
        assert any("IN/XYZ is not a CPO party" in r for r in result["refusals"])
        assert any("BROKEN" in r for r in result["refusals"])
    finally:
        cpo.stop()


def test_two_syncs_of_one_party_and_module_never_run_at_once(hub, settings):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")], held={"locations": [ex.location(id="L1")]})
    try:
        cpo.gate = threading.Event()  # the first run's GET waits until the second run is over
        outcome = {}
        first = threading.Thread(target=lambda: outcome.update(first=_sync(settings, "IN/ECP", "--module",
                                                                           "locations")[0]))
        first.start()
        assert wait_until(lambda: _gets(cpo, "locations"), timeout=30)
        busy, done = _sync(settings, "IN/ECP", "--module", "locations", ok=False)
        cpo.gate.set()
        assert done.returncode == 1 and busy["locations"]["state"] == "busy"
        first.join(timeout=60)
        assert outcome["first"]["locations"]["state"] == "completed"
        assert len(_gets(cpo, "locations")) == 1  # the busy run sent nothing
    finally:
        if cpo.gate is not None:
            cpo.gate.set()
        cpo.stop()


def test_the_schedule_runs_a_sync_in_the_worker(hub, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")],
                              held={"tariffs": [ex.tariff(id="T1", last_updated=stamp(1))]})
    scheduled = replace(settings, sync_schedule=parse_schedule("IN/ECP:tariffs=1h"))
    worker = Worker(scheduled, settings.database_url)
    worker.start()
    try:
        assert wait_until(lambda: received(emsp, "tariffs", "PUT"), timeout=20)
        assert received(emsp, "tariffs", "PUT")[0].path == "/ocpi/2.2.1/tariffs/receiver/IN/ECP/T1"
        assert [g.path for g in _gets(cpo, "tariffs")] == ["/ocpi/2.2.1/tariffs/sender"]
        assert not _gets(cpo, "locations")  # only the modules scheduled
    finally:
        worker.stop()
        emsp.stop()
        cpo.stop()


def test_sessions_and_cdrs_pulled_reach_only_the_emsp_of_cdr_token(hub, worker, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    other = hub.connect_partner([role("EMSP", "IN", "OTE")])
    stranger = ex.cdr_token(party_id="ZZZ")
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")], page_size=5, held={
        "locations": [], "tariffs": [],
        "sessions": [ex.session(id="S1", last_updated=stamp(1))],
        "cdrs": [ex.cdr(id="C1", last_updated=stamp(2)), ex.cdr(id="C2", last_updated=stamp(3), cdr_token=stranger)],
    })
    try:
        results, _ = _sync(settings, "IN/ECP")
        assert list(results) == ["locations", "tariffs", "sessions", "cdrs"]
        assert {m: r["state"] for m, r in results.items()} == dict.fromkeys(results, "completed")
        assert results["sessions"]["stored"] == 1
        assert (results["cdrs"]["stored"], results["cdrs"]["refused"]) == (1, 1)
        assert "unknown receiver IN/ZZZ" in results["cdrs"]["refusals"][0]
        assert wait_until(lambda: received(emsp, "cdrs", "POST"))
        assert wait_until(lambda: received(emsp, "sessions", "PUT"))
        assert received(emsp, "cdrs", "POST")[0].body["id"] == "C1"
        assert not received(other, "sessions") and not received(other, "cdrs")
        # A CDR pulled again is not stored twice.
        again = _sync(settings, "IN/ECP", "--module", "cdrs", "--full")[0]["cdrs"]
        assert (again["stored"], again["unchanged"]) == (0, 1)
    finally:
        for partner in (emsp, other, cpo):
            partner.stop()


def test_a_failed_run_keeps_the_last_successful_start(hub, settings):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")], held={"tariffs": [ex.tariff(id="T1")]})
    try:
        cpo.fail_with = 500
        failed, done = _sync(settings, "IN/ECP", "--module", "tariffs", ok=False)
        assert done.returncode == 1 and failed["tariffs"]["state"] == "failed"
        assert "HTTP 500" in failed["tariffs"]["error"]
        cpo.fail_with = None
        again = _sync(settings, "IN/ECP", "--module", "tariffs")[0]["tariffs"]
        assert again["date_from"] is None and again["stored"] == 1  # still the first, full pull
        shown = json.loads(run_hub(settings, "parties", "show", "IN/ECP", "--json").stdout)
        pulls = {p["module"]: p for p in shown["pulls"]}
        assert pulls["tariffs"]["last_state"] == "completed" and pulls["tariffs"]["last_success"]
        assert pulls["locations"]["last_state"] == "never"
    finally:
        cpo.stop()


def test_one_object_twice_in_a_page_is_stored_in_order(hub, settings):
    held = [ex.location(id="DUP", last_updated=stamp(1), name="First"),
            ex.location(id="DUP", last_updated=stamp(2), name="Second"),
            ex.location(id="ONE", last_updated=stamp(1))]
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")], held={"locations": held}, page_size=5)
    try:
        result = _sync(settings, "IN/ECP", "--module", "locations")[0]["locations"]
        assert (result["state"], result["received"], result["stored"]) == ("completed", 3, 3)
        assert [m["received_by"] for m in _messages(settings, "locations", "IN", "ECP", "DUP")] == ["pull", "pull"]
        app = Hub(settings, settings.database_url, pool_size=1)
        try:
            assert app.repository.get(object_uuid("locations", "IN", "ECP", "DUP")).body["name"] == "Second"
        finally:
            app.close()
    finally:
        cpo.stop()


def test_a_link_elsewhere_passes_the_outbound_guard_first(hub, settings):
    held = [ex.location(id=f"L{n}", last_updated=stamp(n)) for n in range(3)]
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")], held={"locations": held}, page_size=2,
                              link_base="http://169.254.169.254")  # a cloud metadata address
    try:
        failed, done = _sync(settings, "IN/ECP", "--module", "locations", ok=False)
        result = failed["locations"]
        assert done.returncode == 1 and result["state"] == "failed"
        assert "169.254.169.254" in result["error"] and result["pages"] == 1 and result["stored"] == 2
        assert len(_gets(cpo, "locations")) == 1
    finally:
        cpo.stop()
