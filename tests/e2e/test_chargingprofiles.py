"""ChargingProfiles and charging preferences through real gunicorn and a separate worker
process: an eMSP's and an SCSP's calls relayed to the CPO, each result back at the caller's
own response_url, the CPO's changed profile at the session's eMSP."""

from __future__ import annotations

from urllib.parse import parse_qs

from tests.integration.test_chargingprofiles import (
    ACTIVE,
    PREFERENCES,
    PROFILE,
    PROFILES_AT,
    RESPONSE,
    SESSION,
    WITH_PROFILES,
    answering_cpo,
    call,
    own_url,
    with_session,
)
from tests.partner import role


def test_profiles_and_preferences_through_gunicorn(gunicorn_hub):
    hub = gunicorn_hub
    cpo = answering_cpo(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")], modules=WITH_PROFILES)
    scsp = hub.connect_partner([role("SCSP", "IN", "SCP")], modules=WITH_PROFILES)
    try:
        with_session(hub, cpo)
        calls = [(emsp, "EMP", "GET", {"params": {"duration": "900"}}),
                 (scsp, "SCP", "PUT", {"json": {"charging_profile": PROFILE}}),
                 (emsp, "EMP", "DELETE", {"params": {}})]
        for caller, pid, method, kw in calls:
            url = own_url(caller)
            if "json" in kw:
                kw = {"json": {**kw["json"], "response_url": url}}
            else:
                kw = {"params": {**kw["params"], "response_url": url}}
            answer = call(hub, caller, method, f"chargingprofiles/receiver/{SESSION}", pid=pid, **kw)
            assert answer.json()["status_code"] == 1000 and answer.json()["data"] == RESPONSE, answer.text
            got = cpo.requests_to(PROFILES_AT + SESSION, method)[-1]
            hub_url = got.body["response_url"] if method == "PUT" else parse_qs(got.query)["response_url"][0]
            posted = hub.call("POST", hub_url, cpo.hub_token, json={"result": "ACCEPTED"})
            assert posted.json()["status_code"] == 1000, posted.text
            delivered = caller.wait_for(lambda r, p=url.removeprefix(caller.base): r.path == p)
            assert delivered and delivered[0].body == {"result": "ACCEPTED"}
            assert delivered[0].header("OCPI-from-party-id") == "ECP"

        sent = call(hub, cpo, "PUT", f"chargingprofiles/sender/{SESSION}", pid="ECP", json=ACTIVE)
        assert sent.json()["status_code"] == 1000, sent.text
        assert emsp.wait_for(lambda r: r.path == f"/ocpi/2.2.1/chargingprofiles/sender/{SESSION}")

        answer = call(hub, emsp, "PUT", f"sessions/sender/{SESSION}/charging_preferences", json=PREFERENCES)
        assert answer.json()["data"] == "ACCEPTED", answer.text
    finally:
        for partner in (cpo, emsp, scsp):
            partner.stop()
