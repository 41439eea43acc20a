"""OCPI transport as a partner sees it, over real HTTP.

Envelope and HTTP status on every error path, X-Request-ID / X-Correlation-ID,
the Authorization header forms, token A's reach, pagination of a list
endpoint (HubClientInfo), and the audit record every authenticated request
leaves in the event store.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import replace
from datetime import timedelta

import orjson
import psycopg
import pytest

from hub.ocpi.envelope import format_datetime, parse_datetime
from tests.partner import Partner, role

CLIENTINFO = "/ocpi/2.2.1/hubclientinfo"
CREDENTIALS = "/ocpi/2.2.1/credentials"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def assert_envelope(response, http_status: int, status_code: int) -> dict:
    """The OCPI envelope with a status_message and a UTC `Z` timestamp."""
    assert response.status_code == http_status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status_code"] == status_code, body
    assert isinstance(body.get("status_message"), str) and body["status_message"], body
    assert TIMESTAMP.match(body["timestamp"]), body["timestamp"]
    assert not body["timestamp"].endswith("+00:00")
    assert set(body) <= {"data", "status_code", "status_message", "timestamp"}
    return body


@pytest.fixture
def partners():
    """Partner servers started by a test, stopped afterwards."""
    started: list[Partner] = []
    yield started
    for partner in started:
        partner.stop()


def connect(hub, partners: list[Partner], roles: list[dict]) -> Partner:
    partner = hub.connect_partner(roles)
    partners.append(partner)
    return partner


# Envelope on every error path ----------------------------------------------------


def test_unknown_path_is_404_with_envelope(hub, partners):
    token_c = connect(hub, partners, [role("CPO", "IN", "ECP")]).hub_token
    for path in ("/ocpi/2.2.1/nothing-here", "/ocpi/9.9.9", "/nowhere"):
        for token in (token_c, None):
            body = assert_envelope(hub.call("GET", path, token), 404, 2000)
            assert "data" not in body or body["data"] is None


def test_wrong_method_on_a_real_resource_is_405_with_envelope(hub, partners):
    token_c = connect(hub, partners, [role("CPO", "IN", "ECP")]).hub_token
    assert_envelope(hub.call("PATCH", CREDENTIALS, token_c, json={}), 405, 2000)
    assert_envelope(hub.call("POST", CLIENTINFO, token_c, json={}), 405, 2000)
    assert_envelope(hub.call("DELETE", "/ocpi/versions", token_c), 405, 2000)


def test_body_that_is_not_json_is_400_and_2001_naming_body(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    for raw in (b"{not json", b"\xff\xfe", b"[1, 2"):
        answer = hub.call("POST", CREDENTIALS, token_a, data=raw,
                          headers={"Content-Type": "application/json"})
        body = assert_envelope(answer, 400, 2001)
        assert body["status_message"].startswith("body"), body
    # No body at all is not JSON either.
    answer = hub.call("POST", CREDENTIALS, token_a, data=b"",
                      headers={"Content-Type": "application/json"})
    assert assert_envelope(answer, 400, 2001)["status_message"].startswith("body")
    # Valid JSON that is not an object reached the OCPI layer: HTTP 200, 2001.
    answer = hub.call("POST", CREDENTIALS, token_a, json=None, data=b"null",
                      headers={"Content-Type": "application/json"})
    assert assert_envelope(answer, 200, 2001)["status_message"].startswith("body")
    # Nothing was registered: token A still works.
    assert hub.call("GET", "/ocpi/versions", token_a).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,                                  # missing
        "Token " + base64.b64encode(b"no-such-token-anywhere").decode(),  # unknown, Base64
        "Token no-such-token-anywhere",         # unknown, raw
        "Bearer x",                             # wrong scheme
        "Token",                                # scheme without a token
        "Token ",                               # scheme and a space, nothing else
        "",                                     # empty header
        "Token " + "A" * 600,                   # absurdly long
    ],
)
def test_missing_unknown_or_malformed_authorization_is_401(hub, authorization):
    hub.onboard("CPO", "IN", "ECP")  # there is a platform; this header is not its token
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/ocpi/versions", "/ocpi/2.2.1", CREDENTIALS, CLIENTINFO):
        answer = hub.call("GET", path, headers=headers)
        assert_envelope(answer, 401, 2000)
        assert answer.headers["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("content_type", [
    None,                                  # curl --data-binary without -H
    "application/x-www-form-urlencoded",   # what curl -d says
    "application/xml",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-8",
])
def test_a_json_body_is_json_whatever_the_content_type_says(hub, content_type):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    headers = {"Content-Type": content_type} if content_type else {}
    partner = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    try:
        bad = orjson.loads(orjson.dumps(partner.credentials()))
        bad["roles"][0]["party_id"] = "ECPX"  # read as JSON: the OCPI validation names the field
        body = assert_envelope(hub.call("POST", CREDENTIALS, token_a, data=orjson.dumps(bad),
                                        headers=headers), 200, 2001)
        assert "roles[0].party_id" in body["status_message"]
        not_json = hub.call("POST", CREDENTIALS, token_a, data=b"token=abc&url=x", headers=headers)
        assert assert_envelope(not_json, 400, 2001)["status_message"] == "body: not valid JSON"
        registered = hub.call("POST", CREDENTIALS, token_a, data=orjson.dumps(partner.credentials()),
                              headers=headers)
        assert registered.status_code == 200 and registered.json()["status_code"] == 1000, registered.text
        assert registered.json()["data"]["token"]
    finally:
        partner.stop()


def test_a_content_type_that_is_no_media_type_is_2001_naming_it(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    answer = hub.call("POST", CREDENTIALS, token_a, data=b"{}", headers={"Content-Type": "json"})
    assert assert_envelope(answer, 415, 2001)["status_message"].startswith("Content-Type")


def test_options_is_answered_with_the_envelope_and_allow(hub, settings):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    for path, allowed in (("/ocpi/versions", {"GET"}), (CREDENTIALS, {"GET", "POST", "PUT", "DELETE"})):
        answer = hub.call("OPTIONS", path, token_a, headers={"X-Request-ID": "options-" + path})
        body = answer.json()
        assert answer.status_code == 200 and body["status_code"] == 1000, answer.text
        assert TIMESTAMP.match(body["timestamp"]) and set(body) == {"status_code", "timestamp"}
        assert answer.headers["Content-Type"].startswith("application/json")
        assert allowed <= {m.strip() for m in answer.headers["Allow"].split(",")}
    assert answered_requests(settings)["options-/ocpi/versions"]["status_code"] == 1000
    refused = hub.call("OPTIONS", CREDENTIALS)
    assert_envelope(refused, 401, 2000)
    assert refused.headers["WWW-Authenticate"] == "Token"


def test_an_unexpected_error_is_a_500_envelope_and_is_recorded(hub, settings):
    """A resource that fails (a bug) answers 3000 with the caller's ids, and the
    request's audit record says so."""
    from handlers.app import create_app
    from tests.conftest import serve_in_thread
    from tests.partner import free_port

    class Broken:
        module = "versions"

        def on_get(self, req, resp):
            raise RuntimeError("a bug")

    app = create_app(hub.ctx)
    app.add_route("/ocpi/broken", Broken())
    port = free_port()
    server = serve_in_thread(app, port)
    try:
        token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
        answer = hub.call("GET", f"http://127.0.0.1:{port}/ocpi/broken", token_a,
                          headers={"X-Request-ID": "boom-1", "X-Correlation-ID": "corr-boom"})
    finally:
        server.shutdown()
        server.server_close()
    body = assert_envelope(answer, 500, 3000)
    assert "a bug" not in body["status_message"] and "not accepted" in body["status_message"]
    assert answer.headers["X-Request-ID"] == "boom-1"
    assert answer.headers["X-Correlation-ID"] == "corr-boom"
    record = answered_requests(settings)["boom-1"]
    assert (record["http_status"], record["status_code"], record["path"]) == (500, 3000, "/ocpi/broken")
    assert record["correlation_id"] == "corr-boom"


def test_invalid_credentials_body_names_the_field(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")])  # never contacted
    bad = partner.credentials()
    bad["roles"][0]["party_id"] = "ECPX"  # CiString(3)
    body = assert_envelope(hub.call("POST", CREDENTIALS, token_a, json=bad), 200, 2001)
    assert "roles[0].party_id" in body["status_message"]
    assert partner.token_for_hub not in body["status_message"]
    not_an_object = assert_envelope(hub.call("POST", CREDENTIALS, token_a, json=[1, 2]), 200, 2001)
    assert not_an_object["status_message"]
    # Still invited.
    assert hub.call("GET", "/ocpi/versions", token_a).status_code == 200


# Request and correlation ids -------------------------------------------------------


def test_request_and_correlation_ids_are_echoed_unchanged(hub, partners):
    token_c = connect(hub, partners, [role("EMSP", "IN", "EMP")]).hub_token
    cases = [
        ("GET", CLIENTINFO, token_c),      # 200
        ("GET", CLIENTINFO, None),         # 401
        ("GET", "/ocpi/2.2.1/nope", None),  # 404
        ("PATCH", CREDENTIALS, token_c),   # 405
    ]
    for method, path, token in cases:
        request_id, correlation_id = str(uuid.uuid4()), "corr-" + uuid.uuid4().hex
        answer = hub.call(method, path, token,
                          headers={"X-Request-ID": request_id, "x-correlation-id": correlation_id})
        assert answer.status_code in (200, 401, 404, 405)
        assert answer.headers["X-Request-ID"] == request_id, (method, path)
        assert answer.headers["X-Correlation-ID"] == correlation_id, (method, path)


def test_missing_ids_are_generated_on_every_answer(hub, partners):
    token_c = connect(hub, partners, [role("EMSP", "IN", "EMP")]).hub_token
    seen: set[str] = set()
    for method, path, token, status in [
        ("GET", CLIENTINFO, token_c, 200),
        ("GET", "/ocpi/versions", None, 401),
        ("GET", "/ocpi/2.2.1/nope", token_c, 404),
        ("GET", "/ocpi/2.2.1/nope", None, 404),
    ]:
        answer = hub.call(method, path, token)
        assert answer.status_code == status
        request_id = answer.headers.get("X-Request-ID")
        correlation_id = answer.headers.get("X-Correlation-ID")
        assert request_id and correlation_id
        assert request_id != correlation_id
        assert request_id not in seen and correlation_id not in seen
        seen |= {request_id, correlation_id}


def test_only_the_missing_id_is_generated(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    answer = hub.call("GET", "/ocpi/versions", token_a, headers={"X-Request-ID": "req-1"})
    assert answer.headers["X-Request-ID"] == "req-1"
    assert answer.headers["X-Correlation-ID"] not in ("", "req-1")
    answer = hub.call("GET", "/ocpi/versions", token_a, headers={"X-Correlation-ID": "corr-1"})
    assert answer.headers["X-Correlation-ID"] == "corr-1"
    assert answer.headers["X-Request-ID"] not in ("", "corr-1")


# Routing headers ---------------------------------------------------------------------


def test_from_must_be_a_role_the_platform_registered(hub, partners, settings):
    """A role the operator added to the platform (PLANNED) is not the platform's
    to speak for until its credentials list it."""
    from tests import ocpi_examples as ex

    onboarded = hub.onboard("CPO", "IN", "ECP")
    partner = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    partners.append(partner)
    token_c = hub.register(partner, onboarded["token_a"])
    hub.onboard("CPO", "IN", "PLN", platform_id=onboarded["platform_id"])

    def put_location(party_id: str, headers: dict):
        return hub.call("PUT", f"/ocpi/2.2.1/locations/receiver/IN/{party_id}/LOC-1", token_c,
                        json=ex.location(party_id=party_id, id="LOC-1"), headers=headers)

    def objects_stored() -> list[str]:
        return [t for t, _ in stored_events(settings) if t.startswith("hub.domain.objects:")]

    planned = put_location("PLN", {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "PLN",
                                   "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"})
    body = assert_envelope(planned, 200, 2001)
    assert body["status_message"].startswith("OCPI-from-party-id") and "IN/PLN" in body["status_message"]
    assert objects_stored() == []
    # The registered role pushes as usual, routing header names and values in lower case.
    answer = put_location("ECP", {"ocpi-from-country-code": "in", "ocpi-from-party-id": "ecp",
                                  "ocpi-to-country-code": "in", "ocpi-to-party-id": "cih"})
    assert (answer.status_code, answer.json()["status_code"]) == (201, 1000), answer.text
    assert answer.headers["OCPI-to-party-id"] == "ECP"
    assert objects_stored()


# Authorization header forms and token A ---------------------------------------------


def test_base64_and_raw_tokens_and_any_header_case_are_accepted(hub, partners):
    token_c = connect(hub, partners, [role("CPO", "IN", "ECP")]).hub_token
    encoded = base64.b64encode(token_c.encode()).decode()
    for headers in (
        {"Authorization": f"Token {encoded}"},
        {"Authorization": f"Token {token_c}"},
        {"authorization": f"Token {encoded}"},
        {"AUTHORIZATION": f"Token {token_c}"},
    ):
        answer = hub.call("GET", CLIENTINFO, headers=headers)
        assert answer.status_code == 200, headers
        assert answer.json()["status_code"] == 1000
    assert hub.call("GET", CLIENTINFO, token_c).status_code == 200
    assert hub.call("GET", CLIENTINFO, token_c, raw_token=True).status_code == 200


def test_token_a_reaches_only_versions_and_credentials_and_dies_at_registration(hub):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    for raw in (False, True):
        assert hub.call("GET", "/ocpi/versions", token_a, raw_token=raw).json()["status_code"] == 1000
        assert hub.call("GET", "/ocpi/2.2.1", token_a, raw_token=raw).json()["status_code"] == 1000
        credentials = hub.call("GET", CREDENTIALS, token_a, raw_token=raw)
        assert credentials.status_code == 200 and credentials.json()["status_code"] == 1000
        body = assert_envelope(hub.call("GET", CLIENTINFO, token_a, raw_token=raw), 401, 2000)
        assert token_a not in body["status_message"]

    partner = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    try:
        token_c = hub.register(partner, token_a)
    finally:
        partner.stop()
    for method, path in (("GET", "/ocpi/versions"), ("GET", "/ocpi/2.2.1"), ("GET", CREDENTIALS),
                         ("GET", CLIENTINFO), ("DELETE", CREDENTIALS)):
        assert_envelope(hub.call(method, path, token_a), 401, 2000)
    assert hub.call("GET", CLIENTINFO, token_c).status_code == 200


# Pagination ------------------------------------------------------------------------


def seven_parties_or_more(hub, partners) -> str:
    """Three onboarded (PLANNED) parties and one platform with five roles: 8 parties.

    Returns the platform's token C.
    """
    for party_id in ("PA1", "PA2", "PA3"):
        hub.onboard("EMSP", "IN", party_id)
    partner = connect(hub, partners, [role("CPO", "IN", "MP1"), role("CPO", "IN", "MP2"),
                                      role("EMSP", "IN", "MP3"), role("CPO", "IN", "MP4"),
                                      role("EMSP", "IN", "MP5")])
    return partner.hub_token


def walk(hub, token: str, params: dict) -> tuple[list[list[dict]], list]:
    """Follow Link rel="next" from the first page; returns the pages and the answers."""
    answer = hub.call("GET", CLIENTINFO, token, params=params)
    pages, answers = [], []
    while True:
        assert answer.status_code == 200 and answer.json()["status_code"] == 1000, answer.text
        pages.append(answer.json()["data"])
        answers.append(answer)
        link = answer.headers.get("Link")
        if link is None:
            return pages, answers
        match = LINK.match(link)
        assert match, link
        assert match["url"].startswith(f"{hub.url}{CLIENTINFO}?")
        assert len(pages) < 20, "Link never ends"
        answer = hub.call("GET", match["url"], token)


def key(info: dict) -> tuple[str, str, str]:
    return info["country_code"], info["party_id"], info["role"]


def test_pages_follow_link_headers_and_add_up_to_the_whole_list(hub, partners):
    token = seven_parties_or_more(hub, partners)
    limit_max = hub.settings.page_limit
    whole = hub.call("GET", CLIENTINFO, token)
    assert whole.headers["X-Total-Count"] == "8"
    assert whole.headers["X-Limit"] == str(limit_max)
    assert "Link" not in whole.headers
    everything = whole.json()["data"]
    assert len(everything) == 8
    statuses = {key(c): c["status"] for c in everything}
    assert statuses[("IN", "PA1", "EMSP")] == "PLANNED"
    assert statuses[("IN", "MP4", "CPO")] == "CONNECTED"

    pages, answers = walk(hub, token, {"limit": 2})
    assert len(pages) == 4 and [len(p) for p in pages] == [2, 2, 2, 2]
    for answer in answers:
        assert answer.headers["X-Total-Count"] == "8"
        assert answer.headers["X-Limit"] == str(limit_max)
    assert "Link" not in answers[-1].headers
    # The next link moves offset on and keeps the page size.
    assert "offset=2" in answers[0].headers["Link"] and "limit=2" in answers[0].headers["Link"]
    walked = [c for page in pages for c in page]
    assert len({key(c) for c in walked}) == len(walked) == 8  # no duplicates
    assert walked == everything  # same objects, same (stable) order

    # An odd page size: the last page is short and has no Link.
    pages, answers = walk(hub, token, {"limit": 3})
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [c for page in pages for c in page] == everything

    # Starting at an offset.
    tail = hub.call("GET", CLIENTINFO, token, params={"offset": 6, "limit": 2})
    assert tail.json()["data"] == everything[6:] and "Link" not in tail.headers
    beyond = hub.call("GET", CLIENTINFO, token, params={"offset": 50})
    assert beyond.json()["data"] == [] and beyond.headers["X-Total-Count"] == "8"
    assert "Link" not in beyond.headers


def test_a_crawl_sees_every_party_once_while_statuses_change(hub, partners, settings):
    """A party whose status changes mid-crawl neither vanishes nor comes back on a
    later page, and a party onboarded meanwhile comes at the end."""
    from tests.cli import run_hub

    token = seven_parties_or_more(hub, partners)
    before = {key(c) for c in hub.call("GET", CLIENTINFO, token).json()["data"]}
    first = hub.call("GET", CLIENTINFO, token, params={"limit": 2})
    seen = [key(c) for c in first.json()["data"]]
    # The operator suspends the first party of page 1 (its last_updated moves on)
    # and onboards another one, while the partner is between pages.
    run_hub(settings, "parties", "suspend", seen[0][0], seen[0][1], "--role", seen[0][2])
    run_hub(settings, "parties", "add", "--role", "CPO", "--country-code", "IN", "--party-id", "NEW",
            "--name", "New")
    answer = first
    while "Link" in answer.headers:
        answer = hub.call("GET", answer.links["next"]["url"], token)
        assert answer.json()["status_code"] == 1000, answer.text
        seen += [key(c) for c in answer.json()["data"]]
        assert len(seen) < 20, "Link never ends"
    assert len(seen) == len(set(seen)), seen  # nothing twice
    assert set(seen) == before | {("IN", "NEW", "CPO")}  # nothing skipped
    assert seen[-1] == ("IN", "NEW", "CPO")
    statuses = {key(c): c["status"] for c in hub.call("GET", CLIENTINFO, token).json()["data"]}
    assert statuses[seen[0]] == "SUSPENDED"


def test_limit_above_the_maximum_is_capped(hub, partners):
    token = seven_parties_or_more(hub, partners)
    limit_max = hub.settings.page_limit
    answer = hub.call("GET", CLIENTINFO, token, params={"limit": limit_max * 20})
    assert answer.status_code == 200 and answer.json()["status_code"] == 1000
    assert answer.headers["X-Limit"] == str(limit_max)
    assert len(answer.json()["data"]) == 8
    assert "Link" not in answer.headers
    enormous = hub.call("GET", CLIENTINFO, token, params={"limit": "9" * 30})
    assert enormous.json()["status_code"] == 1000 and len(enormous.json()["data"]) == 8
    assert enormous.headers["X-Limit"] == str(limit_max)


@pytest.fixture
def small_page_hub(settings):
    """The hub served with a page maximum of 3 (HUB_PAGE_LIMIT=3)."""
    from handlers.app import create_app
    from handlers.context import WebContext
    from tests.conftest import HubUnderTest, serve_in_thread

    small = replace(settings, page_limit=3)
    ctx = WebContext.open(small, small.database_url)
    port = int(small.extra["port"])
    server = serve_in_thread(create_app(ctx), port)
    yield HubUnderTest(small, f"http://127.0.0.1:{port}", ctx)
    server.shutdown()
    server.server_close()
    ctx.close()


def test_the_server_maximum_wins_over_a_larger_limit(small_page_hub, partners):
    hub = small_page_hub
    token = seven_parties_or_more(hub, partners)
    for params in ({}, {"limit": 2000}):
        first = hub.call("GET", CLIENTINFO, token, params=params)
        assert len(first.json()["data"]) == 3
        assert first.headers["X-Limit"] == "3" and first.headers["X-Total-Count"] == "8"
        next_url = LINK.match(first.headers["Link"])["url"]
        assert "offset=3&limit=3" in next_url, next_url
    pages, answers = walk(hub, token, {"limit": 2000})
    assert [len(p) for p in pages] == [3, 3, 2]
    assert all(a.headers["X-Limit"] == "3" for a in answers)
    assert len({key(c) for page in pages for c in page}) == 8
    # A smaller limit than the maximum is honoured, X-Limit still says the maximum.
    two = hub.call("GET", CLIENTINFO, token, params={"limit": 2})
    assert len(two.json()["data"]) == 2 and two.headers["X-Limit"] == "3"


def test_date_filters_on_last_updated_and_links_keep_them(hub, partners):
    token = seven_parties_or_more(hub, partners)
    everything = hub.call("GET", CLIENTINFO, token).json()["data"]
    moments = sorted({c["last_updated"] for c in everything})
    assert len(moments) >= 3, moments  # the onboarded parties were written one after another
    for value in moments:
        assert TIMESTAMP.match(value)

    # date_from is inclusive; date_to just after the newest object keeps everything later.
    date_from = moments[1]
    date_to = format_datetime(parse_datetime(moments[-1]) + timedelta(milliseconds=1))
    expected = [c for c in everything if c["last_updated"] >= date_from]
    assert 3 <= len(expected) < len(everything)
    pages, answers = walk(hub, token, {"date_from": date_from, "date_to": date_to, "limit": 2})
    assert len(pages) >= 2
    for answer in answers:
        assert answer.headers["X-Total-Count"] == str(len(expected))
    for answer in answers[:-1]:
        link = answer.headers["Link"]
        assert answer.links["next"]["url"] == LINK.match(link)["url"]
        query = answer.links["next"]["url"].split("?", 1)[1]
        assert "date_from=" + date_from.replace(":", "%3A") in query
        assert "date_to=" + date_to.replace(":", "%3A") in query
    assert [c for page in pages for c in page] == expected

    # date_to is exclusive.
    newest = moments[-1]
    before = hub.call("GET", CLIENTINFO, token, params={"date_to": newest})
    assert before.json()["data"] == [c for c in everything if c["last_updated"] < newest]
    assert before.headers["X-Total-Count"] == str(len(before.json()["data"]))
    at_newest = hub.call("GET", CLIENTINFO, token, params={"date_from": newest})
    assert at_newest.json()["data"] == [c for c in everything if c["last_updated"] == newest]
    # A window [t, t) is empty.
    empty = hub.call("GET", CLIENTINFO, token, params={"date_from": newest, "date_to": newest})
    assert empty.json()["data"] == [] and empty.headers["X-Total-Count"] == "0"


def test_date_from_in_the_future_gives_an_empty_list(hub, partners):
    token = seven_parties_or_more(hub, partners)
    answer = hub.call("GET", CLIENTINFO, token, params={"date_from": "2999-01-01T00:00:00Z"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["status_code"] == 1000 and body["data"] == []
    assert answer.headers["X-Total-Count"] == "0"
    assert answer.headers["X-Limit"] == str(hub.settings.page_limit)
    assert "Link" not in answer.headers
    # A DateTime without zone designator is UTC too.
    same = hub.call("GET", CLIENTINFO, token, params={"date_from": "2999-01-01T00:00:00"})
    assert same.json()["data"] == [] and same.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("offset", "-1"),
        ("offset", "first"),
        ("limit", "abc"),
        ("limit", "-5"),
        ("date_from", "yesterday"),
        ("date_from", "2026-01-01T00:00:00+00:00"),
        ("date_to", "2026-01-01"),
        ("date_to", "2026-13-01T00:00:00Z"),
        ("offset", "99999999999999999999"),  # beyond PostgreSQL's bigint: not a 500
    ],
)
def test_bad_paging_parameter_is_2001_naming_it(hub, partners, name, value):
    token = connect(hub, partners, [role("EMSP", "IN", "EMP")]).hub_token
    body = assert_envelope(hub.call("GET", CLIENTINFO, token, params={name: value}), 200, 2001)
    assert body["status_message"].startswith(name), body
    assert "data" not in body or body["data"] is None


# The audit record of every request ------------------------------------------------


def stored_events(settings) -> list[tuple[str, bytes]]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        rows = conn.execute("SELECT topic, state FROM hub_events ORDER BY notification_id").fetchall()
    return [(topic, bytes(state)) for topic, state in rows]


def answered_requests(settings) -> dict[str, dict]:
    """The Request.Answered records, by request id."""
    records = {}
    for topic, state in stored_events(settings):
        if topic.endswith("Request.Answered"):
            record = orjson.loads(state)
            records[record["request_id"]] = record
    return records


def test_every_authenticated_request_is_recorded_and_no_token_is_stored(hub, settings):
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    correlation = "audit-" + uuid.uuid4().hex

    def call(request_id, method, path, token, headers=None, **kwargs):
        ids = {"X-Request-ID": request_id, "X-Correlation-ID": correlation}
        return hub.call(method, path, token, headers={**ids, **(headers or {})}, **kwargs)

    try:
        call("r-versions", "GET", "/ocpi/versions", token_a)
        call("r-details", "GET", "/ocpi/2.2.1", token_a, raw_token=True)
        call("r-a-on-clientinfo", "GET", CLIENTINFO, token_a)
        call("r-not-json", "POST", CREDENTIALS, token_a, data=b"{oops",
             headers={"Content-Type": "application/json"})
        register = call("r-register", "POST", CREDENTIALS, token_a, json=partner.credentials())
        token_c = register.json()["data"]["token"]
        call("r-list", "GET", CLIENTINFO, token_c, params={"limit": 1})
        call("r-bad-param", "GET", CLIENTINFO, token_c, params={"offset": "-1"})
        call("r-wrong-method", "PATCH", CREDENTIALS, token_c, json={})
        # Not authenticated: never recorded.
        call("r-no-token", "GET", CLIENTINFO, None)
        call("r-unknown-token", "GET", CLIENTINFO, "not-a-token-of-anyone")
        call("r-dead-token-a", "GET", "/ocpi/versions", token_a)
        call("r-bearer", "GET", CLIENTINFO, None, headers={"Authorization": f"Bearer {token_c}"})
        call("r-unknown-path", "GET", "/ocpi/2.2.1/nope", None)
    finally:
        partner.stop()

    records = answered_requests(settings)
    expected = {
        # request id: (module, method, path, http status, OCPI status code)
        "r-versions": ("versions", "GET", "/ocpi/versions", 200, 1000),
        "r-details": ("versions", "GET", "/ocpi/2.2.1", 200, 1000),
        "r-a-on-clientinfo": ("hubclientinfo", "GET", CLIENTINFO, 401, 2000),
        "r-not-json": ("credentials", "POST", CREDENTIALS, 400, 2001),
        "r-register": ("credentials", "POST", CREDENTIALS, 200, 1000),
        "r-list": ("hubclientinfo", "GET", CLIENTINFO, 200, 1000),
        "r-bad-param": ("hubclientinfo", "GET", CLIENTINFO, 200, 2001),
        "r-wrong-method": ("credentials", "PATCH", CREDENTIALS, 405, 2000),
    }
    for request_id, (module, method, path, http_status, status_code) in expected.items():
        record = records.get(request_id)
        assert record is not None, f"{request_id} was not recorded"
        assert (record["module"], record["method"], record["path"]) == (module, method, path)
        assert (record["http_status"], record["status_code"]) == (http_status, status_code), record
        assert record["correlation_id"] == correlation
    assert records["r-list"]["query"] == "limit=1"
    assert records["r-bad-param"]["status_message"].startswith("offset")
    for unauthenticated in ("r-no-token", "r-unknown-token", "r-dead-token-a", "r-bearer",
                            "r-unknown-path"):
        assert unauthenticated not in records
    # Every record of one platform carries the same platform id.
    assert len({records[r]["platform_id"] for r in expected}) == 1

    # No token, in any form, in any stored event.
    token_b = partner.token_for_hub
    everything = b"".join(state for _, state in stored_events(settings))
    for token in (token_a, token_b, token_c):
        for form in (token, base64.b64encode(token.encode()).decode()):
            assert form.encode() not in everything
