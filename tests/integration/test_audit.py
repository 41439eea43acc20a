"""``hub audit export|trace|history|state``: what an auditor reads from the log.

Flows are driven through real HTTP (partners on loopback, the real worker);
the audit commands run as the ``hub`` command does.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from hub.audit.records import redact, timestamp_text
from hub.domain.parties import Party
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.integration.test_commands import (
    ACCEPTED,
    SENT_TO,
    cpo_answering,
    emsp_url,
    forwarded,
    post_result,
    send,
)
from tests.integration.test_forwarding import Cpo, received, stamp
from tests.integration.test_tokens import authorize, authorize_answers, emsp_answering
from tests.partner import Partner, envelope, role

SECRET_WORDS = ("partner_token", "token_hash", "hub_response_url", "result_id", "Authorization")


def connect(hub, secrets: list[str], *roles: dict) -> Partner:
    """Onboard and register a partner, keeping its tokens A, B and C in ``secrets``."""
    first = roles[0]
    onboarded = hub.onboard(first["role"], first["country_code"], first["party_id"],
                            first["business_details"]["name"])
    partner = Partner(roles=list(roles)).start()
    hub.register(partner, onboarded["token_a"])
    partner.platform_id = str(onboarded["platform_id"])
    secrets += [onboarded["token_a"], partner.token_for_hub, partner.hub_token]
    return partner


def export(settings, *args: str) -> list[dict]:
    done = run_hub(settings, "audit", "export", *args)
    return [json.loads(line) for line in done.stdout.splitlines()]


def timeline(settings, command: str, *args: str) -> list[dict]:
    return json.loads(run_hub(settings, "audit", command, *args, "--json").stdout)


def recorded(settings, correlation_id: str) -> None:
    """Wait for the record of a real-time request: the hub writes it just after answering."""
    from tests.integration.test_transport import answered_requests

    assert wait_until(lambda: any(r["correlation_id"] == correlation_id
                                  for r in answered_requests(settings).values())), correlation_id


def settle(worker) -> None:
    worker.follow_once()
    worker.deliver()
    worker.follow_once()


def now() -> str:
    return timestamp_text(datetime.now(UTC))


def test_redact_drops_every_secret_and_keeps_the_facts():
    event = {
        "token_hash": "ab" * 32, "pending_token_hash": "cd" * 32, "partner_token": "gAAAAsealed",
        "versions_url": "https://cpo.example.in/ocpi/versions",
        "credentials": {"token": "plain-token-c", "url": "https://x/versions", "roles": []},
        "headers": {"Authorization": "Token c2VjcmV0", "X-Request-ID": "r1"},
        "result_id": "Zq3-capability", "hub_response_url": "https://hub/ocpi/2.2.1/commands/sender/Zq3-capability",
        "body_sent": {"response_url": "https://hub/ocpi/2.2.1/commands/sender/Zq3-capability",
                      "token": {"uid": "04A1B2C3", "type": "RFID"}},
        "path": "/ocpi/2.2.1/commands/sender/Zq3-capability",
        "status_message": "no command waits for a result at /ocpi/2.2.1/commands/sender/Zq3-capability?x=1",
        "list": [{"AUTHORIZATION": "Basic x"}, "/commands/sender/other-capability/"],
    }
    clean = redact(event)
    text = json.dumps(clean)
    for secret in ("ab" * 32, "cd" * 32, "gAAAAsealed", "plain-token-c", "c2VjcmV0", "Zq3-capability",
                   "other-capability", "Basic x", *SECRET_WORDS):
        assert secret not in text, secret
    assert clean["versions_url"] == event["versions_url"] and clean["headers"] == {"X-Request-ID": "r1"}
    assert clean["credentials"] == {"url": "https://x/versions", "roles": []}
    assert clean["body_sent"]["token"] == {"uid": "04A1B2C3", "type": "RFID"}  # an OCPI Token is no secret
    assert clean["path"] == "/ocpi/2.2.1/commands/sender/[redacted]"
    assert clean["status_message"].endswith("/commands/sender/[redacted]?x=1")
    assert event["token_hash"] == "ab" * 32  # the input is left alone


def test_export_filters_and_never_shows_a_secret(hub, worker, settings):
    secrets: list[str] = []
    em1 = connect(hub, secrets, role("EMSP", "IN", "EM1"))
    em2 = connect(hub, secrets, role("EMSP", "IN", "EM2"))
    cpo_partner = connect(hub, secrets, role("CPO", "IN", "ECP"))
    original = cpo_partner.answer
    cpo_partner.answer = lambda r: envelope(ACCEPTED) if r.path.startswith(SENT_TO) else original(r)
    cpo = Cpo(hub, cpo_partner)
    try:
        c_location, c_patch, c_session = (str(uuid.uuid4()) for _ in range(3))
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", ex.location(id="LOC1", last_updated=stamp(1)),
                        correlation_id=c_location).status_code == 201
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/LOC1/EVSE-BLR-0001-1",
                        {"status": "CHARGING", "last_updated": stamp(2)},
                        correlation_id=c_patch).json()["status_code"] == 1000
        assert wait_until(lambda: received(em1, "locations", "PATCH") and received(em2, "locations", "PATCH"))
        settle(worker)
        middle = now()
        session = ex.session(id="S1", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(3))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S1", session, to=None,
                        correlation_id=c_session).status_code == 201
        assert wait_until(lambda: received(em1, "sessions", "PUT"))
        # A command and its result: the hub's response_url is a capability and must not leak.
        url = emsp_url(em1, "START_SESSION")
        command = ex.start_session(response_url=url, token=ex.token(party_id="EM1"))
        assert send(hub, em1, "START_SESSION", command, pid="EM1").json()["status_code"] == 1000
        hub_url = forwarded(cpo_partner, "START_SESSION")[-1].body["response_url"]
        secrets.append(hub_url.rsplit("/", 1)[1])
        assert post_result(hub, cpo_partner, hub_url, {"result": "ACCEPTED"}, to=("IN", "EM1")).json()[
            "status_code"] == 1000
        assert em1.wait_for(lambda r: r.path == url.removeprefix(em1.base))
        settle(worker)

        # Everything: no token A/B/C, no result_id, not even the names of the secret fields.
        done = run_hub(settings, "audit", "export", "--progress")
        assert "events" in done.stderr  # the progress line
        for secret in [*secrets, *SECRET_WORDS]:
            assert secret not in done.stdout, secret
        everything = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["position"] for r in everything] == sorted(r["position"] for r in everything)
        head = everything[-1]["position"]
        assert {"position", "recorded_at", "topic", "aggregate_id", "version", "data"} <= set(everything[0])
        assert "[redacted]" in done.stdout  # the result POST's path, the command's body_sent

        def upto_head(records):
            return [r for r in records if r["position"] <= head]

        # One exchange: the push, its record, one delivery per eMSP.
        exchange = export(settings, "--correlation-id", c_location)
        assert sorted(r["topic"] for r in exchange) == ["Call.Made", "Call.Made", "Location.Put",
                                                        "Request.Answered"]
        calls = [r["data"] for r in exchange if r["topic"] == "Call.Made"]
        assert {c["platform_id"] for c in calls} == {em1.platform_id, em2.platform_id}
        assert all(c["http_status"] == 200 and c["status_code"] == 1000 for c in calls)

        # One module.
        sessions = upto_head(export(settings, "--module", "sessions"))
        assert sorted(r["topic"] for r in sessions) == ["Call.Made", "Request.Answered", "Session.Put"]
        assert {r["correlation_id"] for r in sessions} == {c_session}

        # One object: its own events.
        location = export(settings, "--module", "locations", "--object", "in/ecp/loc1")
        assert [r["topic"] for r in location] == ["Location.Put", "Location.EvsePatched"]
        assert [r["correlation_id"] for r in location] == [c_location, c_patch]

        # One party: what it sent or was sent, its platform, its party; nothing of the others.
        em2_party = str(Party.create_id("IN", "EM2", "EMSP"))

        def about_em2(r: dict) -> bool:
            data = r["data"]
            if r["topic"] in ("Request.Answered", "Call.Made"):
                return data["platform_id"] == em2.platform_id
            if r["topic"].startswith("Platform."):
                return r["aggregate_id"] == em2.platform_id
            if r["topic"].startswith("Party."):
                return r["aggregate_id"] == em2_party
            message = data.get("message") or {}
            return "IN/EM2/EMSP" in (message.get("from"), message.get("to"))

        mine = upto_head(export(settings, "--party", "IN/EM2"))
        assert [r["position"] for r in mine] == [r["position"] for r in everything if about_em2(r)]
        assert any(r["topic"] == "Call.Made" and r["correlation_id"] == c_location for r in mine)
        assert not [r for r in mine if r["correlation_id"] in (c_session,) or r["module"] == "commands"]
        assert not [r for r in mine if r["topic"] == "Location.Put"]  # broadcast: addressed to the hub

        # A time range: since is inclusive, until exclusive, together they cover everything once.
        later = upto_head(export(settings, "--since", middle))
        earlier = export(settings, "--until", middle)
        assert later and earlier
        assert [r["position"] for r in earlier + later] == [r["position"] for r in everything]
        assert all(r["recorded_at"] >= middle for r in later) and all(r["recorded_at"] < middle for r in earlier)
        window = export(settings, "--since", middle, "--until", later[2]["recorded_at"])
        assert [r["position"] for r in window] == [r["position"] for r in later[:2]]
        assert export(settings, "--since", middle, "--module", "locations") == []
        refused = run_hub(settings, "audit", "export", "--since", "yesterday", ok=False)
        assert refused.returncode == 1 and "--since" in refused.stderr
    finally:
        for partner in (em1, em2, cpo_partner):
            partner.stop()


def test_trace_of_a_broadcast_location(hub, worker, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    try:
        correlation = str(uuid.uuid4())
        answer = cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", ex.location(id="LOC1", last_updated=stamp(1)),
                          correlation_id=correlation)
        assert answer.status_code == 201
        assert wait_until(lambda: received(em1, "locations", "PUT") and received(em2, "locations", "PUT"))
        settle(worker)
        steps = timeline(settings, "trace", correlation)
        assert [s["step"] for s in steps] == ["received", "stored", "delivered", "delivered"]
        request, stored, *deliveries = steps
        assert request["who"] == "IN/ECP/CPO -> IN/CIH/HUB"
        assert request["what"] == "PUT /ocpi/2.2.1/locations/receiver/IN/ECP/LOC1"
        assert request["outcome"].startswith("answered HTTP 201, status 1000")
        assert request["record"]["data"]["request_id"] == answer.headers["X-Request-ID"]
        assert stored["topic"] == "Location.Put" and stored["what"].startswith("Location.Put locations/IN/ECP/LOC1")
        assert stored["who"] == "IN/ECP/CPO -> IN/CIH/HUB (broadcast)"
        assert sorted(d["who"] for d in deliveries) == ["hub -> IN/EM1/EMSP", "hub -> IN/EM2/EMSP"]
        for delivery in deliveries:
            assert delivery["what"].startswith("PUT http://127.0.0.1:")
            assert delivery["what"].endswith("/ocpi/2.2.1/locations/receiver/IN/ECP/LOC1 "
                                             f"(delivery {delivery['record']['data']['delivery_id']}, attempt 1)")
            assert delivery["outcome"].startswith("HTTP 200, status 1000")
        table = run_hub(settings, "audit", "trace", correlation).stdout.splitlines()
        assert table[0].split() == ["AT", "POSITION", "STEP", "WHO", "WHAT", "OUTCOME"]
        assert len(table) == 5 and "IN/EM2/EMSP" in table[-1] + table[-2]
        missing = run_hub(settings, "audit", "trace", "no-such-correlation", ok=False)
        assert missing.returncode == 1 and "no record" in missing.stderr
    finally:
        for partner in (em1, em2, cpo_partner):
            partner.stop()


def test_trace_of_a_command(hub, worker, settings):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        correlation = str(uuid.uuid4())
        original_url = emsp_url(emsp, "START_SESSION")
        answer = send(hub, emsp, "START_SESSION", ex.start_session(response_url=original_url),
                      correlation_id=correlation)
        assert answer.json()["data"] == ACCEPTED
        hub_url = forwarded(cpo, "START_SESSION")[-1].body["response_url"]
        result = {"result": "ACCEPTED", "message": [{"language": "en", "text": "charging"}]}
        assert post_result(hub, cpo, hub_url, result).json()["status_code"] == 1000  # its own correlation id
        assert emsp.wait_for(lambda r: r.path == original_url.removeprefix(emsp.base))
        settle(worker)

        steps = timeline(settings, "trace", correlation)
        assert [s["step"] for s in steps] == ["received", "command stored", "forwarded", "command answered",
                                              "received", "result received", "delivered"]
        request, stored, forward, answered, result_post, result_received, delivery = steps
        assert request["what"] == "POST /ocpi/2.2.1/commands/receiver/START_SESSION"
        assert request["who"] == "IN/EMP/EMSP -> IN/ECP/CPO" and "HTTP 200, status 1000" in request["outcome"]
        assert stored["who"] == "IN/EMP/EMSP -> IN/ECP/CPO" and stored["what"] == "START_SESSION"
        assert forward["who"] == "hub -> IN/ECP/CPO" and forward["outcome"].startswith("answered HTTP 200, status 1000")
        assert forward["outcome"].endswith(": result ACCEPTED, timeout 30")  # the CommandResponse, recorded
        assert forward["record"]["data"]["answer"] == {"result": "ACCEPTED", "timeout": 30}
        assert forward["what"].endswith("/ocpi/2.2.1/commands/receiver/START_SESSION")
        assert answered["outcome"] == "HTTP 200, status 1000, result ACCEPTED"
        assert result_post["what"] == "POST /ocpi/2.2.1/commands/sender/[redacted]"
        assert result_post["who"] == "IN/ECP/CPO -> IN/EMP/EMSP"
        assert result_received["outcome"] == "result ACCEPTED"
        assert delivery["who"] == "hub -> IN/EMP/EMSP" and delivery["what"].startswith(f"POST {original_url} ")
        assert delivery["outcome"].startswith("HTTP 200, status 1000")
        result_id = hub_url.rsplit("/", 1)[1]
        for output in (json.dumps(steps), run_hub(settings, "audit", "trace", correlation).stdout):
            assert result_id not in output and "hub_response_url" not in output
    finally:
        cpo.stop()
        emsp.stop()


def test_trace_of_an_authorization_shows_the_answer(hub, settings):
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp = emsp_answering(hub)
    try:
        correlation = str(uuid.uuid4())
        references = {"location_id": "LOC1", "evse_uids": ["E1"]}
        allowed = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"), body=references, correlation_id=correlation)
        assert allowed.json()["data"]["allowed"] == "ALLOWED"
        recorded(settings, correlation)
        steps = timeline(settings, "trace", correlation)
        assert [s["step"] for s in steps] == ["received", "forwarded"]
        request, forward = steps
        assert request["what"] == "POST /ocpi/2.2.1/tokens/sender/ALLOW1/authorize"
        assert forward["who"] == "hub -> IN/EMP/EMSP"
        data = forward["record"]["data"]
        assert data["answer"] == {"allowed": "ALLOWED", "authorization_reference": "REF-ALLOW1"}
        assert data["sent"] == {"location_references": references}
        assert forward["outcome"].startswith("answered HTTP 200, status 1000 (")
        assert forward["outcome"].endswith("): allowed ALLOWED, authorization_reference REF-ALLOW1, "
                                           'location_references {"location_id": "LOC1", "evse_uids": ["E1"]}')

        # The eMSP's OCPI answers are answers, whatever their code; only the hub's own 4xxx failed.
        authorize_answers(emsp, lambda record: envelope(None, 2002, "location_id needed"))
        for expected_step, outcome in (("forwarded", "answered HTTP 200, status 2002 ("),
                                       ("forward failed", "HTTP -, status -: POST ")):
            correlation = str(uuid.uuid4())
            authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"), correlation_id=correlation)
            recorded(settings, correlation)
            forward = timeline(settings, "trace", correlation)[1]
            assert forward["step"] == expected_step and forward["outcome"].startswith(outcome)
            assert forward["outcome"].endswith("location_references null")
            emsp.trickle = 0.25  # the next answer never completes in time: 4002
        assert "did not answer within" in forward["record"]["data"]["error"]
    finally:
        cpo.stop()
        emsp.stop()


def test_history_of_a_session(hub, worker, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    try:
        correlations = [str(uuid.uuid4()) for _ in range(3)]
        session = ex.session(id="S1", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(1))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S1", session, to=None,
                        correlation_id=correlations[0]).status_code == 201
        for n, kwh in ((2, 30.5), (3, 41.0)):
            assert cpo.push("PATCH", "sessions/receiver/IN/ECP/S1", {"kwh": kwh, "last_updated": stamp(n)},
                            to=None, correlation_id=correlations[n - 1]).json()["status_code"] == 1000
        assert wait_until(lambda: len(received(em1, "sessions", "PATCH")) == 2)
        # Another session of the same CPO stays out of this history.
        other = ex.session(id="S2", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(4))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S2", other, to=None).status_code == 201
        assert wait_until(lambda: len(received(em1, "sessions", "PUT")) == 2)
        settle(worker)

        steps = timeline(settings, "history", "sessions", "IN", "ECP", "s1")
        assert len(steps) == 9
        for correlation in correlations:  # each push: received, stored, delivered (pushes may interleave)
            assert [s["step"] for s in steps if s["record"]["correlation_id"] == correlation] == [
                "received", "stored", "delivered"]
        assert [s["topic"] for s in steps if s["step"] == "stored"] == ["Session.Put", "Session.Patched",
                                                                         "Session.Patched"]
        assert [s["record"]["version"] for s in steps if s["step"] == "stored"] == [1, 2, 3]
        assert [s["record"]["data"]["method"] for s in steps if s["step"] == "delivered"] == ["PUT", "PATCH",
                                                                                            "PATCH"]
        assert {s["who"] for s in steps if s["step"] == "delivered"} == {"hub -> IN/EM1/EMSP"}
        assert {s["who"] for s in steps if s["step"] == "stored"} == {"IN/ECP/CPO -> open routing (open)"}
        assert not [s for s in steps if "S2" in s["what"]]
        table = run_hub(settings, "audit", "history", "sessions", "IN", "ECP", "S1").stdout
        assert table.count("Session.Patched") == 2 and "delivered" in table
        missing = run_hub(settings, "audit", "history", "sessions", "IN", "ECP", "NOPE", ok=False)
        assert missing.returncode == 1 and "no sessions object" in missing.stderr
    finally:
        em1.stop()
        cpo_partner.stop()


def test_state_at_a_past_time_is_the_hubs_copy_then(hub, worker, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)

    def hubs_copy() -> dict:
        return cpo.push("GET", "sessions/receiver/IN/ECP/S1", to=None).json()["data"]

    try:
        before = now()
        session = ex.session(id="S1", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(1))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S1", session, to=None).status_code == 201
        period = {"start_date_time": "2024-03-15T05:30:00Z", "dimensions": [{"type": "ENERGY", "volume": 5.0}]}
        assert cpo.push("PATCH", "sessions/receiver/IN/ECP/S1",
                        {"kwh": 27.25, "charging_periods": [period], "last_updated": stamp(2)},
                        to=None).json()["status_code"] == 1000
        then = hubs_copy()
        between = now()
        assert cpo.push("PATCH", "sessions/receiver/IN/ECP/S1",
                        {"kwh": 40.0, "status": "COMPLETED", "last_updated": stamp(3)},
                        to=None).json()["status_code"] == 1000
        latest = hubs_copy()
        assert then != latest and len(then["charging_periods"]) == len(session["charging_periods"]) + 1

        past = json.loads(run_hub(settings, "audit", "state", "sessions", "IN", "ECP", "S1",
                                  "--at", between).stdout)
        assert past == then
        assert json.loads(run_hub(settings, "audit", "state", "sessions", "IN", "ECP", "S1").stdout) == latest
        meta = timeline(settings, "state", "sessions", "IN", "ECP", "S1", "--at", between)
        assert meta["version"] == 2 and meta["events"] == 2 and meta["body"] == then and not meta["deleted"]
        early = run_hub(settings, "audit", "state", "sessions", "IN", "ECP", "S1", "--at", before, ok=False)
        assert early.returncode == 1 and "did not exist yet" in early.stderr
    finally:
        em1.stop()
        cpo_partner.stop()


def test_state_as_delivered_to_an_emsp_that_was_down(hub, worker, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    evse = "locations/receiver/IN/ECP/LOC1/EVSE-BLR-0001-1"

    def status_of(*args: str) -> str:
        state = timeline(settings, "state", "locations", "IN", "ECP", "LOC1", *args)
        return state["body"]["evses"][0]["status"]

    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1",
                        ex.location(id="LOC1", last_updated=stamp(1))).status_code == 201
        assert cpo.push("PATCH", evse, {"status": "CHARGING", "last_updated": stamp(2)}).json()[
            "status_code"] == 1000
        assert wait_until(lambda: received(em1, "locations", "PATCH") and received(em2, "locations", "PATCH"))
        settle(worker)
        both_up = now()
        em2.stop()  # EM2's back office goes down before the last PATCH
        last = str(uuid.uuid4())
        assert cpo.push("PATCH", evse, {"status": "BLOCKED", "last_updated": stamp(3)},
                        correlation_id=last).json()["status_code"] == 1000
        assert wait_until(lambda: len(received(em1, "locations", "PATCH")) == 2)

        def failed_to_em2():
            return [s for s in timeline(settings, "trace", last)
                    if s["step"] == "delivery failed" and s["who"] == "hub -> IN/EM2/EMSP"]

        failures = wait_until(failed_to_em2, timeout=20, interval=0.5)
        assert failures and failures[0]["record"]["data"]["error"]

        assert status_of() == "BLOCKED"  # the hub's copy
        assert status_of("--as-delivered-to", "IN/EM1") == "BLOCKED"
        assert status_of("--as-delivered-to", "IN/EM1", "--at", both_up) == "CHARGING"
        seen_by_em2 = timeline(settings, "state", "locations", "IN", "ECP", "LOC1", "--as-delivered-to", "IN/EM2")
        assert seen_by_em2["body"]["evses"][0]["status"] == "CHARGING"
        assert seen_by_em2["version"] == 2 and seen_by_em2["as_delivered_to"] == "IN/EM2"
        assert [(d["method"], d["sent"]) for d in seen_by_em2["deliveries"]] == [("PUT", "as pushed"),
                                                                                ("PATCH", "as pushed")]
        # What EM2 holds is exactly what it received before it went down.
        assert em2.requests_to("/ocpi/2.2.1/locations/receiver", "PATCH")[-1].body["status"] == "CHARGING"
        plain = json.loads(run_hub(settings, "audit", "state", "locations", "IN", "ECP", "LOC1",
                                   "--as-delivered-to", "IN/EM2").stdout)
        assert plain == seen_by_em2["body"]
        unknown = run_hub(settings, "audit", "state", "locations", "IN", "ECP", "LOC1",
                          "--as-delivered-to", "IN/NOPE", ok=False)
        assert unknown.returncode == 1 and "no party IN/NOPE" in unknown.stderr
    finally:
        for partner in (em1, em2, cpo_partner):
            partner.stop()
