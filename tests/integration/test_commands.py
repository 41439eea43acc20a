"""Commands: eMSP -> hub -> CPO synchronously, the CPO's CommandResult back to the eMSP."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub.domain.commands import command_uuid
from scheduler.worker import Worker
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import HubUnderTest, serve_in_thread, wait_until
from tests.integration.test_forwarding import Cpo
from tests.partner import envelope, role

ACCEPTED = {"result": "ACCEPTED", "timeout": 30, "message": [{"language": "en", "text": "sent to the charger"}]}
SENT_TO = "/ocpi/2.2.1/commands/receiver/"


def cpo_answering(hub, pid="ECP", **options):
    """A CPO whose commands receiver answers ``partner.command_response``."""
    partner = hub.connect_partner([role("CPO", "IN", pid)], **options)
    partner.command_response = envelope(ACCEPTED)
    partner.before_answer = None  # called with the command before the CPO answers
    original = partner.answer

    def answer(record):
        if record.path.startswith(SENT_TO):
            if partner.before_answer is not None:
                partner.before_answer(record)
            return partner.command_response
        return original(record)

    partner.answer = answer
    return partner


def emsp_url(emsp, command: str) -> str:
    return f"{emsp.base}/emsp/results/{command}/{uuid.uuid4().hex[:8]}"


def body_of(command: str, response_url: str) -> dict:
    if command == "START_SESSION":
        return ex.start_session(response_url=response_url)
    if command == "STOP_SESSION":
        return {"response_url": response_url, "session_id": "SES-20240315-0001"}
    if command == "RESERVE_NOW":
        return {"response_url": response_url, "token": ex.token(), "expiry_date": in_an_hour(),
                "reservation_id": "RES-1", "location_id": "LOC-BLR-0001", "evse_uid": "EVSE-BLR-0001-1"}
    if command == "CANCEL_RESERVATION":
        return {"response_url": response_url, "reservation_id": "RES-1"}
    return {"response_url": response_url, "location_id": "LOC-BLR-0001", "evse_uid": "EVSE-BLR-0001-1",
            "connector_id": "1"}


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def send(hub, emsp, command: str, body, to=("IN", "ECP"), correlation_id=None, pid="EMP"):
    headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": pid,
               "X-Correlation-ID": correlation_id or str(uuid.uuid4())}
    if to:
        headers.update({"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]})
    return hub.call("POST", f"/ocpi/2.2.1/commands/receiver/{command}", emsp.hub_token, json=body,
                    headers=headers)


def post_result(hub, cpo, url: str, result: dict, pid="ECP", to=("IN", "EMP")):
    headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": pid}
    if to:
        headers.update({"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]})
    return hub.call("POST", url, cpo.hub_token, json=result, headers=headers)


def forwarded(cpo, command: str) -> list:
    return cpo.requests_to(SENT_TO + command, "POST")


def story(settings, hub_url: str) -> list[tuple[str, dict]]:
    """Every event of one command: (event name, state), in order."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        rows = conn.execute(
            "SELECT topic, state FROM hub_events WHERE originator_id = %s ORDER BY originator_version",
            (command_uuid(hub_url.rsplit("/", 1)[1]),)).fetchall()
    import orjson

    return [(topic.rsplit(".", 1)[1], orjson.loads(bytes(state))) for topic, state in rows]


def names(settings, hub_url: str) -> list[str]:
    return [name for name, _ in story(settings, hub_url)]


def test_each_command_round_trips(hub, worker, settings):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        for command in ("START_SESSION", "STOP_SESSION", "RESERVE_NOW", "CANCEL_RESERVATION",
                        "UNLOCK_CONNECTOR"):
            original_url = emsp_url(emsp, command)
            body = body_of(command, original_url)
            correlation = str(uuid.uuid4())
            answer = send(hub, emsp, command, body, correlation_id=correlation)
            # The eMSP gets the CPO's CommandResponse unchanged, with the CPO's routing headers.
            assert answer.status_code == 200, answer.text
            assert answer.json()["status_code"] == 1000 and answer.json()["data"] == ACCEPTED
            assert answer.headers["OCPI-from-party-id"] == "ECP" and answer.headers["OCPI-to-party-id"] == "EMP"
            assert answer.headers["X-Correlation-ID"] == correlation

            # The CPO got the command with the hub's response_url, everything else as sent.
            got = forwarded(cpo, command)[-1]
            hub_url = got.body["response_url"]
            assert hub_url != original_url
            assert hub_url.startswith(settings.module_url("commands/sender/"))
            assert len(hub_url.rsplit("/", 1)[1]) >= 43
            assert {**got.body, "response_url": original_url} == body
            assert got.header("OCPI-from-party-id") == "EMP" and got.header("OCPI-to-party-id") == "ECP"
            assert got.header("X-Correlation-ID") == correlation
            assert got.token == cpo.token_for_hub

            # The CPO posts its result to the hub; the eMSP receives it at its own URL.
            result = {"result": "ACCEPTED", "message": [{"language": "en", "text": f"{command} done"}]}
            posted = post_result(hub, cpo, hub_url, result)
            assert posted.status_code == 200 and posted.json()["status_code"] == 1000
            assert "data" not in posted.json()
            path = original_url.removeprefix(emsp.base)
            delivered = emsp.wait_for(lambda r, p=path: r.path == p and r.method == "POST")
            assert delivered, f"{command}: the eMSP received no result"
            assert delivered[0].body == result
            assert delivered[0].header("OCPI-from-country-code") == "IN"
            assert delivered[0].header("OCPI-from-party-id") == "ECP"
            assert delivered[0].header("OCPI-to-party-id") == "EMP"
            assert delivered[0].header("X-Correlation-ID") == correlation
            assert delivered[0].token == emsp.token_for_hub
            if command == "RESERVE_NOW":
                # The reservation's URL stays valid: the CPO may cancel it later.
                canceled = {"result": "CANCELED_RESERVATION"}
                assert post_result(hub, cpo, hub_url, canceled).json()["status_code"] == 1000
                assert emsp.wait_for(lambda r, p=path, c=canceled: r.path == p and r.body == c)
                assert [r.body for r in emsp.requests_to(path)] == [result, canceled]

        # The whole story of the last command, under one originator id.
        events = story(settings, hub_url)
        assert [name for name, _ in events] == ["Requested", "Answered", "ResultReceived"]
        requested = events[0][1]
        assert requested["original_response_url"] == original_url and requested["emsp"] == "IN/EMP/EMSP"
        assert requested["cpo"] == "IN/ECP/CPO" and requested["correlation_id"] == correlation
        assert events[1][1]["result"] == "ACCEPTED" and events[2][1]["result"] == result
    finally:
        cpo.stop()
        emsp.stop()


def test_open_routing_by_location_and_session(hub, worker, settings):
    cpo_partner = cpo_answering(hub)
    other_cpo = cpo_answering(hub, pid="CP2")
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo = Cpo(hub, cpo_partner)
    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC-BLR-0001", ex.location()).status_code == 201
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/SES-20240315-0001", ex.session(), to=None).status_code == 201
        start = body_of("START_SESSION", emsp_url(emsp, "START_SESSION"))
        answer = wait_until(lambda: (a := send(hub, emsp, "START_SESSION", start, to=None)).json()["status_code"] == 1000 and a)
        assert answer and answer.json()["data"] == ACCEPTED
        assert answer.headers["OCPI-from-party-id"] == "ECP"
        got = forwarded(cpo_partner, "START_SESSION")[-1]
        assert got.header("OCPI-to-party-id") == "ECP" and got.header("OCPI-from-party-id") == "EMP"
        assert not forwarded(other_cpo, "START_SESSION")

        stop = body_of("STOP_SESSION", emsp_url(emsp, "STOP_SESSION"))
        answer = wait_until(lambda: (a := send(hub, emsp, "STOP_SESSION", stop, to=None)).json()["status_code"] == 1000 and a)
        assert answer and forwarded(cpo_partner, "STOP_SESSION")[-1].body["session_id"] == "SES-20240315-0001"

        # Nobody to route to: an unknown location, another eMSP's session, a reservation id.
        unknown = send(hub, emsp, "START_SESSION", {**start, "location_id": "NOWHERE"}, to=None).json()
        assert unknown["status_code"] == 4001 and "NOWHERE" in unknown["status_message"]
        other_session = send(hub, em2, "STOP_SESSION", stop, to=None, pid="EM2").json()
        assert other_session["status_code"] == 4001
        cancel = send(hub, emsp, "CANCEL_RESERVATION", body_of("CANCEL_RESERVATION", emsp_url(emsp, "C")),
                      to=None).json()
        assert cancel["status_code"] == 4001 and "OCPI-to" in cancel["status_message"]
        # Two CPOs with the same location id: the hub does not guess.
        assert Cpo(hub, other_cpo, pid="CP2").push(
            "PUT", "locations/receiver/IN/CP2/LOC-BLR-0001", ex.location(party_id="CP2")).status_code == 201
        assert wait_until(lambda: send(hub, emsp, "START_SESSION", start, to=None).json()["status_code"] == 4001)
        assert not forwarded(other_cpo, "START_SESSION")
    finally:
        for partner in (cpo_partner, other_cpo, emsp, em2):
            partner.stop()


def test_rejection_passes_through(hub, worker, settings):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        rejected = {"result": "REJECTED", "timeout": 0, "message": [{"language": "en", "text": "unknown location"}]}
        cpo.command_response = envelope(rejected, 2003, "Unknown Location")
        answer = send(hub, emsp, "UNLOCK_CONNECTOR", body_of("UNLOCK_CONNECTOR", emsp_url(emsp, "U")))
        assert answer.status_code == 200
        assert answer.json()["status_code"] == 2003 and answer.json()["data"] == rejected
        assert answer.json()["status_message"] == "Unknown Location"
        assert answer.headers["OCPI-from-party-id"] == "ECP"
        hub_url = forwarded(cpo, "UNLOCK_CONNECTOR")[-1].body["response_url"]
        assert names(settings, hub_url) == ["Requested", "Answered"]
        assert story(settings, hub_url)[1][1]["status_code"] == 2003
    finally:
        cpo.stop()
        emsp.stop()


def test_forged_and_unknown_results_are_refused(hub, worker, settings):
    cpo = cpo_answering(hub)
    other_cpo = cpo_answering(hub, pid="CP2")
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    try:
        original_url = emsp_url(emsp, "START_SESSION")
        assert send(hub, emsp, "START_SESSION", body_of("START_SESSION", original_url)).json()["status_code"] == 1000
        hub_url = forwarded(cpo, "START_SESSION")[-1].body["response_url"]
        result = {"result": "ACCEPTED"}

        forged = post_result(hub, other_cpo, hub_url, result, pid="CP2")
        assert forged.json()["status_code"] == 2001 and "IN/CP2" in forged.json()["status_message"]
        # The CPO's platform, but claiming another CPO's party: the middleware refuses it.
        assert post_result(hub, cpo, hub_url, result, pid="CP2").json()["status_code"] == 2001
        # An eMSP cannot post results.
        assert post_result(hub, emsp, hub_url, result, pid="EMP", to=("IN", "ECP")).json()["status_code"] == 2001
        unknown = post_result(hub, cpo, settings.module_url("commands/sender/not-a-command"), result)
        assert unknown.status_code == 404 and unknown.json()["status_code"] == 2001
        invalid = post_result(hub, cpo, hub_url, {"result": "DONE"})
        assert invalid.json()["status_code"] == 2001 and "result" in invalid.json()["status_message"]
        wrong_emsp = post_result(hub, cpo, hub_url, result, to=("IN", "EM2"))
        assert wrong_emsp.json()["status_code"] == 2001 and "OCPI-to" in wrong_emsp.json()["status_message"]
        assert names(settings, hub_url) == ["Requested", "Answered"]

        assert post_result(hub, cpo, hub_url, result, to=None).json()["status_code"] == 1000
        path = original_url.removeprefix(emsp.base)
        assert emsp.wait_for(lambda r: r.path == path)
        assert len(emsp.requests_to(path)) == 1
    finally:
        for partner in (cpo, other_cpo, emsp, em2):
            partner.stop()


def test_result_posted_before_the_cpo_answers(hub, worker, settings):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        posted = []
        cpo.before_answer = lambda record: posted.append(
            post_result(hub, cpo, record.body["response_url"], {"result": "ACCEPTED"}))
        original_url = emsp_url(emsp, "START_SESSION")
        answer = send(hub, emsp, "START_SESSION", body_of("START_SESSION", original_url))
        assert answer.json()["status_code"] == 1000 and answer.json()["data"] == ACCEPTED
        assert posted and posted[0].json()["status_code"] == 1000
        path = original_url.removeprefix(emsp.base)
        assert emsp.wait_for(lambda r: r.path == path)
        hub_url = forwarded(cpo, "START_SESSION")[-1].body["response_url"]
        assert names(settings, hub_url) == ["Requested", "ResultReceived", "Answered"]
    finally:
        cpo.stop()
        emsp.stop()


def test_result_waits_for_an_emsp_that_is_down(hub, settings):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    worker = Worker(replace(settings, still_alive_after=0.5), settings.database_url)
    worker.start()
    try:
        original_url = emsp_url(emsp, "STOP_SESSION")
        correlation = str(uuid.uuid4())
        answer = send(hub, emsp, "STOP_SESSION", body_of("STOP_SESSION", original_url), correlation_id=correlation)
        assert answer.json()["status_code"] == 1000
        hub_url = forwarded(cpo, "STOP_SESSION")[-1].body["response_url"]
        emsp.stop()
        assert post_result(hub, cpo, hub_url, {"result": "ACCEPTED"}).json()["status_code"] == 1000
        assert wait_until(lambda: _delivery(settings, hub_url)["attempts"] >= 1, timeout=15)
        assert _delivery(settings, hub_url)["state"] == "PENDING"
        emsp.start()
        path = original_url.removeprefix(emsp.base)
        got = emsp.wait_for(lambda r: r.path == path, timeout=30)
        assert got and got[0].body == {"result": "ACCEPTED"}
        assert got[0].header("X-Correlation-ID") == correlation and got[0].header("OCPI-from-party-id") == "ECP"
        assert wait_until(lambda: _delivery(settings, hub_url)["state"] == "DELIVERED")
    finally:
        worker.stop()
        cpo.stop()
        emsp.stop()


def _delivery(settings, hub_url: str) -> dict:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        row = conn.execute("SELECT state, attempts FROM hub_deliveries WHERE object_key = %s",
                           (f"commands/{hub_url.rsplit('/', 1)[1]}",)).fetchone()
    return {"state": row[0], "attempts": row[1]} if row else {"state": None, "attempts": 0}


@pytest.fixture
def quick_hub(settings):
    """The hub with a 0.2 s margin after the CPO's command timeout."""
    from handlers.app import create_app
    from handlers.context import WebContext

    quick = replace(settings, command_result_margin=0.2)
    ctx = WebContext.open(quick, settings.database_url)
    port = int(settings.extra["port"])
    server = serve_in_thread(create_app(ctx), port)
    yield HubUnderTest(quick, f"http://127.0.0.1:{port}", ctx)
    server.shutdown()
    server.server_close()
    ctx.close()


def test_no_result_means_timeout_for_the_emsp(quick_hub, worker, settings):
    hub = quick_hub
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        cpo.command_response = envelope({"result": "ACCEPTED", "timeout": 1})
        original_url = emsp_url(emsp, "START_SESSION")
        correlation = str(uuid.uuid4())
        send(hub, emsp, "START_SESSION", body_of("START_SESSION", original_url), correlation_id=correlation)
        hub_url = forwarded(cpo, "START_SESSION")[-1].body["response_url"]
        path = original_url.removeprefix(emsp.base)
        got = emsp.wait_for(lambda r: r.path == path, timeout=20)
        assert got, "the eMSP was not told about the timeout"
        assert got[0].body["result"] == "TIMEOUT" and got[0].body["message"][0]["language"] == "en"
        assert got[0].header("OCPI-from-party-id") == "ECP" and got[0].header("OCPI-to-party-id") == "EMP"
        assert got[0].header("X-Correlation-ID") == correlation
        assert names(settings, hub_url) == ["Requested", "Answered", "TimedOut"]
        # Past the margin after the CPO's timeout (0.2 s here), the URL takes no result.
        valid_until = dict(story(settings, hub_url))["Answered"]["valid_until"]
        time.sleep(max(0.0, (datetime.fromisoformat(valid_until.replace("Z", "+00:00"))
                             - datetime.now(UTC)).total_seconds() + 0.05))
        late = post_result(hub, cpo, hub_url, {"result": "ACCEPTED"})
        assert late.json()["status_code"] == 2001 and "too late" in late.json()["status_message"]
        assert names(settings, hub_url) == ["Requested", "Answered", "TimedOut"]

        # A REJECTED command's URL expires after its timeout plus the margin.
        cpo.command_response = envelope({"result": "REJECTED", "timeout": 0})
        send(hub, emsp, "UNLOCK_CONNECTOR", body_of("UNLOCK_CONNECTOR", emsp_url(emsp, "U")))
        rejected_url = forwarded(cpo, "UNLOCK_CONNECTOR")[-1].body["response_url"]
        time.sleep(0.5)
        expired = post_result(hub, cpo, rejected_url, {"result": "FAILED"}).json()
        assert expired["status_code"] == 2001 and "valid until" in expired["status_message"]
        assert names(settings, rejected_url) == ["Requested", "Answered"]
    finally:
        cpo.stop()
        emsp.stop()


def test_timeout_result_can_be_switched_off(quick_hub, settings):
    hub = quick_hub
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    worker = Worker(replace(settings, command_timeout_result=False), settings.database_url)
    worker.start()
    try:
        cpo.command_response = envelope({"result": "ACCEPTED", "timeout": 1})
        send(hub, emsp, "UNLOCK_CONNECTOR", body_of("UNLOCK_CONNECTOR", emsp_url(emsp, "U")))
        hub_url = forwarded(cpo, "UNLOCK_CONNECTOR")[-1].body["response_url"]
        assert wait_until(lambda: names(settings, hub_url)[-1] == "TimedOut", timeout=20)
        # Once the dispatcher has passed the TimedOut event, nothing was queued for the eMSP.
        assert wait_until(lambda: worker.log.position("dispatch-commands") >= worker.log.head())
        assert _delivery(settings, hub_url)["state"] is None
    finally:
        worker.stop()
        cpo.stop()
        emsp.stop()


def test_invalid_commands_and_routing_errors(hub, worker, settings):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    hub.connect_partner([role("EMSP", "IN", "EM2")]).stop()
    no_commands = hub.connect_partner([role("CPO", "IN", "NOC")], modules=("credentials", "locations"))
    try:
        start = body_of("START_SESSION", emsp_url(emsp, "START_SESSION"))
        other_token = send(hub, emsp, "START_SESSION", {**start, "token": ex.token(party_id="EM2")}).json()
        assert other_token["status_code"] == 2001 and "token.party_id" in other_token["status_message"]
        reserve = body_of("RESERVE_NOW", emsp_url(emsp, "R"))
        other = send(hub, emsp, "RESERVE_NOW", {**reserve, "token": ex.token(country_code="NL")}).json()
        assert other["status_code"] == 2001 and "token.country_code" in other["status_message"]
        unknown = send(hub, emsp, "START_CHARGING", start).json()
        assert unknown["status_code"] == 2001 and "command" in unknown["status_message"]
        missing = send(hub, emsp, "START_SESSION", {**start, "location_id": None}).json()
        assert missing["status_code"] == 2001 and "location_id" in missing["status_message"]
        # A CPO cannot send commands.
        assert send(hub, cpo, "START_SESSION", start, to=("IN", "EMP"), pid="ECP").json()["status_code"] == 2001
        assert not forwarded(cpo, "")

        assert send(hub, emsp, "START_SESSION", start, to=("IN", "ZZZ")).json()["status_code"] == 4001
        assert send(hub, emsp, "START_SESSION", start, to=("IN", "NOC")).json()["status_code"] == 4000
        run_hub(settings, "routing", "deny", "IN/ECP", "IN/EMP", "--module", "commands")
        refused = send(hub, emsp, "START_SESSION", start).json()
        assert refused["status_code"] == 4000 and "refused" in refused["status_message"]
        assert not forwarded(cpo, "")
        run_hub(settings, "routing", "allow", "IN/ECP", "IN/EMP", "--module", "commands")

        cpo.delay = settings.forward_timeout + 2
        slow = send(hub, emsp, "START_SESSION", start)
        assert slow.status_code == 200 and slow.json()["status_code"] == 4002
        hub_url = forwarded(cpo, "START_SESSION")[-1].body["response_url"]
        events = story(settings, hub_url)
        assert [name for name, _ in events] == ["Requested", "Failed"] and events[1][1]["status_code"] == 4002
        cpo.delay = 0
        cpo.stop()
        down = send(hub, emsp, "START_SESSION", start)
        assert down.status_code == 200 and down.json()["status_code"] == 4003
    finally:
        for partner in (cpo, emsp, no_commands):
            partner.stop()


def test_command_dates_are_bounded(hub, worker, settings):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        for expiry in ("9999-12-31T23:59:59Z", "2099-01-01T00:00:00Z"):
            far = body_of("RESERVE_NOW", emsp_url(emsp, "R"))
            answer = send(hub, emsp, "RESERVE_NOW", {**far, "expiry_date": expiry})
            assert answer.status_code == 200 and answer.json()["status_code"] == 2001
            assert answer.json()["status_message"] == f"expiry_date: {expiry!r} is more than 30 days ahead"
        assert not forwarded(cpo, "RESERVE_NOW")

        # A CPO's absurd timeout reaches the eMSP as sent; the hub waits for a result at most a day.
        huge = b'{"status_code": 1000, "data": {"result": "ACCEPTED", "timeout": %s}}'
        for timeout in (b"1000000000000", b"1e300"):
            cpo.command_response = huge % timeout
            original_url = emsp_url(emsp, "START_SESSION")
            answer = send(hub, emsp, "START_SESSION", body_of("START_SESSION", original_url))
            assert answer.status_code == 200 and answer.content == huge % timeout
            hub_url = forwarded(cpo, "START_SESSION")[-1].body["response_url"]
            events = dict(story(settings, hub_url))
            waited = (datetime.fromisoformat(events["Answered"]["result_due"].rstrip("Z"))
                      - datetime.fromisoformat(events["Requested"]["requested_at"].rstrip("Z")))
            assert timedelta(hours=24) <= waited <= timedelta(hours=24, seconds=settings.command_result_margin + 60)
            # The command works as any other: its result reaches the eMSP.
            assert post_result(hub, cpo, hub_url, {"result": "ACCEPTED"}).json()["status_code"] == 1000
            assert emsp.wait_for(lambda r, u=original_url: r.path == u.removeprefix(emsp.base))
    finally:
        cpo.stop()
        emsp.stop()


@pytest.mark.parametrize("url", [
    "not a url", "/relative/results/1", "file:///etc/passwd", "ftp://x/y", "http:///no-host",
    "http://127.0.0.1:port/x", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/r",
    "http://[::ffff:169.254.169.254]/r", "https://[fd00::1]/r",
])
def test_response_url_must_be_an_http_url_the_outbound_guard_allows(hub, url):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        answer = send(hub, emsp, "STOP_SESSION", body_of("STOP_SESSION", url))
        assert answer.status_code == 200 and answer.json()["status_code"] == 2001
        message = answer.json()["status_message"]
        assert message.startswith("response_url: ")
        if url.startswith(("http://1", "http://[", "https://[")) and ":port" not in url:
            assert "refused by the outbound guard" in message
        else:
            assert "is not an absolute http or https URL" in message
        assert not forwarded(cpo, "STOP_SESSION")
        # An allowed address is fine, whatever its port or path, and also a public one that is
        # not among the eMSP's registered hosts (the guard replaced that rule).
        for fine_url in ("https://127.0.0.1:1/other/result", "https://93.184.215.14/result/1"):
            fine = send(hub, emsp, "STOP_SESSION", body_of("STOP_SESSION", fine_url))
            assert fine.json()["status_code"] == 1000, fine.json()
    finally:
        cpo.stop()
        emsp.stop()


def test_cancel_reservation_finds_the_cpo_of_the_reservation(hub, worker, settings):
    cpo = cpo_answering(hub)
    other_cpo = cpo_answering(hub, pid="CP2")
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    try:
        reserve = {**body_of("RESERVE_NOW", emsp_url(emsp, "R")), "reservation_id": "RES-7"}
        assert send(hub, emsp, "RESERVE_NOW", reserve).json()["status_code"] == 1000
        cancel = {**body_of("CANCEL_RESERVATION", emsp_url(emsp, "C")), "reservation_id": "res-7"}
        answer = wait_until(lambda: (a := send(hub, emsp, "CANCEL_RESERVATION", cancel, to=None)).json()[
            "status_code"] == 1000 and a)
        assert answer and answer.json()["data"] == ACCEPTED and answer.headers["OCPI-from-party-id"] == "ECP"
        got = forwarded(cpo, "CANCEL_RESERVATION")[-1]
        assert got.body["reservation_id"] == "res-7" and got.header("OCPI-to-party-id") == "ECP"
        assert not forwarded(other_cpo, "CANCEL_RESERVATION")

        # Only the eMSP that made the reservation finds it; an unknown one is 4001.
        theirs = send(hub, em2, "CANCEL_RESERVATION", {**cancel, "response_url": emsp_url(em2, "C")},
                      to=None, pid="EM2").json()
        assert theirs["status_code"] == 4001
        assert theirs["status_message"] == ("no CPO has received a RESERVE_NOW from IN/EM2/EMSP with "
                                            "reservation_id res-7; address the CPO with OCPI-to")
        unknown = send(hub, emsp, "CANCEL_RESERVATION", {**cancel, "reservation_id": "RES-8"}, to=None).json()
        assert unknown["status_code"] == 4001 and "RES-8" in unknown["status_message"]
        assert len(forwarded(cpo, "CANCEL_RESERVATION")) == 1
    finally:
        for partner in (cpo, other_cpo, emsp, em2):
            partner.stop()


def test_a_reservation_takes_results_until_it_expires(quick_hub, worker, settings):
    hub = quick_hub
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        cpo.command_response = envelope({"result": "ACCEPTED", "timeout": 1})
        original_url = emsp_url(emsp, "RESERVE_NOW")
        send(hub, emsp, "RESERVE_NOW", body_of("RESERVE_NOW", original_url))
        hub_url = forwarded(cpo, "RESERVE_NOW")[-1].body["response_url"]
        path = original_url.removeprefix(emsp.base)
        # No first result in time: the eMSP is told TIMEOUT, as for any command ...
        assert emsp.wait_for(lambda r: r.path == path, timeout=20)[0].body["result"] == "TIMEOUT"
        # ... but the reservation lasts: the CPO may still cancel it, and the eMSP hears of it.
        canceled = {"result": "CANCELED_RESERVATION"}
        assert post_result(hub, cpo, hub_url, canceled).json()["status_code"] == 1000
        assert emsp.wait_for(lambda r: r.path == path and r.body == canceled)
        assert [r.body["result"] for r in emsp.requests_to(path)] == ["TIMEOUT", "CANCELED_RESERVATION"]
        assert names(settings, hub_url) == ["Requested", "Answered", "TimedOut", "ResultReceived"]

        # A reservation that has expired (plus the margin) takes nothing after its timeout.
        expired = {**body_of("RESERVE_NOW", emsp_url(emsp, "R")), "reservation_id": "RES-OLD",
                   "expiry_date": (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        send(hub, emsp, "RESERVE_NOW", expired)
        old_url = forwarded(cpo, "RESERVE_NOW")[-1].body["response_url"]
        assert wait_until(lambda: names(settings, old_url)[-1] == "TimedOut", timeout=20)
        late = post_result(hub, cpo, old_url, canceled).json()
        assert late["status_code"] == 2001 and "too late" in late["status_message"]
    finally:
        cpo.stop()
        emsp.stop()


def test_open_routing_counts_only_the_cpos_the_rules_allow(hub, worker, settings):
    cpo_partner = cpo_answering(hub)
    other_cpo = cpo_answering(hub, pid="CP2")
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        start = body_of("START_SESSION", emsp_url(emsp, "START_SESSION"))
        assert Cpo(hub, cpo_partner).push("PUT", "locations/receiver/IN/ECP/LOC-BLR-0001",
                                          ex.location()).status_code == 201
        assert wait_until(lambda: send(hub, emsp, "START_SESSION", start, to=None).json()["status_code"] == 1000)
        assert Cpo(hub, other_cpo, pid="CP2").push(
            "PUT", "locations/receiver/IN/CP2/LOC-BLR-0001", ex.location(party_id="CP2")).status_code == 201
        several = wait_until(lambda: (a := send(hub, emsp, "START_SESSION", start, to=None).json())[
            "status_code"] == 4001 and a)
        assert several and several["status_message"] == (
            "several CPOs have pushed location LOC-BLR-0001; address the CPO with OCPI-to")
        run_hub(settings, "routing", "deny", "IN/CP2", "IN/EMP", "--module", "commands")
        answer = wait_until(lambda: (a := send(hub, emsp, "START_SESSION", start, to=None)).json()[
            "status_code"] == 1000 and a)
        assert answer and answer.headers["OCPI-from-party-id"] == "ECP"
        assert not forwarded(other_cpo, "START_SESSION")
    finally:
        for partner in (cpo_partner, other_cpo, emsp):
            partner.stop()


def test_a_cpo_that_trickles_or_answers_no_envelope(hub, settings):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        cpo.trickle = 0.25
        slow = send(hub, emsp, "UNLOCK_CONNECTOR", body_of("UNLOCK_CONNECTOR", emsp_url(emsp, "U")))
        assert slow.status_code == 200 and slow.json()["status_code"] == 4002
        assert slow.json()["status_message"] == f"IN/ECP/CPO did not answer within {settings.forward_timeout:g} s"
        events = story(settings, forwarded(cpo, "UNLOCK_CONNECTOR")[-1].body["response_url"])
        assert [name for name, _ in events] == ["Requested", "Failed"] and events[1][1]["status_code"] == 4002

        cpo.trickle = 0
        cpo.command_response = b""
        empty = send(hub, emsp, "UNLOCK_CONNECTOR", body_of("UNLOCK_CONNECTOR", emsp_url(emsp, "U")))
        assert empty.status_code == 200 and empty.json()["status_code"] == 4000
        assert empty.json()["status_message"] == ("the answer of IN/ECP/CPO (HTTP 200) was not an OCPI "
                                                  "envelope: no JSON object with an integer status_code")
        events = story(settings, forwarded(cpo, "UNLOCK_CONNECTOR")[-1].body["response_url"])
        assert [name for name, _ in events] == ["Requested", "Failed"] and events[1][1]["status_code"] == 4000
    finally:
        cpo.stop()
        emsp.stop()


def test_a_command_round_trip_under_gunicorn(gunicorn_hub, settings):
    hub = gunicorn_hub
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        original_url = emsp_url(emsp, "START_SESSION")
        correlation = str(uuid.uuid4())
        answer = send(hub, emsp, "START_SESSION", body_of("START_SESSION", original_url), correlation_id=correlation)
        assert answer.status_code == 200 and answer.json()["data"] == ACCEPTED
        assert answer.headers["OCPI-from-party-id"] == "ECP"
        hub_url = forwarded(cpo, "START_SESSION")[-1].body["response_url"]
        assert hub_url.startswith(settings.module_url("commands/sender/"))
        result = {"result": "ACCEPTED", "message": [{"language": "en", "text": "charging"}]}
        assert post_result(hub, cpo, hub_url, result).json()["status_code"] == 1000
        got = emsp.wait_for(lambda r: r.path == original_url.removeprefix(emsp.base), timeout=30)
        assert got and got[0].body == result
        assert got[0].header("OCPI-from-party-id") == "ECP" and got[0].header("OCPI-to-party-id") == "EMP"
        assert got[0].header("X-Correlation-ID") == correlation and got[0].token == emsp.token_for_hub
    finally:
        cpo.stop()
        emsp.stop()
