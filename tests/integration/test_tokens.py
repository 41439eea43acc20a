"""Tokens: eMSP pushes reach CPOs; real-time authorization through the hub."""

from __future__ import annotations

import uuid
from dataclasses import replace

import orjson
import pytest

from hub.domain.parties import Party
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.integration.test_forwarding import received
from tests.partner import envelope, role


class Emsp:
    def __init__(self, hub, partner, cc="IN", pid="EMP") -> None:
        self.hub, self.partner, self.cc, self.pid = hub, partner, cc, pid

    def push(self, method, path, body, to=("IN", "CIH"), params=None):
        headers = {"OCPI-from-country-code": self.cc, "OCPI-from-party-id": self.pid}
        if to:
            headers.update({"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]})
        return self.hub.call(method, f"/ocpi/2.2.1/{path}", self.partner.hub_token, json=body,
                             headers=headers, params=params)


def authorize(hub, cpo, uid, *, to=None, token_type=None, body=None, correlation_id=None):
    headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP",
               "X-Correlation-ID": correlation_id or str(uuid.uuid4())}
    if to:
        headers.update({"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]})
    params = {"type": token_type} if token_type else None
    return hub.call("POST", f"/ocpi/2.2.1/tokens/sender/{uid}/authorize", cpo.hub_token, json=body,
                    headers=headers, params=params)


def emsp_answering(hub, pid="EMP", **options):
    """An eMSP whose authorize endpoint answers from its own token list."""
    partner = hub.connect_partner([role("EMSP", "IN", pid)], **options)
    known = {"ALLOW1": "ALLOWED", "BLOCK1": "BLOCKED"}
    original = partner.answer

    def answer(record):
        if record.path.endswith("/authorize"):
            uid = record.path.split("/")[-2]
            if uid not in known:
                return (404, envelope(None, 2004, "unknown token"))
            token = ex.token(uid=uid, party_id=pid)
            return envelope({"allowed": known[uid], "token": token, "authorization_reference": "REF-" + uid})
        return original(record)

    partner.answer = answer
    return partner


def test_token_push_reaches_cpos(hub, worker):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo2 = hub.connect_partner([role("CPO", "IN", "CP2")])
    emsp_partner = hub.connect_partner([role("EMSP", "IN", "EMP")])
    emsp = Emsp(hub, emsp_partner)
    try:
        token = ex.token(uid="ALLOW1")
        put = emsp.push("PUT", "tokens/receiver/IN/EMP/ALLOW1", token, params={"type": "RFID"})
        assert put.status_code == 201 and put.json()["status_code"] == 1000
        for partner in (cpo, cpo2):
            got = wait_until(lambda p=partner: received(p, "tokens", "PUT"))
            assert got and got[0].body == token
            assert got[0].path == "/ocpi/2.2.1/tokens/receiver/IN/EMP/ALLOW1"
            assert got[0].query == "type=RFID"
            assert got[0].header("OCPI-from-party-id") == "CIH" and got[0].header("OCPI-to-party-id") == partner.roles[0]["party_id"]
        patch = emsp.push("PATCH", "tokens/receiver/IN/EMP/ALLOW1",
                          {"valid": False, "last_updated": "2030-01-01T00:00:00Z"})
        assert patch.json()["status_code"] == 1000
        assert wait_until(lambda: received(cpo, "tokens", "PATCH"))
        # A CPO pulls the tokens it may see.
        pulled = hub.call("GET", "/ocpi/2.2.1/tokens/sender", cpo.hub_token,
                          headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP",
                                   "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"})
        assert pulled.status_code == 200
        assert wait_until(lambda: hub.call("GET", "/ocpi/2.2.1/tokens/sender", cpo.hub_token, headers={
            "OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP", "OCPI-to-country-code": "IN",
            "OCPI-to-party-id": "CIH"}).json()["data"] == [{**token, "valid": False,
                                                            "last_updated": "2030-01-01T00:00:00Z"}])
        # Invalid token pushes: a CPO cannot push tokens; body uid must match.
        bad = emsp.push("PUT", "tokens/receiver/IN/EMP/OTHER", token)
        assert bad.json()["status_code"] == 2001 and "uid" in bad.json()["status_message"]
    finally:
        for partner in (cpo, cpo2, emsp_partner):
            partner.stop()


def test_authorize_relays_the_emsp_answer(hub, worker):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp_partner = emsp_answering(hub)
    emsp = Emsp(hub, emsp_partner)
    try:
        for uid in ("ALLOW1", "BLOCK1"):
            assert emsp.push("PUT", f"tokens/receiver/IN/EMP/{uid}", ex.token(uid=uid)).status_code == 201
        correlation = str(uuid.uuid4())
        allowed = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"), correlation_id=correlation,
                            body={"location_id": "LOC1", "evse_uids": ["E1"]})
        assert allowed.status_code == 200
        assert allowed.json()["data"]["allowed"] == "ALLOWED"
        assert allowed.json()["data"]["authorization_reference"] == "REF-ALLOW1"
        assert allowed.headers["OCPI-from-party-id"] == "EMP" and allowed.headers["OCPI-to-party-id"] == "ECP"
        forwarded = emsp_partner.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")[-1]
        assert forwarded.body == {"location_id": "LOC1", "evse_uids": ["E1"]}
        assert forwarded.header("OCPI-from-party-id") == "ECP" and forwarded.header("OCPI-to-party-id") == "EMP"
        assert forwarded.header("X-Correlation-ID") == correlation
        assert forwarded.header("X-Request-ID") != allowed.headers["X-Request-ID"]
        assert allowed.headers["X-Correlation-ID"] == correlation

        blocked = authorize(hub, cpo, "BLOCK1", to=("IN", "EMP"))
        assert blocked.json()["data"]["allowed"] == "BLOCKED"
        unknown = authorize(hub, cpo, "NOPE", to=("IN", "EMP"))
        assert unknown.status_code == 404 and unknown.json()["status_code"] == 2004
        assert "data" not in unknown.json()

        # Open routing: the hub finds the eMSP that pushed the token (needs the view to have it).
        assert wait_until(lambda: authorize(hub, cpo, "BLOCK1").json().get("data", {}).get("allowed") == "BLOCKED")
        assert authorize(hub, cpo, "ALLOW1", token_type="RFID").json()["data"]["allowed"] == "ALLOWED"
        no_owner = authorize(hub, cpo, "NEVERPUSHED")
        assert no_owner.status_code == 200 and no_owner.json()["status_code"] == 4001
        assert authorize(hub, cpo, "ALLOW1", to=("IN", "ZZZ")).json()["status_code"] == 4001
        bad_type = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"), token_type="CARD")
        assert bad_type.json()["status_code"] == 2001 and "type" in bad_type.json()["status_message"]
    finally:
        cpo.stop()
        emsp_partner.stop()


def test_authorize_timeout_and_unreachable(hub, settings):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp_partner = emsp_answering(hub)
    try:
        emsp_partner.delay = settings.forward_timeout + 2
        slow = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert slow.status_code == 200 and slow.json()["status_code"] == 4002
        # The hub answered while the eMSP was still working on it: the CPO never waits for a hung eMSP.
        asked = emsp_partner.requests_to("/ocpi/2.2.1/tokens/sender")
        assert asked and not any(record is asked[0] for record in emsp_partner.finished)
        emsp_partner.delay = 0
        emsp_partner.stop()
        down = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert down.status_code == 200 and down.json()["status_code"] == 4003
    finally:
        cpo.stop()
        emsp_partner.stop()


def test_authorize_refused_by_rules_or_missing_module(hub, settings):
    from tests.cli import run_hub

    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp_partner = emsp_answering(hub)
    no_tokens = hub.connect_partner([role("EMSP", "IN", "NTK")], modules=("credentials", "locations"))
    try:
        lacking = authorize(hub, cpo, "ALLOW1", to=("IN", "NTK")).json()
        assert lacking["status_code"] == 4000
        assert lacking["status_message"] == "receiver IN/NTK/EMSP does not offer the tokens sender interface"
        run_hub(settings, "routing", "deny", "IN/ECP", "IN/EMP", "--module", "tokens")
        refused = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP")).json()
        assert refused["status_code"] == 4000
        assert refused["status_message"].startswith("routing to IN/EMP/EMSP refused: deny by rule IN/ECP/CPO")
        assert not emsp_partner.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")
    finally:
        for partner in (cpo, emsp_partner, no_tokens):
            partner.stop()


def authorize_answers(partner, answer_for) -> None:
    """The eMSP's authorize endpoint answers ``answer_for(record)`` (body, (HTTP status, body) or bytes)."""
    original = partner.answer
    partner.answer = lambda record: (answer_for(record) if record.path.endswith("/authorize")
                                     else original(record))


def test_the_forward_timeout_is_one_deadline_for_the_whole_answer(hub, settings):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp_partner = emsp_answering(hub)
    try:
        # Headers at once, then the body one byte at a time: far longer than the timeout in all,
        # although no single read waits long. The CPO gets the hub's 4002, not a charger-long wait.
        emsp_partner.trickle = 0.25
        trickled = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert trickled.status_code == 200 and trickled.json()["status_code"] == 4002
        assert trickled.json()["status_message"] == f"IN/EMP/EMSP did not answer within {settings.forward_timeout:g} s"
        assert trickled.headers["OCPI-from-party-id"] == "CIH"
        # The eMSP has the whole budget to answer: most of it is fine.
        emsp_partner.trickle = 0
        emsp_partner.delay = settings.forward_timeout * 0.8
        late_but_in_time = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert late_but_in_time.json()["status_code"] == 1000
        assert late_but_in_time.json()["data"]["allowed"] == "ALLOWED"
    finally:
        cpo.stop()
        emsp_partner.stop()


@pytest.mark.parametrize("answer", [
    b"",
    (404, b""),
    b"{}",
    orjson.dumps({"data": {"allowed": "ALLOWED"}, "timestamp": "2026-01-01T00:00:00Z"}),
    orjson.dumps({"status_code": "1000", "data": {"allowed": "ALLOWED"}}),
    b"[1000]",
    b"<html>ok</html>",
], ids=["empty", "empty-404", "empty-object", "no-status-code", "string-status-code", "array", "html"])
def test_an_answer_that_is_no_envelope_is_4000(hub, answer):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp_partner = emsp_answering(hub)
    authorize_answers(emsp_partner, lambda record: answer)
    try:
        got = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert emsp_partner.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")
        assert got.status_code == 200 and got.json()["status_code"] == 4000
        http_status = answer[0] if isinstance(answer, tuple) else 200
        assert got.json()["status_message"] == (
            f"the answer of IN/EMP/EMSP (HTTP {http_status}) was not an OCPI envelope: "
            "no JSON object with an integer status_code")
        assert "data" not in got.json()
    finally:
        cpo.stop()
        emsp_partner.stop()


def test_2002_passes_through_unchanged(hub):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp_partner = emsp_answering(hub)
    authorize_answers(emsp_partner, lambda record: envelope(None, 2002, "location_id needed for this token"))
    try:
        got = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert got.status_code == 200
        assert got.json()["status_code"] == 2002
        assert got.json()["status_message"] == "location_id needed for this token"
        assert got.headers["OCPI-from-party-id"] == "EMP"
    finally:
        cpo.stop()
        emsp_partner.stop()


def test_an_offline_emsp_gets_no_authorization_requests(hub):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp_partner = emsp_answering(hub)
    try:
        assert authorize(hub, cpo, "ALLOW1", to=("IN", "EMP")).json()["data"]["allowed"] == "ALLOWED"
        # The hub has marked the eMSP OFFLINE (its still-alive checks failed); its server is up.
        app = hub.ctx.app
        party = app.repository.get(Party.create_id("IN", "EMP", "EMSP"))
        party.go_offline("still-alive check failed")
        app.save(party)
        hub.ctx.log.catch_up(hub.ctx.parties)
        calls = len(emsp_partner.requests_to("/ocpi/2.2.1/tokens/sender/"))
        offline = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert offline.status_code == 200 and offline.json()["status_code"] == 4003
        assert offline.json()["status_message"] == "receiver IN/EMP/EMSP is OFFLINE"
        assert len(emsp_partner.requests_to("/ocpi/2.2.1/tokens/sender/")) == calls
    finally:
        cpo.stop()
        emsp_partner.stop()


def test_open_routing_counts_only_the_emsps_the_rules_allow(hub, worker, settings):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    em1 = emsp_answering(hub, pid="EM1")
    em2 = emsp_answering(hub, pid="EM2")
    try:
        for pid, partner in (("EM1", em1), ("EM2", em2)):
            put = Emsp(hub, partner, pid=pid).push("PUT", f"tokens/receiver/IN/{pid}/ALLOW1",
                                                   ex.token(uid="ALLOW1", party_id=pid))
            assert put.status_code == 201
        pull_headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP",
                        "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"}
        assert wait_until(lambda: len(hub.call("GET", "/ocpi/2.2.1/tokens/sender", cpo.hub_token,
                                               headers=pull_headers).json()["data"]) == 2)
        several = authorize(hub, cpo, "ALLOW1").json()
        assert several["status_code"] == 4001
        assert several["status_message"] == "several eMSPs have pushed token ALLOW1 (RFID); address the eMSP with OCPI-to"

        run_hub(settings, "routing", "deny", "IN/ECP", "IN/EM1", "--module", "tokens")
        # Only EM2 may be asked: it is, and EM1 is not.
        answer = wait_until(lambda: (a := authorize(hub, cpo, "ALLOW1")).json()["status_code"] == 1000 and a)
        assert answer and answer.json()["data"]["allowed"] == "ALLOWED"
        assert answer.headers["OCPI-from-party-id"] == "EM2"
        assert not em1.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")

        run_hub(settings, "routing", "deny", "IN/ECP", "IN/EM2", "--module", "tokens")
        refused = wait_until(lambda: (a := authorize(hub, cpo, "ALLOW1").json())["status_code"] == 4000 and a)
        assert refused and refused["status_message"] == (
            "routing refused: the routing rules allow none of the eMSPs that pushed token ALLOW1 (RFID)")
        assert len(em2.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")) == 1
    finally:
        for partner in (cpo, em1, em2):
            partner.stop()


@pytest.mark.parametrize("value", ["0", "-1", "31", "nan"])
def test_the_forward_timeout_is_range_checked_at_start_up(settings, value):
    bad = replace(settings, extra={**settings.extra, "HUB_FORWARD_TIMEOUT": value})
    done = run_hub(bad, "migrate", ok=False)
    assert done.returncode != 0
    assert f"HUB_FORWARD_TIMEOUT must satisfy 0 < HUB_FORWARD_TIMEOUT <= 30 (seconds), got '{value}'" in done.stderr


def test_tokens_and_authorization_under_gunicorn(gunicorn_hub):
    hub = gunicorn_hub
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp_partner = emsp_answering(hub)
    try:
        token = ex.token(uid="ALLOW1")
        put = Emsp(hub, emsp_partner).push("PUT", "tokens/receiver/IN/EMP/ALLOW1", token)
        assert put.status_code == 201 and put.json()["status_code"] == 1000
        got = wait_until(lambda: received(cpo, "tokens", "PUT"), timeout=30)
        assert got and got[0].body == token and got[0].path == "/ocpi/2.2.1/tokens/receiver/IN/EMP/ALLOW1"

        allowed = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"), body={"location_id": "LOC1"})
        assert allowed.status_code == 200 and allowed.json()["data"]["allowed"] == "ALLOWED"
        assert allowed.headers["OCPI-from-party-id"] == "EMP"
        # Open routing, once the worker process has the token in its view.
        answer = wait_until(lambda: (a := authorize(hub, cpo, "ALLOW1")).json()["status_code"] == 1000 and a,
                            timeout=30)
        assert answer and answer.json()["data"]["authorization_reference"] == "REF-ALLOW1"
        assert emsp_partner.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")[0].body == {
            "location_id": "LOC1"}
    finally:
        cpo.stop()
        emsp_partner.stop()
