"""What the hub keeps of a request beyond its answer: its audit record and its log line."""

from __future__ import annotations

from tests.integration.test_commands import ACCEPTED, cpo_answering, emsp_url, post_result, send
from tests.integration.test_observability import CapturedLogs, request_lines
from tests.integration.test_transport import answered_requests
from tests.partner import role


def test_an_unknown_path_with_a_valid_token_is_answered_404_and_recorded(hub, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        answer = hub.call("GET", "/ocpi/2.2.1/nothing/here", emsp.hub_token,
                          headers={"X-Request-ID": "unknown-path-valid-token"})
        assert answer.status_code == 404 and answer.json()["status_code"] == 2000
        guessed = hub.call("GET", "/ocpi/2.2.1/nothing/here", "not-a-token",
                           headers={"X-Request-ID": "unknown-path-unknown-token"})
        assert guessed.status_code == 404
    finally:
        emsp.stop()
    records = answered_requests(settings)
    record = records["unknown-path-valid-token"]
    assert (record["module"], record["method"], record["path"]) == ("unknown", "GET", "/ocpi/2.2.1/nothing/here")
    assert (record["http_status"], record["status_code"]) == (404, 2000)
    assert "unknown-path-unknown-token" not in records


def test_a_command_result_url_never_reaches_the_request_log(hub, worker):
    cpo = cpo_answering(hub)
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        with CapturedLogs() as logs:
            body = {"response_url": emsp_url(emsp, "STOP_SESSION"), "session_id": "S1"}
            assert send(hub, emsp, "STOP_SESSION", body).json()["data"]["result"] == ACCEPTED["result"]
            hub_url = cpo.requests_to("/ocpi/2.2.1/commands/receiver/STOP_SESSION")[0].body["response_url"]
            answer = post_result(hub, cpo, hub_url, {"result": "ACCEPTED"})
            assert answer.json()["status_code"] == 1000
            text = logs.text
    finally:
        cpo.stop()
        emsp.stop()
    result_id = hub_url.rsplit("/", 1)[1]
    # The test's own HTTP client (urllib3 at DEBUG) logs the URL it calls; the hub must not.
    hub_lines = [line for line in text.splitlines() if '"logger":"urllib3' not in line.replace(" ", "")]
    assert hub_lines and result_id not in "\n".join(hub_lines)
    posted = [line for line in request_lines(text) if line["message"].startswith("POST /ocpi/2.2.1/commands/sender/")]
    assert posted and all("[redacted]" in line["message"] for line in posted)
