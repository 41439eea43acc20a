"""The credentials handshake, as a partner platform experiences it."""

from __future__ import annotations

import base64

from tests.conftest import wait_until
from tests.partner import Partner, role


def test_handshake_under_gunicorn(gunicorn_hub):
    hub = gunicorn_hub
    token_a = hub.onboard("CPO", "IN", "ECP", "Example CPO")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP", "Example CPO")]).start()
    try:
        # Token A: versions and details only.
        versions = hub.call("GET", "/ocpi/versions", token_a)
        assert versions.status_code == 200
        assert versions.json()["data"] == [{"version": "2.2.1", "url": f"{hub.url}/ocpi/2.2.1"}]
        details = hub.call("GET", "/ocpi/2.2.1", token_a).json()["data"]
        assert details["version"] == "2.2.1"
        identifiers = {(e["identifier"], e["role"]) for e in details["endpoints"]}
        assert ("credentials", "SENDER") in identifiers and ("hubclientinfo", "SENDER") in identifiers
        assert all(e["url"].startswith(f"{hub.url}/ocpi/2.2.1/") for e in details["endpoints"])
        assert hub.call("GET", "/ocpi/2.2.1/hubclientinfo", token_a).status_code == 401

        answer = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials())
        body = answer.json()
        assert answer.status_code == 200 and body["status_code"] == 1000, body
        token_c = body["data"]["token"]
        assert token_c != token_a and len(token_c) >= 43
        assert body["data"]["url"] == f"{hub.url}/ocpi/versions"
        assert body["data"]["roles"] == [{"role": "HUB", "business_details": {"name": "ChargeIndia Hub"},
                                          "party_id": "CIH", "country_code": "IN"}]
        # The hub fetched our versions and details with our token B, Base64-encoded.
        fetched = partner.requests_to("/ocpi/")
        assert [r.path for r in fetched[:2]] == ["/ocpi/versions", "/ocpi/2.2.1"]
        expected = "Token " + base64.b64encode(partner.token_for_hub.encode()).decode()
        assert all(r.header("Authorization") == expected for r in fetched[:2])

        # Token A is dead, token C works everywhere.
        assert hub.call("GET", "/ocpi/versions", token_a).status_code == 401
        assert hub.call("GET", "/ocpi/2.2.1/hubclientinfo", token_c).json()["status_code"] == 1000
        got = hub.call("GET", "/ocpi/2.2.1/credentials", token_c).json()
        assert got["data"]["token"] == token_c
        # Registering twice is refused.
        again = hub.call("POST", "/ocpi/2.2.1/credentials", token_c, json=partner.credentials())
        assert again.status_code == 405 and again.json()["status_code"] == 2000

        # PUT rotates: new token C, old one dies; the hub re-fetched our endpoints with the new B.
        before = len(partner.requests_to("/ocpi/versions"))
        partner.token_for_hub = "rotated-token-b-" + "x" * 20
        put = hub.call("PUT", "/ocpi/2.2.1/credentials", token_c, json=partner.credentials())
        assert put.status_code == 200 and put.json()["status_code"] == 1000, put.json()
        new_c = put.json()["data"]["token"]
        assert new_c != token_c
        assert len(partner.requests_to("/ocpi/versions")) == before + 1
        assert partner.requests_to("/ocpi/versions")[-1].token == partner.token_for_hub
        assert hub.call("GET", "/ocpi/versions", token_c).status_code == 401
        assert hub.call("GET", "/ocpi/versions", new_c).status_code == 200

        # DELETE unregisters; the token stops working and the party is SUSPENDED.
        deleted = hub.call("DELETE", "/ocpi/2.2.1/credentials", new_c)
        assert deleted.status_code == 200 and deleted.json()["status_code"] == 1000
        assert hub.call("GET", "/ocpi/versions", new_c).status_code == 401
        assert hub.call("DELETE", "/ocpi/2.2.1/credentials", new_c).status_code == 401
    finally:
        partner.stop()


def test_wrong_state_answers_405(hub):
    token_a = hub.onboard("EMSP", "IN", "EMP")["token_a"]
    partner = Partner(roles=[role("EMSP", "IN", "EMP")]).start()
    try:
        put = hub.call("PUT", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials())
        assert put.status_code == 405 and put.json()["status_code"] == 2000
        delete = hub.call("DELETE", "/ocpi/2.2.1/credentials", token_a)
        assert delete.status_code == 405
        # GET works with token A and echoes it.
        assert hub.call("GET", "/ocpi/2.2.1/credentials", token_a).json()["data"]["token"] == token_a
    finally:
        partner.stop()


def test_partner_versions_failing_gives_3001_and_no_token(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")], fail_with=500).start()
    try:
        answer = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials())
        body = answer.json()
        assert answer.status_code == 200 and body["status_code"] == 3001, body
        assert "data" not in body or body["data"] is None
        # Still invited: token A keeps working, nothing registered.
        assert hub.call("GET", "/ocpi/versions", token_a).status_code == 200
    finally:
        partner.stop()


def test_failed_update_leaves_the_registration_as_it_was(hub):
    """A credentials PUT the hub cannot complete (3001) changes nothing: the old
    token C keeps working and no new token is issued."""
    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        token_c = partner.hub_token
        old_b = partner.token_for_hub
        partner.token_for_hub = "rotated-token-b-" + "y" * 20
        partner.fail_with = 500
        put = hub.call("PUT", "/ocpi/2.2.1/credentials", token_c, json=partner.credentials())
        assert put.status_code == 200 and put.json()["status_code"] == 3001, put.text
        assert "data" not in put.json() or put.json()["data"] is None
        partner.fail_with = None
        assert hub.call("GET", "/ocpi/2.2.1/credentials", token_c).json()["data"]["token"] == token_c
        assert hub.call("GET", "/ocpi/2.2.1/hubclientinfo", token_c).json()["status_code"] == 1000
        # A later PUT works as usual, from the registration as it was.
        partner.token_for_hub = old_b
        again = hub.call("PUT", "/ocpi/2.2.1/credentials", token_c, json=partner.credentials())
        assert again.json()["status_code"] == 1000, again.text
        assert hub.call("GET", "/ocpi/versions", token_c).status_code == 401
        assert hub.call("GET", "/ocpi/versions", again.json()["data"]["token"]).status_code == 200
    finally:
        partner.stop()


def test_partner_unreachable_gives_3001(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")])  # never started
    body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials()).json()
    assert body["status_code"] == 3001


def test_no_common_version_gives_3002(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    partner.version_list = [{"version": "2.1.1", "url": f"{partner.base}/ocpi/2.1.1"}]
    try:
        body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials()).json()
        assert body["status_code"] == 3002 and "2.2.1" in body["status_message"]
    finally:
        partner.stop()


def test_missing_credentials_endpoint_gives_3003(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")], modules=("locations",)).start()
    try:
        body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials()).json()
        assert body["status_code"] == 3003
    finally:
        partner.stop()


def test_invalid_credentials_body_names_the_field(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")])
    bad = partner.credentials()
    bad["roles"][0]["role"] = "CHARGER"
    body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=bad).json()
    assert body["status_code"] == 2001 and "roles[0].role" in body["status_message"]
    missing = partner.credentials()
    del missing["url"]
    body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=missing).json()
    assert body["status_code"] == 2001 and "url" in body["status_message"]
    # The token never shows up in an error message.
    assert partner.token_for_hub not in body["status_message"]


def test_roles_must_include_the_onboarded_party_and_not_someone_elses(hub):
    hub.connect_partner([role("CPO", "IN", "OWN")])
    token_a = hub.onboard("EMSP", "IN", "EMP")["token_a"]
    other = Partner(roles=[role("EMSP", "IN", "ZZZ")])
    body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=other.credentials()).json()
    assert body["status_code"] == 2001 and "IN/EMP/EMSP" in body["status_message"]
    stealing = Partner(roles=[role("EMSP", "IN", "EMP"), role("CPO", "IN", "OWN")])
    body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=stealing.credentials()).json()
    assert body["status_code"] == 2001 and "roles[1]" in body["status_message"]


def test_one_platform_with_several_roles(hub):
    partner = hub.connect_partner([role("CPO", "IN", "MUL"), role("EMSP", "IN", "MUL"),
                                   role("CPO", "IN", "MU2")])
    try:
        listed = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token).json()["data"]
        assert {(c["country_code"], c["party_id"], c["role"], c["status"]) for c in listed} == {
            ("IN", "MUL", "CPO", "CONNECTED"), ("IN", "MUL", "EMSP", "CONNECTED"),
            ("IN", "MU2", "CPO", "CONNECTED")}
    finally:
        partner.stop()


def test_hub_starts_the_handshake(hub):
    """hub parties connect: the hub registers with a partner that issued it a token A."""
    from hub.infra.client import OcpiClient
    from hub.infra.eventlog import EventLog
    from hub.services.application import Hub
    from hub.services.registration import Registration
    from projections import all_projections

    partner = Partner(roles=[role("EMSP", "IN", "OUT", "Outbound eMSP")]).start()

    # The partner calls the hub back with the token B it receives, while the POST is in flight.
    original = partner.answer

    def answer(record):
        if record.path.startswith("/ocpi/2.2.1/credentials") and record.method == "POST":
            token_b = record.body["token"]
            callback = hub.call("GET", "/ocpi/versions", token_b)
            assert callback.status_code == 200
        return original(record)

    partner.answer = answer
    app = Hub(hub.settings, hub.settings.database_url, pool_size=2)
    client = OcpiClient()
    try:
        log = EventLog(app)

        def catch_up(_position):
            for projection in all_projections():
                log.catch_up(projection)

        platform, parties = Registration(app, client).connect(partner.versions_url, "their-token-a", catch_up)
        assert [p.key for p in parties] == ["IN/OUT/EMSP"] and parties[0].status == "CONNECTED"
        assert partner.requests_to("/ocpi/versions")[0].token == "their-token-a"
        token_b = partner.hub_token
        assert hub.call("GET", "/ocpi/2.2.1/hubclientinfo", token_b).json()["status_code"] == 1000
        assert app.cipher.decrypt(app.platform(platform.id).partner_token) == partner.token_for_hub
    finally:
        client.close()
        app.close()
        partner.stop()


def test_clientinfo_pushed_on_registration_and_suspension(hub, worker):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        # The eMSP hears that the CPO is connected, at the ClientInfo URL of the CPO's ids.
        pushed = emsp.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/IN/ECP")
                               and isinstance(r.body, dict) and r.body.get("status") == "CONNECTED")
        assert pushed, [(r.method, r.path) for r in emsp.received]
        put = pushed[0]
        assert put.path == "/ocpi/2.2.1/hubclientinfo/receiver/IN/ECP"
        assert put.body["role"] == "CPO" and put.body["country_code"] == "IN"
        assert put.token == emsp.token_for_hub
        assert not any(h.lower().startswith("ocpi-") for h in put.headers)
        assert put.header("X-Request-ID") and put.header("X-Correlation-ID")
        # The newly registered CPO gets the full current list (the eMSP).
        assert cpo.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/IN/EMP"))
        # Suspension by the operator reaches the others.
        from hub.services.application import Hub, UnitOfWork

        app = Hub(hub.settings, hub.settings.database_url, pool_size=1)
        party = app.party("IN", "ECP", "CPO")
        party.suspend("contract ended")
        uow = UnitOfWork(app)
        uow.add(party)
        uow.commit()
        app.close()
        assert emsp.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/IN/ECP")
                             and r.body.get("status") == "SUSPENDED")
        # A suspended party's own token is refused on functional and hubclientinfo modules,
        # while credentials stay usable (to rotate or unregister).
        assert wait_until(lambda: hub.call("GET", "/ocpi/2.2.1/hubclientinfo", cpo.hub_token).status_code == 401)
        assert hub.call("GET", "/ocpi/2.2.1/credentials", cpo.hub_token).status_code == 200
    finally:
        emsp.stop()
        cpo.stop()


def test_partner_calls_honour_a_proxy_only_when_one_is_configured(monkeypatch, tmp_path):
    """Without proxy settings calls go straight to the partner; with HTTP_PROXY they go to the
    proxy (here one that is down, so the call fails) unless NO_PROXY names the host; a CA bundle
    is taken from the environment; a .netrc never replaces the Token header."""
    from hub.infra.client import OcpiClient, PartnerUnreachable
    from tests.partner import free_port

    partner = Partner(roles=[role("EMSP", "IN", "NRC")])
    partner.start()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "partners-ca.pem"))
        direct = OcpiClient()
        try:
            assert direct.request("GET", partner.versions_url, "the-token").http_status == 200
            # The CA bundle is taken once; no proxy setting, so no rescan of the environment.
            assert direct.session.verify == str(tmp_path / "partners-ca.pem")
            assert direct.session.trust_env is False
        finally:
            direct.close()
        assert partner.requests_to("/ocpi/versions")[-1].token == "the-token"

        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        proxied = OcpiClient()
        try:
            try:
                proxied.request("GET", partner.versions_url, "the-token")
                raise AssertionError("the call did not go through the configured proxy")
            except PartnerUnreachable:
                pass
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            assert proxied.request("GET", partner.versions_url, "other-token").http_status == 200
        finally:
            proxied.close()
        assert partner.requests_to("/ocpi/versions")[-1].token == "other-token"
    finally:
        partner.stop()
