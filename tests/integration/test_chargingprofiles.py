"""ChargingProfiles relayed both ways, and Sessions charging preferences: eMSP or SCSP ->
hub -> CPO synchronously, the CPO's asynchronous results and unsolicited updates back,
durably (real PostgreSQL, real HTTP to partner servers on 127.0.0.1)."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs

import psycopg

from projections.queries import session_owners
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.integration.test_audit import settle
from tests.integration.test_forwarding import Cpo
from tests.partner import MODULES, envelope, role

WITH_PROFILES = (*MODULES, "chargingprofiles")
SESSION = "SES-20240315-0001"
RESPONSE = {"result": "ACCEPTED", "timeout": 20}
PROFILE = {"charging_rate_unit": "W", "min_charging_rate": 1500.5,
           "charging_profile_period": [{"start_period": 0, "limit": 11000}, {"start_period": 1800, "limit": 7400}]}
ACTIVE = {"start_date_time": "2024-03-15T05:10:00Z", "charging_profile": PROFILE}
PROFILES_AT = "/ocpi/2.2.1/chargingprofiles/receiver/"
PREFERENCES = {"profile_type": "GREEN", "departure_time": "2024-03-15T09:00:00Z", "energy_need": 32.5}


def answering_cpo(hub, pid="ECP"):
    """A CPO whose chargingprofiles RECEIVER answers ``partner.profile_response`` and whose
    sessions SENDER answers charging preferences with ``partner.preferences_response``."""
    partner = hub.connect_partner([role("CPO", "IN", pid)], modules=WITH_PROFILES)
    partner.profile_response = envelope(RESPONSE)
    partner.preferences_response = envelope("ACCEPTED")
    original = partner.answer

    def answer(record):
        if record.path.startswith(PROFILES_AT):
            return partner.profile_response
        if record.path.endswith("/charging_preferences"):
            return partner.preferences_response
        return original(record)

    partner.answer = answer
    return partner


def with_session(hub, cpo_partner, session_id=SESSION, emsp=("IN", "EMP")):
    """The CPO pushes a session of ``emsp``; returns once the hub's views know it."""
    body = ex.session(id=session_id, cdr_token=ex.cdr_token(country_code=emsp[0], party_id=emsp[1]))
    answer = Cpo(hub, cpo_partner).push("PUT", f"sessions/receiver/IN/ECP/{session_id}", body)
    assert answer.json()["status_code"] == 1000, answer.text
    if hub.ctx is not None:
        assert wait_until(lambda: session_owners(hub.ctx.app.pool, session_id, emsp)), "session never projected"
        return
    with psycopg.connect(hub.settings.database_url, autocommit=True) as conn:  # a hub in other processes
        conn.execute(f'SET search_path TO "{hub.settings.database_schema}"')
        assert wait_until(lambda: conn.execute(
            "SELECT 1 FROM view_objects WHERE module = 'sessions' AND object_id = %s",
            (session_id.upper(),)).fetchone()), "session never projected"


def call(hub, partner, method, path, pid="EMP", to=None, correlation=None, **kw):
    headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": pid,
               "X-Correlation-ID": correlation or str(uuid.uuid4())}
    if to:
        headers.update({"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]})
    return hub.call(method, f"/ocpi/2.2.1/{path}", partner.hub_token, headers=headers, **kw)


def own_url(partner) -> str:
    return f"{partner.base}/results/{uuid.uuid4().hex[:10]}"


def test_get_put_delete_each_relayed_and_their_results_delivered(hub, worker, settings):
    cpo = answering_cpo(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")], modules=WITH_PROFILES)
    try:
        # The hub's version details list the module with both interface roles.
        details = hub.call("GET", "/ocpi/2.2.1", emsp.hub_token).json()["data"]["endpoints"]
        assert {(e["role"], e["url"]) for e in details if e["identifier"] == "chargingprofiles"} == {
            ("SENDER", settings.module_url("chargingprofiles/sender") + "/"),
            ("RECEIVER", settings.module_url("chargingprofiles/receiver") + "/")}
        with_session(hub, cpo)
        results = {"GET": {"result": "ACCEPTED", "profile": ACTIVE}, "PUT": {"result": "ACCEPTED"},
                   "DELETE": {"result": "UNKNOWN"}}
        for method, headers_on_result in (("GET", True), ("PUT", False), ("DELETE", True)):
            url, correlation = own_url(emsp), str(uuid.uuid4())
            path = f"chargingprofiles/receiver/{SESSION}"
            if method == "PUT":
                answer = call(hub, emsp, "PUT", path, correlation=correlation,
                              json={"charging_profile": PROFILE, "response_url": url})
            else:
                params = {"response_url": url, **({"duration": "3600"} if method == "GET" else {})}
                answer = call(hub, emsp, method, path, correlation=correlation, params=params)
            # The eMSP gets the CPO's ChargingProfileResponse unchanged, from the CPO.
            assert answer.status_code == 200, answer.text
            assert answer.json()["status_code"] == 1000 and answer.json()["data"] == RESPONSE
            assert answer.headers["OCPI-from-party-id"] == "ECP"

            # The CPO got the call for the session (found by the session, no OCPI-to) with the
            # hub's response_url instead of the eMSP's.
            got = cpo.requests_to(PROFILES_AT + SESSION, method)[-1]
            assert got.header("OCPI-from-party-id") == "EMP" and got.header("OCPI-to-party-id") == "ECP"
            assert got.header("X-Correlation-ID") == correlation
            if method == "PUT":
                hub_url = got.body["response_url"]
                assert got.body["charging_profile"] == PROFILE
            else:
                query = parse_qs(got.query)
                hub_url = query["response_url"][0]
                assert query.get("duration") == (["3600"] if method == "GET" else None)
            assert hub_url.startswith(settings.module_url("chargingprofiles/sender/results/"))
            assert url not in str(got.body) + got.query

            # The CPO posts its result to the hub (with or without routing headers);
            # the eMSP receives it at its own response_url, from the CPO.
            headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP"} if headers_on_result else {}
            posted = hub.call("POST", hub_url, cpo.hub_token, json=results[method], headers=headers)
            assert posted.status_code == 200 and posted.json()["status_code"] == 1000, posted.text
            own_path = url.removeprefix(emsp.base)
            delivered = emsp.wait_for(lambda r, p=own_path: r.path == p and r.method == "POST")
            assert delivered, f"{method}: the eMSP received no result"
            assert delivered[0].body == results[method]
            assert delivered[0].header("OCPI-from-party-id") == "ECP"
            assert delivered[0].header("OCPI-to-party-id") == "EMP"
            assert delivered[0].header("X-Correlation-ID") == correlation
            assert delivered[0].token == emsp.token_for_hub

        # The last exchange, traced under the eMSP's X-Correlation-ID, without the capability.
        settle(worker)
        trace = run_hub(settings, "audit", "trace", correlation, "--json").stdout
        steps = [s["step"] for s in json.loads(trace)]
        assert steps[:4] == ["received", "profile request stored", "forwarded", "profile answered"], steps
        assert steps[4:] == ["received", "result received", "delivered"], steps  # the CPO's POST of the result
        assert hub_url.rsplit("/", 1)[1] not in trace

        # Only the CPO the request went to may post a result: not the eMSP, with or without headers.
        refused = call(hub, emsp, "POST", hub_url.split("/ocpi/2.2.1/", 1)[1], json={"result": "ACCEPTED"})
        assert refused.json()["status_code"] == 2001
        refused = hub.call("POST", hub_url, emsp.hub_token, json={"result": "ACCEPTED"})
        assert refused.json()["status_code"] == 2001 and "IN/ECP" in refused.json()["status_message"]
        # A result that is no ClearProfileResult, and a URL the hub never gave out.
        bad = hub.call("POST", hub_url, cpo.hub_token, json={"result": "MAYBE"})
        assert bad.json()["status_code"] == 2001 and "result" in bad.json()["status_message"]
        unknown = hub.call("POST", hub_url[:-4] + "xxxx", cpo.hub_token, json={"result": "ACCEPTED"})
        assert unknown.json()["status_code"] == 2001
    finally:
        cpo.stop()
        emsp.stop()


def test_unsolicited_active_profile_goes_to_the_session_owner(hub, worker):
    cpo = answering_cpo(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")], modules=WITH_PROFILES)
    other = hub.connect_partner([role("EMSP", "IN", "EM2")], modules=WITH_PROFILES)
    try:
        with_session(hub, cpo)
        path = f"/ocpi/2.2.1/chargingprofiles/sender/{SESSION}"
        # The eMSP's first answer is an HTTP 503: the hub keeps the update and tries again.
        original, failed = emsp.answer, []

        def answer(record):
            if record.path == path and not failed:
                failed.append(record)
                return 503, envelope(None, 3000, "busy")
            return original(record)

        emsp.answer = answer
        correlation = str(uuid.uuid4())
        sent = call(hub, cpo, "PUT", f"chargingprofiles/sender/{SESSION}", pid="ECP", json=ACTIVE,
                    correlation=correlation)
        assert sent.status_code == 200 and sent.json()["status_code"] == 1000, sent.text
        delivered = emsp.wait_for(lambda r: r.path == path and r.method == "PUT" and bool(failed)
                                   and r is not failed[0])
        assert failed and delivered and delivered[0].body == failed[0].body == ACTIVE
        assert delivered[0].header("OCPI-from-party-id") == "ECP"
        assert delivered[0].header("X-Correlation-ID") == correlation
        assert not other.requests_to("/ocpi/2.2.1/chargingprofiles")
        # Two more changes of the same session: each delivered (none merged away), in order.
        later = [{**ACTIVE, "start_date_time": f"2024-03-15T05:2{i}:00Z"} for i in (1, 2)]
        for body in later:
            assert call(hub, cpo, "PUT", f"chargingprofiles/sender/{SESSION}", pid="ECP",
                        json=body).json()["status_code"] == 1000
        assert wait_until(lambda: len(emsp.requests_to(path, "PUT")) == 4)
        assert [r.body for r in emsp.requests_to(path, "PUT")][2:] == later

        # No session of this CPO with that id: 4001, nothing stored or sent.
        unknown = call(hub, cpo, "PUT", "chargingprofiles/sender/NO-SUCH-SESSION", pid="ECP", json=ACTIVE)
        assert unknown.status_code == 200 and unknown.json()["status_code"] == 4001
        # Not an ActiveChargingProfile: 2001 naming the field.
        bad = call(hub, cpo, "PUT", f"chargingprofiles/sender/{SESSION}", pid="ECP",
                   json={"charging_profile": PROFILE})
        assert bad.json()["status_code"] == 2001 and "start_date_time" in bad.json()["status_message"]
    finally:
        for partner in (cpo, emsp, other):
            partner.stop()


def test_an_scsp_sets_a_profile_within_the_routing_rules(hub, worker, settings):
    cpo = answering_cpo(hub)
    scsp = hub.connect_partner([role("SCSP", "IN", "SCP")], modules=WITH_PROFILES)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")], modules=WITH_PROFILES)
    try:
        with_session(hub, cpo)  # an eMSP's session: the SCSP manages its charging
        url = own_url(scsp)
        answer = call(hub, scsp, "PUT", f"chargingprofiles/receiver/{SESSION}", pid="SCP",
                      json={"charging_profile": PROFILE, "response_url": url})
        assert answer.json()["status_code"] == 1000 and answer.json()["data"] == RESPONSE, answer.text
        got = cpo.requests_to(PROFILES_AT + SESSION, "PUT")[-1]
        assert got.header("OCPI-from-party-id") == "SCP"
        posted = hub.call("POST", got.body["response_url"], cpo.hub_token, json={"result": "REJECTED"})
        assert posted.json()["status_code"] == 1000
        delivered = scsp.wait_for(lambda r: r.path == url.removeprefix(scsp.base))
        assert delivered and delivered[0].body == {"result": "REJECTED"}

        run_hub(settings, "routing", "deny", "IN/ECP", "IN/SCP", "--module", "chargingprofiles")
        refused = call(hub, scsp, "PUT", f"chargingprofiles/receiver/{SESSION}", pid="SCP",
                       json={"charging_profile": PROFILE, "response_url": own_url(scsp)})
        assert refused.status_code == 200 and refused.json()["status_code"] == 4000
        assert "refused" in refused.json()["status_message"]
        assert len(cpo.requests_to(PROFILES_AT + SESSION, "PUT")) == 1  # never reached the CPO
    finally:
        for partner in (cpo, scsp, emsp):
            partner.stop()


def test_hub_errors(hub, worker):
    cpo = answering_cpo(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")], modules=WITH_PROFILES)
    try:
        with_session(hub, cpo)
        params = {"duration": "600", "response_url": own_url(emsp)}
        # No session with this id among the eMSP's: 4001.
        unknown = call(hub, emsp, "GET", "chargingprofiles/receiver/NO-SUCH", params=params)
        assert unknown.status_code == 200 and unknown.json()["status_code"] == 4001
        assert "pushed session NO-SUCH" in unknown.json()["status_message"]
        # Addressed to a party the hub does not know: 4001.
        nobody = call(hub, emsp, "GET", f"chargingprofiles/receiver/{SESSION}", params=params, to=("IN", "XXX"))
        assert nobody.json()["status_code"] == 4001
        # A GET without duration, a response_url that is no URL: 2001 naming the field.
        no_duration = call(hub, emsp, "GET", f"chargingprofiles/receiver/{SESSION}",
                           params={"response_url": own_url(emsp)})
        assert no_duration.json()["status_code"] == 2001 and "duration" in no_duration.json()["status_message"]
        bad_url = call(hub, emsp, "DELETE", f"chargingprofiles/receiver/{SESSION}",
                       params={"response_url": "not a url"})
        assert bad_url.json()["status_code"] == 2001 and "response_url" in bad_url.json()["status_message"]
        # The CPO answers after the hub's timeout (3 s in tests): 4002. Its result, posted
        # within the margin, still reaches the eMSP.
        cpo.delay = 3.5
        late_url = own_url(emsp)
        slow = call(hub, emsp, "DELETE", f"chargingprofiles/receiver/{SESSION}", params={"response_url": late_url})
        assert slow.status_code == 200 and slow.json()["status_code"] == 4002, slow.text
        cpo.delay = 0
        hub_url = parse_qs(cpo.requests_to(PROFILES_AT + SESSION, "DELETE")[-1].query)["response_url"][0]
        assert hub.call("POST", hub_url, cpo.hub_token, json={"result": "ACCEPTED"}).json()["status_code"] == 1000
        assert emsp.wait_for(lambda r: r.path == late_url.removeprefix(emsp.base))
        # The CPO cannot be reached: 4003, and the same for charging preferences.
        cpo.stop()
        gone = call(hub, emsp, "GET", f"chargingprofiles/receiver/{SESSION}", params=params)
        assert gone.status_code == 200 and gone.json()["status_code"] == 4003
        gone = call(hub, emsp, "PUT", f"sessions/sender/{SESSION}/charging_preferences", json=PREFERENCES)
        assert gone.status_code == 200 and gone.json()["status_code"] == 4003
    finally:
        cpo.stop()
        emsp.stop()


def test_charging_preferences_relayed_and_answered(hub, worker, settings):
    cpo = answering_cpo(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        with_session(hub, cpo)
        correlation = str(uuid.uuid4())
        answer = call(hub, emsp, "PUT", f"sessions/sender/{SESSION}/charging_preferences", json=PREFERENCES,
                      correlation=correlation)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status_code"] == 1000 and answer.json()["data"] == "ACCEPTED"
        assert answer.headers["OCPI-from-party-id"] == "ECP"
        got = cpo.requests_to(f"/ocpi/2.2.1/sessions/sender/{SESSION}/charging_preferences", "PUT")
        assert len(got) == 1 and got[0].body == PREFERENCES
        assert got[0].header("OCPI-from-party-id") == "EMP" and got[0].header("X-Correlation-ID") == correlation

        # The CPO's other answers come back as they are.
        cpo.preferences_response = envelope("DEPARTURE_REQUIRED")
        answer = call(hub, emsp, "PUT", f"sessions/sender/{SESSION}/charging_preferences", json=PREFERENCES,
                      to=("IN", "ECP"))
        assert answer.json()["data"] == "DEPARTURE_REQUIRED"
        # Not ChargingPreferences: 2001 naming the field, nothing forwarded.
        bad = call(hub, emsp, "PUT", f"sessions/sender/{SESSION}/charging_preferences",
                   json={"profile_type": "FASTEST_EVER"})
        assert bad.json()["status_code"] == 2001 and "profile_type" in bad.json()["status_message"]
        # Someone else's (unknown) session: 4001; a rule denying sessions: 4000.
        unknown = call(hub, emsp, "PUT", "sessions/sender/OTHER-SES/charging_preferences", json=PREFERENCES)
        assert unknown.json()["status_code"] == 4001
        run_hub(settings, "routing", "deny", "IN/ECP", "IN/EMP", "--module", "sessions")
        denied = call(hub, emsp, "PUT", f"sessions/sender/{SESSION}/charging_preferences", json=PREFERENCES)
        assert denied.json()["status_code"] == 4000
        assert len(cpo.requests_to("/ocpi/2.2.1/sessions/sender/")) == 2
    finally:
        cpo.stop()
        emsp.stop()
