"""Interop defects of issue 14 (item 5): what real CPOs and eMSPs met, each pinned by a test.

Real PostgreSQL, the hub over real HTTP, partner servers on 127.0.0.1 (tests/partner.py).
"""

from __future__ import annotations

import orjson

from tests import ocpi_examples as ex
from tests.conftest import wait_until
from tests.integration.test_commands import ACCEPTED, SENT_TO, body_of, cpo_answering, emsp_url, send
from tests.integration.test_forwarding import Cpo, stamp
from tests.integration.test_observability import scrape
from tests.integration.test_tokens import authorize, authorize_answers, emsp_answering
from tests.partner import envelope, role


# A receiver refusing the hub's credentials -------------------------------------------------
def test_a_receivers_401_or_403_is_a_hub_error_4003_counted_per_partner(hub):
    cpo = cpo_answering(hub)
    emsp = emsp_answering(hub)
    try:
        # The CPO refuses the hub's token on a command, with an envelope.
        cpo.command_response = (401, envelope(None, 2000, "unknown token"))
        got = send(hub, emsp, "START_SESSION", body_of("START_SESSION", emsp_url(emsp, "S")))
        assert cpo.requests_to(SENT_TO + "START_SESSION", "POST"), "the CPO was not called"
        assert got.status_code == 200, got.text
        assert got.json()["status_code"] == 4003
        assert got.json()["status_message"] == "the receiver IN/ECP/CPO refused the hub's credentials (HTTP 401)"
        # The eMSP refuses an authorization with 403 and no envelope at all.
        authorize_answers(emsp, lambda record: (403, b"Forbidden"))
        got = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert got.status_code == 200 and got.json()["status_code"] == 4003, got.text
        assert "IN/EMP/EMSP refused the hub's credentials (HTTP 403)" in got.json()["status_message"]
        # An answer that is no refusal still passes through.
        cpo.command_response = envelope(ACCEPTED)
        assert send(hub, emsp, "STOP_SESSION", body_of("STOP_SESSION", emsp_url(emsp, "T"))).json()[
            "status_code"] == 1000
        # Operators see the refusals per partner.
        counted = scrape(hub.url)
        assert counted.value("hub_partner_credentials_refused_total", party="IN/ECP/CPO") == 1
        assert counted.value("hub_partner_credentials_refused_total", party="IN/EMP/EMSP") == 1
    finally:
        cpo.stop()
        emsp.stop()


# Request and correlation ids ---------------------------------------------------------------
def test_request_and_correlation_ids_are_echoed_as_sent(hub):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        for value in ["a" * 255, "req 1 / with spaces; and=signs", "x", "ÄÖÜ-é", "{weird}:[ids]#1"]:
            for path, token in [("/ocpi/2.2.1/locations/sender", emsp.hub_token),
                                ("/ocpi/2.2.1/locations/sender", "not a token"),
                                ("/ocpi/2.2.1/no-such-module", emsp.hub_token)]:
                answer = hub.call("GET", path, token, headers={
                    "X-Request-ID": value.encode().decode("latin-1"),
                    "X-Correlation-ID": value[::-1].encode().decode("latin-1"),
                    "OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP"})
                assert answer.headers["X-Request-ID"] == value.encode().decode("latin-1"), (path, value)
                assert answer.headers["X-Correlation-ID"] == value[::-1].encode().decode("latin-1")
        # Too long or not printable: the hub gives its own.
        answer = hub.call("GET", "/ocpi/2.2.1/locations/sender", emsp.hub_token,
                          headers={"X-Request-ID": "a" * 256})
        assert answer.headers["X-Request-ID"] != "a" * 256 and len(answer.headers["X-Request-ID"]) == 36
    finally:
        emsp.stop()


# Partners whose URLs end in '/' ----------------------------------------------------------
def test_a_partner_whose_urls_end_in_a_slash_receives_every_kind_of_push(hub, worker):
    """URLs are called exactly as published: the partner answers 307 to the URL without its '/'."""
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")], slash_urls=True)
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")], slash_urls=True)
    cpo = Cpo(hub, cpo_partner)
    emsp_pusher = Cpo(hub, emsp, pid="EMP")
    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", ex.location(id="LOC1", last_updated=stamp(1))
                        ).json()["status_code"] == 1000
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/LOC1",
                        {"name": "renamed", "last_updated": stamp(2)}).json()["status_code"] == 1000
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/TRF1", ex.tariff(id="TRF1", last_updated=stamp(1))
                        ).json()["status_code"] == 1000
        assert cpo.push("DELETE", "tariffs/receiver/IN/ECP/TRF1").json()["status_code"] == 1000
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/SES1", ex.session(id="SES1", last_updated=stamp(1)),
                        to=("IN", "EMP")).json()["status_code"] == 1000
        assert cpo.push("PATCH", "sessions/receiver/IN/ECP/SES1", {"kwh": 3, "last_updated": stamp(2)},
                        to=("IN", "EMP")).json()["status_code"] == 1000
        assert cpo.push("POST", "cdrs/receiver", ex.cdr(id="CDR1")).json()["status_code"] == 1000
        assert emsp_pusher.push("PUT", "tokens/receiver/IN/EMP/TOK1", ex.token(uid="TOK1")
                                ).json()["status_code"] == 1000
        base = "/ocpi/2.2.1/{}/receiver/"
        expected = {
            ("emsp", "PUT", base.format("locations") + "IN/ECP/LOC1"),
            ("emsp", "PATCH", base.format("locations") + "IN/ECP/LOC1"),
            ("emsp", "PUT", base.format("tariffs") + "IN/ECP/TRF1"),
            ("emsp", "DELETE", base.format("tariffs") + "IN/ECP/TRF1"),
            ("emsp", "PUT", base.format("sessions") + "IN/ECP/SES1"),
            ("emsp", "PATCH", base.format("sessions") + "IN/ECP/SES1"),
            ("emsp", "POST", base.format("cdrs")),  # the cdrs URL exactly as published, '/' included
            ("cpo", "PUT", base.format("tokens") + "IN/EMP/TOK1"),
        }

        partners = {"emsp": emsp, "cpo": cpo_partner}

        def arrived():
            return {(p, m, path) for p, m, path in expected
                    if any(r.method == m and r.path == path for r in partners[p].received)}

        assert wait_until(lambda: arrived() == expected, timeout=20), expected - arrived()
        # HubClientInfo pushes too, and nothing was ever sent to a URL without its '/'.
        assert wait_until(lambda: any(r.path.startswith("/ocpi/2.2.1/hubclientinfo/receiver/IN/")
                                      for r in emsp.received))
        for partner in (emsp, cpo_partner):
            assert not [r for r in partner.received if partner._unslashed(r.path)], "a '/' was stripped"
        # Real time: commands and authorization appended to the published URL.
        cpo_partner.answer = (lambda original: lambda r: envelope(ACCEPTED) if r.path.startswith(SENT_TO)
                              else original(r))(cpo_partner.answer)
        got = send(hub, emsp, "START_SESSION", body_of("START_SESSION", emsp_url(emsp, "S")))
        assert got.json()["status_code"] == 1000, got.text
        assert cpo_partner.requests_to(SENT_TO + "START_SESSION", "POST")
        authorize_answers(emsp, lambda r: envelope({"allowed": "ALLOWED", "token": ex.token(uid="TOK1")}))
        assert authorize(hub, cpo_partner, "TOK1", to=("IN", "EMP")).json()["status_code"] == 1000
        assert emsp.requests_to("/ocpi/2.2.1/tokens/sender/TOK1/authorize", "POST")
    finally:
        emsp.stop()
        cpo_partner.stop()


# Directed GETs answered from the store ----------------------------------------------------
def test_a_directed_get_answered_from_the_store_comes_from_the_owner(hub, worker):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = Cpo(hub, hub.connect_partner([role("CPO", "IN", "ECP")]))
    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", ex.location(id="LOC1", last_updated=stamp(1))
                        ).json()["status_code"] == 1000
        directed = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP",
                    "OCPI-to-country-code": "IN", "OCPI-to-party-id": "ECP"}
        assert wait_until(lambda: hub.call("GET", "/ocpi/2.2.1/locations/sender/LOC1", emsp.hub_token,
                                           headers=directed).json()["status_code"] == 1000)
        for path in ("/ocpi/2.2.1/locations/sender/LOC1", "/ocpi/2.2.1/locations/sender",
                     "/ocpi/2.2.1/locations/sender/LOC1/EVSE-BLR-0001-1"):
            answer = hub.call("GET", path, emsp.hub_token, headers=directed)
            assert answer.json()["status_code"] == 1000, answer.text
            assert (answer.headers.get("OCPI-from-country-code"), answer.headers.get("OCPI-from-party-id")) \
                == ("IN", "ECP"), path
            assert (answer.headers.get("OCPI-to-country-code"), answer.headers.get("OCPI-to-party-id")) \
                == ("IN", "EMP"), path
        # A GET addressed to the hub is the hub's answer: no owner's headers.
        answer = hub.call("GET", "/ocpi/2.2.1/locations/sender/LOC1", emsp.hub_token, headers={
            **directed, "OCPI-to-party-id": "CIH"})
        assert answer.json()["status_code"] == 1000 and answer.headers.get("OCPI-from-party-id") != "ECP"
    finally:
        emsp.stop()
        cpo.partner.stop()


# Liberal where it is safe -------------------------------------------------------------------
def push_without_from(hub, partner, path, body):
    return hub.call("PUT", f"/ocpi/2.2.1/{path}", partner.hub_token, json=body,
                    headers={"OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"})


def test_a_push_without_ocpi_from_comes_from_the_platforms_one_cpo(hub, worker, caplog):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    single = hub.connect_partner([role("CPO", "IN", "ECP"), role("EMSP", "IN", "ECE")])
    double = hub.connect_partner([role("CPO", "IN", "CPA"), role("CPO", "IN", "CPB")])
    try:
        caplog.set_level("INFO", logger="hub")
        answer = push_without_from(hub, single, "locations/receiver/IN/ECP/LOC1",
                                   ex.location(id="LOC1", last_updated=stamp(1)))
        assert answer.json()["status_code"] == 1000, answer.text
        assert answer.headers["OCPI-to-party-id"] == "ECP"  # the answer goes to the inferred sender
        got = wait_until(lambda: [r for r in emsp.requests_to("/ocpi/2.2.1/locations/receiver/IN/ECP/LOC1")])
        assert got and got[0].body["id"] == "LOC1"
        lines = [r for r in caplog.records if getattr(r, "from_inferred", None) == "platform"]
        assert lines and lines[0].party == "IN/ECP/CPO", "the log does not record the inference"
        # Two CPOs on one connection: which one sent it is not known; nothing is stored.
        answer = push_without_from(hub, double, "locations/receiver/IN/CPA/LOC2",
                                   ex.location(country_code="IN", party_id="CPA", id="LOC2"))
        assert answer.status_code == 200 and answer.json()["status_code"] == 2001
        assert answer.json()["status_message"] == (
            "OCPI-from-country-code: required on locations requests (this connection has several parties"
            " that can send them (IN/CPA, IN/CPB))")
        pulled = hub.call("GET", "/ocpi/2.2.1/locations/sender", emsp.hub_token, headers={
            "OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP",
            "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"}).json()["data"]
        assert [loc["id"] for loc in pulled] == ["LOC1"]
    finally:
        for partner in (emsp, single, double):
            partner.stop()


def test_hub_module_urls_take_ids_appended_with_or_without_a_slash(hub, worker):
    """Published hub URLs end in '/'; a partner that concatenates (with its own '/' or not) reaches
    the same endpoint, an empty path segment tolerated."""
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        versions = hub.call("GET", "/ocpi/versions", cpo.hub_token).json()["data"]
        details = hub.call("GET", versions[0]["url"], cpo.hub_token).json()["data"]
        urls = {(e["identifier"], e["role"]): e["url"] for e in details["endpoints"]}
        assert all(url.endswith("/") for url in urls.values()), urls
        headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP",
                   "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"}
        published = urls[("locations", "RECEIVER")]
        for n, url in enumerate([published + "IN/ECP/LOC1", published + "/IN/ECP/LOC1",
                                 published.rstrip("/") + "/IN/ECP/LOC1"], start=1):
            answer = hub.call("PUT", url, cpo.hub_token, headers=headers,
                              json=ex.location(id="LOC1", last_updated=stamp(n)))
            assert answer.status_code in (200, 201) and answer.json()["status_code"] == 1000, (url, answer.text)
        cdrs = urls[("cdrs", "RECEIVER")]
        for n, url in enumerate([cdrs, cdrs.rstrip("/")], start=1):
            answer = hub.call("POST", url, cpo.hub_token, headers=headers, json=ex.cdr(id=f"CDR{n}"))
            assert answer.json()["status_code"] == 1000, (url, answer.text)
        answer = hub.call("PATCH", published + "/IN/ECP/LOC1/EVSE-BLR-0001-1", cpo.hub_token, headers=headers,
                          json={"status": "CHARGING", "last_updated": stamp(9)})
        assert answer.json()["status_code"] == 1000, answer.text
    finally:
        cpo.stop()
        emsp.stop()


# Results posted to the hub's response_url ---------------------------------------------------
def test_a_command_result_needs_no_routing_headers_but_present_ones_must_match(hub, worker):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    other = hub.connect_partner([role("CPO", "IN", "OTH")])
    emsp2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    try:
        original = emsp_url(emsp, "START_SESSION")
        assert send(hub, emsp, "START_SESSION", body_of("START_SESSION", original)).json()["status_code"] == 1000
        hub_url = cpo.requests_to(SENT_TO + "START_SESSION", "POST")[-1].body["response_url"]
        # Present headers must match: another CPO, or an OCPI-to that is not the eMSP, are refused.
        wrong_to = hub.call("POST", hub_url, cpo.hub_token, json={"result": "ACCEPTED"}, headers={
            "OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP",
            "OCPI-to-country-code": "IN", "OCPI-to-party-id": "EM2"})
        assert wrong_to.json()["status_code"] == 2001, wrong_to.text
        assert "did not send this command" in wrong_to.json()["status_message"]
        stranger = hub.call("POST", hub_url, other.hub_token, json={"result": "ACCEPTED"})
        assert stranger.json()["status_code"] == 2001, stranger.text
        # No routing headers at all: the URL names the exchange.
        bare = hub.call("POST", hub_url, cpo.hub_token, json={"result": "ACCEPTED"})
        assert bare.status_code == 200 and bare.json()["status_code"] == 1000, bare.text
        path = original.removeprefix(emsp.base)
        got = emsp.wait_for(lambda r: r.path == path)
        assert got and got[0].body["result"] == "ACCEPTED"
        assert got[0].header("OCPI-from-party-id") == "ECP" and got[0].header("OCPI-to-party-id") == "EMP"
    finally:
        for partner in (cpo, emsp, other, emsp2):
            partner.stop()


# Command TIMEOUT at the CPO's timeout -------------------------------------------------------
def test_timeout_reaches_the_emsp_at_the_cpos_timeout_and_a_late_result_still_follows(hub, worker, settings):
    """The hub's margin (60 s by default) no longer delays the TIMEOUT: it only keeps the URL open."""
    assert settings.command_result_margin >= 60
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        cpo.command_response = envelope({"result": "ACCEPTED", "timeout": 1})
        original = emsp_url(emsp, "START_SESSION")
        assert send(hub, emsp, "START_SESSION", body_of("START_SESSION", original)).json()["status_code"] == 1000
        hub_url = cpo.requests_to(SENT_TO + "START_SESSION", "POST")[-1].body["response_url"]
        path = original.removeprefix(emsp.base)
        # Well before the margin could pass: the worker's job runs every 2 s.
        told = emsp.wait_for(lambda r: r.path == path, timeout=15)
        assert told and told[0].body["result"] == "TIMEOUT", "no TIMEOUT within the CPO's timeout and slack"
        # The CPO's real result, later, is still relayed.
        late = hub.call("POST", hub_url, cpo.hub_token, json={"result": "ACCEPTED"})
        assert late.json()["status_code"] == 1000, late.text
        assert wait_until(lambda: [r.body["result"] for r in emsp.received if r.path == path]
                          == ["TIMEOUT", "ACCEPTED"])
    finally:
        cpo.stop()
        emsp.stop()


def pending_deliveries(settings) -> int:
    import psycopg

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        return conn.execute("SELECT count(*) FROM hub_deliveries WHERE state = 'PENDING'").fetchone()[0]


def rules_in_force(settings) -> int:
    import psycopg

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        return conn.execute("SELECT count(*) FROM view_routing_rules").fetchone()[0]


# A Location that stops being visible ---------------------------------------------------------
def test_an_emsp_that_stops_seeing_a_location_gets_that_update_once(hub, worker, settings):
    from tests.cli import run_hub

    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo = Cpo(hub, hub.connect_partner([role("CPO", "IN", "ECP")]))
    path = "/ocpi/2.2.1/locations/receiver/IN/ECP/LOC1"

    def got(partner):
        return [(r.method, r.body.get("publish") if isinstance(r.body, dict) else None,
                 r.body.get("name") if isinstance(r.body, dict) else None)
                for r in partner.received if r.path == path]

    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1",
                        ex.location(id="LOC1", name="one", last_updated=stamp(1))).json()["status_code"] == 1000
        assert wait_until(lambda: len(got(em1)) == 1 and len(got(em2)) == 1)
        # A rule now denies EM2: the next update reaches it once, later ones do not.
        run_hub(settings, "routing", "deny", "IN/ECP", "IN/EM2", "--module", "locations")
        assert wait_until(lambda: rules_in_force(settings) == 1)
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/LOC1",
                        {"name": "two", "last_updated": stamp(2)}).json()["status_code"] == 1000
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/LOC1",
                        {"name": "three", "last_updated": stamp(3)}).json()["status_code"] == 1000
        # publish turned false (no publish_allowed_to): EM1 is told once, with that change.
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/LOC1",
                        {"publish": False, "last_updated": stamp(4)}).json()["status_code"] == 1000
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/LOC1",
                        {"name": "five", "last_updated": stamp(5)}).json()["status_code"] == 1000
        # A marker after them: a new Location everyone may see, so the queue has been worked through.
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC9",
                        ex.location(id="LOC9", last_updated=stamp(6))).json()["status_code"] == 1000
        assert wait_until(lambda: em1.requests_to("/ocpi/2.2.1/locations/receiver/IN/ECP/LOC9"))
        assert wait_until(lambda: pending_deliveries(settings) == 0)  # every queued change was sent
        # EM2 got the Location, then once more the change that hid it (the current state), then nothing.
        assert len(got(em2)) == 2 and got(em2)[0][2] == "one" and got(em2)[1][0] == "PUT", got(em2)
        # EM1 got, last, the Location with publish false, and nothing after it.
        em1_seen = got(em1)
        assert em1_seen[-1] == ("PUT", False, em1_seen[-1][2]), em1_seen
        assert [p for _, p, _ in em1_seen].count(False) == 1, em1_seen
        # Visible again (publish true): EM1 gets updates again.
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/LOC1",
                        {"publish": True, "last_updated": stamp(7)}).json()["status_code"] == 1000
        assert wait_until(lambda: got(em1)[-1][1] is True)
        assert len(got(em2)) == 2
    finally:
        for partner in (em1, em2, cpo.partner):
            partner.stop()


# Numbers exactly as sent ---------------------------------------------------------------------
def test_numbers_are_stored_pulled_and_forwarded_exactly_as_sent(hub, worker):
    """Integers beyond 64 bits and decimals with many digits (or a trailing 0) pass the hub unchanged:
    in the bytes the eMSP receives and in the bytes of what it pulls."""
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        tariff = orjson.dumps(ex.tariff(id="TRF1", last_updated=stamp(1))).decode()
        tariff = tariff.replace('"price":18.0', '"price":0.12345678901234567890123', 1) \
            .replace('"step_size":1', '"step_size":123456789012345678901234567890', 1)
        location = orjson.dumps(ex.location(id="LOC1", last_updated=stamp(1))).decode()
        location = location.replace('"percentage":20.5', '"percentage":20.50', 1) \
            .replace('"max_electric_power":60000', '"max_electric_power":18446744073709551616', 1)
        expected = {"TRF1": ["0.12345678901234567890123", "123456789012345678901234567890"],
                    "LOC1": ['"percentage":20.50', "18446744073709551616"]}
        assert all(n in tariff for n in expected["TRF1"]) and all(n in location for n in expected["LOC1"])
        for path, raw in (("tariffs/receiver/IN/ECP/TRF1", tariff), ("locations/receiver/IN/ECP/LOC1", location)):
            answer = hub.call("PUT", f"/ocpi/2.2.1/{path}", cpo.hub_token, data=raw.encode(), headers={
                "OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP", "Content-Type": "application/json",
                "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"})
            assert answer.json()["status_code"] == 1000, answer.text
        # Forwarded: the bytes the eMSP's server read.
        for oid, numbers in expected.items():
            got = wait_until(lambda o=oid: [r for r in emsp.received if r.path.endswith("/" + o) and r.method == "PUT"])
            assert got, f"{oid} was not forwarded"
            for number in numbers:
                assert number in got[0].raw.decode(), (oid, number)
        # Pulled: the bytes of the hub's answer.
        for module, oid in (("tariffs", "TRF1"), ("locations", "LOC1")):
            answer = hub.call("GET", f"/ocpi/2.2.1/{module}/sender/{oid}", emsp.hub_token, headers={
                "OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP",
                "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"})
            assert answer.json()["status_code"] == 1000, answer.text
            for number in expected[oid]:
                assert number in answer.content.decode(), (module, number)
            listed = hub.call("GET", f"/ocpi/2.2.1/{module}/sender", emsp.hub_token, headers={
                "OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP",
                "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"})
            for number in expected[oid]:
                assert number in listed.content.decode(), (module, "list", number)
    finally:
        emsp.stop()
        cpo.stop()
