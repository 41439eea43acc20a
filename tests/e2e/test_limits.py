"""Inbound limits under real gunicorn, as a partner's HTTP client meets them.

A body over HUB_MAX_BODY_BYTES gets 413 with the envelope and ``Connection: close``
(the body is not read, so the connection cannot be kept); a chunked body is read
like any other; JSON nested too deep gets 2001 (two inputs that were HTTP 500s);
a platform over HUB_RATE_LIMIT gets 429 with Retry-After, others are not slowed.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid

import orjson
import pytest

from tests import ocpi_examples as ex
from tests.conftest import HubUnderTest, _answers, wait_until
from tests.integration.test_commands import cpo_answering, emsp_url
from tests.integration.test_forwarding import Cpo, stamp
from tests.partner import role

MAX_BODY = 256 * 1024


@pytest.fixture
def limited_hub(settings, processes):
    """``hub web`` (gunicorn, one worker so one rate bucket per platform) with small limits."""
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")},
           "HUB_MAX_BODY_BYTES": str(MAX_BODY), "HUB_RATE_LIMIT": "5"}
    port = settings.extra["port"]
    processes.start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "1"], env)
    url = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: _answers(url + "/health"), timeout=30), processes.log_tail()
    return HubUnderTest(settings, url)


def raw_request(sock: socket.socket, head: str, body: bytes = b"") -> None:
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (with Content-Length) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def token_header(token: str) -> str:
    return "Token " + base64.b64encode(token.encode()).decode()


def test_a_body_over_the_limit_gets_413_with_the_envelope_and_connection_close(limited_hub):
    cpo = limited_hub.connect_partner([role("CPO", "IN", "ECP")])
    host = limited_hub.url.removeprefix("http://")
    try:
        with socket.create_connection(host.split(":")) as sock:
            raw_request(sock, f"PUT /ocpi/2.2.1/locations/receiver/IN/ECP/L1 HTTP/1.1\nHost: {host}\n"
                              f"Authorization: {token_header(cpo.hub_token)}\nContent-Type: application/json\n"
                              f"Content-Length: {MAX_BODY + 1}\n", b"{" + b" " * 1000)
            status, headers, body = read_response(sock)
            assert status == 413 and headers["connection"] == "close"
            answer = orjson.loads(body)
            assert answer["status_code"] == 2000
            assert answer["status_message"] == (f"body: larger than {MAX_BODY} bytes (HUB_MAX_BODY_BYTES); "
                                                "nothing was read")
            assert headers.get("x-request-id")
            assert closed_by_peer(sock)
        # A body at the limit is read as usual (here: no JSON in it, so HTTP 400 with 2001 as for any
        # body that is not JSON, docs/getting-started.md; not 413).
        at_limit = limited_hub.call("PUT", "/ocpi/2.2.1/locations/receiver/IN/ECP/L1", cpo.hub_token,
                                    data=b" " * MAX_BODY, headers={"Content-Type": "application/json"})
        assert at_limit.status_code == 400 and at_limit.json()["status_code"] == 2001
    finally:
        cpo.stop()


@pytest.mark.parametrize(("method", "path"), [("PUT", "/ocpi/2.2.1/nothing/here"), ("POST", "/ocpi/versions")])
def test_an_unread_large_body_closes_the_connection_and_a_small_one_keeps_it(limited_hub, method, path):
    host = limited_hub.url.removeprefix("http://")
    with socket.create_connection(host.split(":")) as sock:
        raw_request(sock, f"{method} {path} HTTP/1.1\nHost: {host}\nContent-Length: 200000\n", b"x" * 1000)
        status, headers, body = read_response(sock)
        assert status in (401, 404, 405) and headers["connection"] == "close"
        assert "status_code" in orjson.loads(body)
        assert closed_by_peer(sock)
    with socket.create_connection(host.split(":")) as sock:
        raw_request(sock, f"{method} {path} HTTP/1.1\nHost: {host}\nContent-Length: 100\n", b"x" * 100)
        status, headers, _body = read_response(sock)
        assert status in (401, 404, 405) and headers.get("connection", "keep-alive") == "keep-alive"
        raw_request(sock, f"GET /health HTTP/1.1\nHost: {host}\n")  # the same connection serves the next
        assert read_response(sock)[0] == 200


def test_a_chunked_body_is_read_like_any_other(limited_hub):
    cpo_partner = limited_hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(limited_hub, cpo_partner)
    headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP", "OCPI-to-country-code": "IN",
               "OCPI-to-party-id": "CIH", "Content-Type": "application/json",
               "Authorization": token_header(cpo_partner.hub_token)}
    body = orjson.dumps(ex.location(id="CHUNKED", last_updated=stamp(1)))
    try:
        def pieces(data: bytes, size: int = 100):
            yield from (data[i:i + size] for i in range(0, len(data), size))

        answer = limited_hub.session.put(limited_hub.url + "/ocpi/2.2.1/locations/receiver/IN/ECP/CHUNKED",
                                         data=pieces(body), headers=headers, timeout=15)
        assert answer.request.headers.get("Transfer-Encoding") == "chunked"
        assert answer.status_code in (200, 201) and answer.json()["status_code"] == 1000, answer.text
        stored = cpo.push("GET", "locations/receiver/IN/ECP/CHUNKED")
        assert stored.json()["data"]["id"] == "CHUNKED", stored.text
        # Over the limit, chunked too: 413.
        too_big = limited_hub.session.put(limited_hub.url + "/ocpi/2.2.1/locations/receiver/IN/ECP/BIG",
                                          data=pieces(b" " * (MAX_BODY + 10), 65536), headers=headers,
                                          timeout=15)
        assert too_big.status_code == 413 and too_big.json()["status_code"] == 2000
    finally:
        cpo_partner.stop()


def with_nested(body: dict, depth: int) -> bytes:
    """``body`` as JSON with an extra property nested ``depth`` levels (written out by hand:
    JSON encoders refuse such depths)."""
    nested = b'{"x":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
    return orjson.dumps(body)[:-1] + b',"extra":' + nested + b"}"


def test_json_nested_too_deep_gets_2001_where_it_was_a_500(limited_hub):
    """A Location PUT with an unknown property 1,020 levels deep (was HTTP 500: RecursionError in
    copy.deepcopy) and a START_SESSION with one 600 levels deep (was HTTP 500: orjson.dumps while
    forwarding): both 2001, nothing stored, nothing forwarded."""
    cpo_partner = limited_hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(limited_hub, cpo_partner)
    cpo_server = cpo_answering(limited_hub, pid="CP2")
    emsp = limited_hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        push_headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP",
                        "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH", "Content-Type": "application/json"}
        location = with_nested(ex.location(id="DEEP", last_updated=stamp(1)), 1020)
        answer = limited_hub.call("PUT", "/ocpi/2.2.1/locations/receiver/IN/ECP/DEEP", cpo_partner.hub_token,
                                  data=location, headers=push_headers)
        assert answer.status_code == 400, answer.text  # as any body that is no JSON object (2001)
        assert answer.json()["status_code"] == 2001
        assert answer.json()["status_message"] == "body: JSON nested deeper than 64 levels; not an OCPI object"
        assert cpo.push("GET", "locations/receiver/IN/ECP/DEEP").json()["status_code"] != 1000

        command = with_nested(ex.start_session(response_url=emsp_url(emsp, "START_SESSION")), 600)
        answer = limited_hub.call("POST", "/ocpi/2.2.1/commands/receiver/START_SESSION", emsp.hub_token,
                                  data=command, headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP",
                                                         "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CP2",
                                                         "Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text
        assert answer.json()["status_code"] == 2001 and "nested deeper than 64" in answer.json()["status_message"]
        assert not cpo_server.requests_to("/ocpi/2.2.1/commands")
    finally:
        for partner in (cpo_partner, cpo_server, emsp):
            partner.stop()


def test_a_platform_over_the_rate_limit_gets_429_and_others_are_not_refused(limited_hub):
    busy = limited_hub.connect_partner([role("CPO", "IN", "ECP")])
    calm = limited_hub.connect_partner([role("CPO", "IN", "CP2")])
    try:
        answers = [limited_hub.call("GET", "/ocpi/2.2.1/hubclientinfo", busy.hub_token) for _ in range(30)]
        refused = [a for a in answers if a.status_code == 429]
        assert len(refused) >= 10, [a.status_code for a in answers]  # bursts of 10 at 5/s
        for answer in refused:
            assert int(answer.headers["Retry-After"]) >= 1
            body = answer.json()
            assert body["status_code"] == 2000 and "HUB_RATE_LIMIT" in body["status_message"]
        assert all(a.status_code == 200 for a in answers if a not in refused)
        assert limited_hub.call("GET", "/ocpi/2.2.1/hubclientinfo", calm.hub_token).status_code == 200
        assert wait_until(lambda: limited_hub.call("GET", "/ocpi/2.2.1/hubclientinfo",
                                                   busy.hub_token).status_code == 200, timeout=5)
    finally:
        busy.stop()
        calm.stop()


def test_the_limits_have_no_effect_on_an_ordinary_request_id(limited_hub):
    rid = str(uuid.uuid4())
    answer = limited_hub.call("GET", "/ocpi/versions", "unknown", headers={"X-Request-ID": rid})
    assert answer.status_code == 401 and answer.headers["X-Request-ID"] == rid
