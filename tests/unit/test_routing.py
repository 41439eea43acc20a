"""Unit tests of the rules written once: routing classification, pagination
parameters and headers, and reading the Authorization header.

``classify`` is a pure function; its two look-ups are given as plain
functions over a small in-memory directory of parties.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from hub.domain.routing import (
    BROADCAST,
    DIRECTED,
    FROM_CC,
    FROM_PID,
    GET_ALL,
    OPEN,
    TO_CC,
    TO_PID,
    classify,
)
from hub.infra.security import encode_header_token, header_token_candidates
from hub.ocpi.errors import HubError, InvalidParameters, OcpiError
from hub.ocpi.pagination import PageRequest, page_headers, parse_page

# Routing ----------------------------------------------------------------------------

# Every party the hub knows: (country_code, party_id, role) -> status.
DIRECTORY = {
    ("IN", "CPA", "CPO"): "CONNECTED",
    ("IN", "CPB", "CPO"): "CONNECTED",
    ("IN", "EMA", "EMSP"): "CONNECTED",
    ("IN", "EMB", "EMSP"): "CONNECTED",
    ("IN", "OFF", "EMSP"): "OFFLINE",
    ("IN", "PLN", "CPO"): "PLANNED",
    ("IN", "SUS", "CPO"): "SUSPENDED",
    ("IN", "SUE", "EMSP"): "SUSPENDED",
}


def caller_of(*own: tuple[str, str, str]):
    """``caller_party`` for a connection owning the parties ``own``."""

    def caller_party(cc: str, pid: str, roles: frozenset[str]):
        for role in sorted(roles):
            if (cc, pid, role) in own:
                return role, DIRECTORY[(cc, pid, role)]
        return None

    return caller_party


def find_receiver(cc: str, pid: str, _sender_role: str) -> list[dict]:
    return [{"country_code": c, "party_id": p, "role": r, "status": s}
            for (c, p, r), s in DIRECTORY.items() if (c, p) == (cc, pid)]


CPO_CALLER = caller_of(("IN", "CPA", "CPO"), ("IN", "SUS", "CPO"), ("IN", "PLN", "CPO"))
EMSP_CALLER = caller_of(("IN", "EMA", "EMSP"), ("IN", "SUE", "EMSP"))


def route(headers: dict, *, module="locations", interface="RECEIVER", method="PUT",
          is_list=False, caller=CPO_CALLER):
    return classify(module=module, interface=interface, method=method, is_list=is_list,
                    headers=headers, caller_party=caller, find_receiver=find_receiver)


def from_(cc="IN", pid="CPA") -> dict:
    return {FROM_CC: cc, FROM_PID: pid}


def to(cc="IN", pid="EMA") -> dict:
    return {TO_CC: cc, TO_PID: pid}


def rejected(exc_info, status_code: int, http_status: int = 200) -> str:
    exc = exc_info.value
    assert exc.status_code == status_code, exc.message
    assert exc.http_status == http_status
    return exc.message


@pytest.mark.parametrize("missing", [FROM_CC, FROM_PID])
def test_missing_from_header_is_2001_naming_it(missing):
    headers = {**from_(), **to()}
    del headers[missing]
    with pytest.raises(InvalidParameters) as exc:
        route(headers)
    assert rejected(exc, 2001).startswith(missing)


def test_empty_from_header_counts_as_missing():
    with pytest.raises(InvalidParameters) as exc:
        route({FROM_CC: "IN", FROM_PID: "", **to()})
    assert rejected(exc, 2001).startswith(FROM_PID)


def test_from_party_of_another_connection_is_refused():
    # IN/CPB is a connected CPO, but not one of this caller's parties.
    with pytest.raises(InvalidParameters) as exc:
        route({**from_(pid="CPB"), **to()})
    message = rejected(exc, 2001)
    assert FROM_PID in message and "IN/CPB" in message
    # An address the hub does not know at all is refused the same way.
    with pytest.raises(InvalidParameters):
        route({**from_(pid="ZZZ"), **to()})


@pytest.mark.parametrize(
    ("module", "interface", "method", "caller", "sender"),
    [
        ("locations", "RECEIVER", "PUT", EMSP_CALLER, "EMA"),    # an eMSP pushing locations
        ("tariffs", "RECEIVER", "PATCH", EMSP_CALLER, "EMA"),
        ("cdrs", "RECEIVER", "POST", EMSP_CALLER, "EMA"),
        ("tokens", "RECEIVER", "PUT", CPO_CALLER, "CPA"),        # a CPO pushing tokens
        ("commands", "RECEIVER", "POST", CPO_CALLER, "CPA"),     # a CPO sending commands
        ("locations", "SENDER", "GET", CPO_CALLER, "CPA"),       # a CPO pulling locations
        ("tokens", "SENDER", "GET", EMSP_CALLER, "EMA"),         # an eMSP pulling tokens
        ("hubclientinfo", "SENDER", "GET", CPO_CALLER, "CPA"),   # never classified
    ],
)
def test_party_whose_role_does_not_fit_the_interface_is_refused(module, interface, method, caller,
                                                               sender):
    with pytest.raises(InvalidParameters) as exc:
        route({**from_(pid=sender), "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"},
              module=module, interface=interface, method=method, caller=caller)
    message = rejected(exc, 2001)
    assert FROM_PID in message and module in message


@pytest.mark.parametrize(
    ("module", "interface", "method", "caller", "sender", "role"),
    [
        ("locations", "RECEIVER", "PUT", CPO_CALLER, "CPA", "CPO"),
        ("tokens", "RECEIVER", "PUT", EMSP_CALLER, "EMA", "EMSP"),
        ("commands", "RECEIVER", "POST", EMSP_CALLER, "EMA", "EMSP"),
        ("tokens", "SENDER", "GET", CPO_CALLER, "CPA", "CPO"),
        ("locations", "SENDER", "GET", EMSP_CALLER, "EMA", "EMSP"),
    ],
)
def test_party_whose_role_fits_is_the_sender(module, interface, method, caller, sender, role):
    routing = route({**from_(pid=sender), TO_CC: "IN", TO_PID: "CIH"}, module=module,
                    interface=interface, method=method, is_list=method == "GET", caller=caller)
    assert (routing.from_country_code, routing.from_party_id, routing.from_role) == ("IN", sender, role)
    assert routing.sender_key == f"IN/{sender}/{role}"


def test_from_party_the_platform_never_registered_is_2001():
    # IN/PLN was added to this platform by the operator (PLANNED), but the
    # platform's credentials never listed it.
    with pytest.raises(InvalidParameters) as exc:
        route({**from_(pid="PLN"), **to()})
    message = rejected(exc, 2001)
    assert message.startswith(FROM_PID) and "IN/PLN" in message and "registered" in message


def test_suspended_from_party_is_401():
    with pytest.raises(OcpiError) as exc:
        route({**from_(pid="SUS"), **to()})
    assert "suspended" in rejected(exc, 2000, http_status=401)
    with pytest.raises(OcpiError) as exc:
        route({**from_(pid="SUE"), **to(pid="CPA")}, module="tokens", caller=EMSP_CALLER)
    rejected(exc, 2000, http_status=401)


@pytest.mark.parametrize(("present", "missing"), [(TO_CC, TO_PID), (TO_PID, TO_CC)])
def test_one_to_header_without_the_other_is_2001_naming_the_missing_one(present, missing):
    headers = {**from_(), present: to()[present]}
    for method, is_list in (("PUT", False), ("GET", True)):
        with pytest.raises(InvalidParameters) as exc:
            route(headers, method=method, is_list=is_list)
        assert rejected(exc, 2001).startswith(missing)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST"])
def test_to_the_hub_on_a_push_is_a_broadcast(method):
    routing = route({**from_(), TO_CC: "IN", TO_PID: "CIH"}, method=method)
    assert routing.scenario == BROADCAST
    assert (routing.to_country_code, routing.to_party_id, routing.to_role) == ("IN", "CIH", "HUB")
    assert (routing.from_country_code, routing.from_party_id, routing.from_role) == ("IN", "CPA", "CPO")
    assert routing.receiver_key == "IN/CIH/HUB"


def test_to_the_hub_on_a_list_get_is_get_all():
    routing = route({**from_(pid="EMA"), TO_CC: "IN", TO_PID: "CIH"}, interface="SENDER",
                    method="GET", is_list=True, caller=EMSP_CALLER)
    assert routing.scenario == GET_ALL
    assert (routing.to_country_code, routing.to_party_id) == ("IN", "CIH")


def test_list_get_without_to_is_2001():
    with pytest.raises(InvalidParameters) as exc:
        route(from_(pid="EMA"), interface="SENDER", method="GET", is_list=True, caller=EMSP_CALLER)
    message = rejected(exc, 2001)
    assert message.startswith(TO_PID) and "IN/CIH" in message


@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST", "DELETE"])
def test_push_without_to_is_open_routing(method):
    routing = route(from_(), method=method)
    assert routing.scenario == OPEN
    assert routing.to_country_code is None and routing.to_party_id is None and routing.to_role is None
    assert routing.receiver_key is None
    assert routing.sender_key == "IN/CPA/CPO"


def test_single_object_get_without_to_is_open_routing():
    routing = route(from_(pid="EMA"), interface="SENDER", method="GET", is_list=False,
                    caller=EMSP_CALLER)
    assert routing.scenario == OPEN


def test_unknown_receiver_is_4001_with_http_200():
    with pytest.raises(HubError) as exc:
        route({**from_(), **to(pid="NOB")})
    assert "IN/NOB" in rejected(exc, 4001)
    with pytest.raises(HubError) as exc:
        route({**from_(), **to(cc="NL", pid="EMA")})
    rejected(exc, 4001)


def test_offline_receiver_is_accepted_for_store_and_forward():
    routing = route({**from_(), **to(pid="OFF")})
    assert routing.scenario == DIRECTED and routing.receiver_key == "IN/OFF/EMSP"


@pytest.mark.parametrize(("pid", "status"), [("SUE", "SUSPENDED")])
def test_known_but_not_connected_receiver_is_4003_with_http_200(pid, status):
    with pytest.raises(HubError) as exc:
        route({**from_(), **to(pid=pid)})
    message = rejected(exc, 4003)
    assert f"IN/{pid}" in message and status in message


def test_planned_receiver_is_4003():
    with pytest.raises(HubError) as exc:
        route({**from_(pid="EMA"), **to(pid="PLN")}, module="tokens", caller=EMSP_CALLER)
    assert "PLANNED" in rejected(exc, 4003)


def test_connected_receiver_is_directed_with_its_role():
    routing = route({**from_(), **to(pid="EMB")})
    assert routing.scenario == DIRECTED
    assert (routing.to_country_code, routing.to_party_id, routing.to_role) == ("IN", "EMB", "EMSP")
    assert routing.receiver_key == "IN/EMB/EMSP"
    assert routing.sender_key == "IN/CPA/CPO"
    back = route({**from_(pid="EMA"), **to(pid="CPB")}, module="tokens", caller=EMSP_CALLER)
    assert (back.scenario, back.to_role) == (DIRECTED, "CPO")


def test_directed_get_of_one_object_goes_to_the_receiver():
    routing = route({**from_(pid="EMA"), **to(pid="CPB")}, interface="SENDER", method="GET",
                    caller=EMSP_CALLER)
    assert (routing.scenario, routing.to_party_id, routing.to_role) == (DIRECTED, "CPB", "CPO")


def test_header_values_are_case_insensitive():
    assert route({**from_("in", "cpa"), TO_CC: "in", TO_PID: "cih"}).scenario == BROADCAST
    get_all = route({**from_("in", "ema"), TO_CC: "In", TO_PID: "Cih"}, interface="SENDER",
                    method="GET", is_list=True, caller=EMSP_CALLER)
    assert get_all.scenario == GET_ALL
    directed = route({**from_("in", "Cpa"), **to("in", "emb")})
    assert directed.scenario == DIRECTED
    assert (directed.from_country_code, directed.from_party_id) == ("IN", "CPA")
    assert (directed.to_country_code, directed.to_party_id) == ("IN", "EMB")
    padded = route({**from_(" IN ", " CPA "), **to(" IN", "EMB ")})
    assert (padded.from_party_id, padded.to_party_id) == ("CPA", "EMB")


# Pagination ----------------------------------------------------------------------------

MAX = 100


def test_parse_page_defaults():
    page = parse_page({}, MAX)
    assert (page.offset, page.limit, page.date_from, page.date_to) == (0, MAX, None, None)
    assert page.max_limit == MAX and page.extra == ()
    blank = parse_page({"offset": "", "limit": "", "date_from": "", "date_to": ""}, MAX)
    assert (blank.offset, blank.limit, blank.date_from, blank.date_to) == (0, MAX, None, None)


def test_parse_page_reads_offset_limit_and_dates():
    page = parse_page({"offset": "20", "limit": "10", "date_from": "2026-01-31T12:00:00Z",
                       "date_to": "2026-02-01T00:00:00.5Z"}, MAX)
    assert (page.offset, page.limit) == (20, 10)
    assert page.date_from == datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert page.date_to == datetime(2026, 2, 1, 0, 0, 0, 500000, tzinfo=UTC)
    # No zone designator means UTC.
    assert parse_page({"date_from": "2026-01-31T12:00:00"}, MAX).date_from == page.date_from


@pytest.mark.parametrize(("asked", "given"), [("1", 1), ("100", 100), ("101", 100), ("2000", 100),
                                              ("0", 100), ("9" * 40, 100)])
def test_limit_is_capped_at_the_maximum(asked, given):
    page = parse_page({"limit": asked}, MAX)
    assert page.limit == given and page.max_limit == MAX


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("offset", "-1"),
        ("offset", "1.5"),
        ("offset", "ten"),
        ("offset", "9" * 40),
        ("limit", "abc"),
        ("limit", "-1"),
        ("date_from", "yesterday"),
        ("date_from", "2026-01-01T00:00:00+00:00"),
        ("date_from", "2026-01-01T00:00:00+05:30"),
        ("date_from", "2026-01-01"),
        ("date_to", "2026-02-30T00:00:00Z"),
        ("date_to", "2026-01-01T00:00:00.000000000Z"),
    ],
)
def test_bad_parameter_is_2001_naming_it(name, value):
    with pytest.raises(InvalidParameters) as exc:
        parse_page({name: value}, MAX)
    assert exc.value.status_code == 2001
    assert exc.value.message.startswith(f"{name}:")


def test_date_from_can_be_required():
    with pytest.raises(InvalidParameters) as exc:
        parse_page({}, MAX, require_date_from=True)
    assert exc.value.message.startswith("date_from")
    assert parse_page({"date_from": "2026-01-01T00:00:00Z"}, MAX, require_date_from=True).date_from


def test_other_query_parameters_are_kept_in_order():
    page = parse_page({"zeta": "1", "alpha": "2", "offset": "3"}, MAX)
    assert page.extra == (("alpha", "2"), ("zeta", "1"))


URL = "https://hub.example/ocpi/2.2.1/locations"


def page(offset=0, limit=2, max_limit=MAX) -> PageRequest:
    return PageRequest(offset=offset, limit=limit, date_from=None, date_to=None, max_limit=max_limit)


def test_headers_of_a_page_with_more_to_come():
    headers = page_headers(page(0, 2), total=5, returned=2, url=URL, raw_params={"limit": "2"})
    assert headers["X-Total-Count"] == "5"
    assert headers["X-Limit"] == str(MAX)
    assert headers["Link"] == f'<{URL}?offset=2&limit=2>; rel="next"'


def test_next_link_keeps_the_filters_and_moves_offset_by_what_was_returned():
    raw = {"date_from": "2026-01-01T00:00:00Z", "date_to": "2026-02-01T00:00:00Z",
           "offset": "4", "limit": "2000"}
    headers = page_headers(page(4, 100), total=500, returned=100, url=URL, raw_params=raw)
    assert headers["Link"] == (
        f"<{URL}?date_from=2026-01-01T00%3A00%3A00Z&date_to=2026-02-01T00%3A00%3A00Z"
        '&offset=104&limit=100>; rel="next"'
    )
    assert headers["X-Limit"] == str(MAX)


def test_no_link_on_the_last_page():
    last = page_headers(page(4, 2), total=6, returned=2, url=URL, raw_params={})
    assert "Link" not in last and last["X-Total-Count"] == "6"
    short = page_headers(page(4, 5), total=6, returned=2, url=URL, raw_params={})
    assert "Link" not in short


def test_no_link_on_an_empty_page():
    empty = page_headers(page(0, 2), total=0, returned=0, url=URL, raw_params={})
    assert empty == {"X-Total-Count": "0", "X-Limit": str(MAX)}
    beyond = page_headers(page(10, 2), total=6, returned=0, url=URL, raw_params={"offset": "10"})
    assert "Link" not in beyond


def test_walking_the_links_visits_every_offset_once():
    total, offset, seen = 7, 0, []
    while True:
        returned = min(3, total - offset)
        seen.extend(range(offset, offset + returned))
        headers = page_headers(page(offset, 3), total=total, returned=returned, url=URL, raw_params={})
        if "Link" not in headers:
            break
        offset = int(headers["Link"].split("offset=")[1].split("&")[0])
    assert seen == list(range(total))


# Authorization header ----------------------------------------------------------------

TOKEN = "example-token"
ENCODED = base64.b64encode(TOKEN.encode()).decode()  # ZXhhbXBsZS10b2tlbg==


def test_base64_token_comes_first_then_the_raw_value():
    assert header_token_candidates(f"Token {ENCODED}") == [TOKEN, ENCODED]


def test_raw_token_that_is_not_base64_is_the_only_candidate():
    assert header_token_candidates(f"Token {TOKEN}") == [TOKEN]
    issued = "Yc4pS0b0zVlxE5kk3h2mC1Tq8nJxR7uQ2wL9aD6fG1e"  # 43 chars, like new_token()
    assert header_token_candidates(f"Token {issued}") == [issued]


def test_scheme_is_case_insensitive_and_spaces_are_tolerated():
    assert header_token_candidates(f"token {ENCODED}")[0] == TOKEN
    assert header_token_candidates(f"TOKEN {ENCODED}")[0] == TOKEN
    assert header_token_candidates(f"  Token   {ENCODED}  ")[0] == TOKEN


def test_encode_header_token_round_trips():
    assert encode_header_token(TOKEN) == f"Token {ENCODED}"
    assert header_token_candidates(encode_header_token(TOKEN))[0] == TOKEN


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "Token", "Token ", "Token    ", "Bearer x", f"Bearer {ENCODED}", "Basic abc",
     ENCODED, "Tokenx abc", "Token " + "a" * 513],
)
def test_missing_or_malformed_header_has_no_candidates(header):
    assert header_token_candidates(header) == []


def test_base64_of_unprintable_bytes_is_only_tried_raw():
    binary = base64.b64encode(b"\x00\x01tok\n").decode()
    assert header_token_candidates(f"Token {binary}") == [binary]
    not_utf8 = base64.b64encode(b"\xff\xfe\xfd").decode()
    assert header_token_candidates(f"Token {not_utf8}") == [not_utf8]


def test_a_registered_role_is_chosen_before_a_planned_one_with_the_same_ids():
    from uuid import uuid4

    from handlers.middleware import _own_party
    from projections.queries import Caller, PartyRef

    caller = Caller(platform_id=uuid4(), state="REGISTERED", token_kind="CREDENTIALS", token="t", parties=(
        PartyRef("IN", "EMP", "EMSP", "PLANNED", False),
        PartyRef("IN", "EMP", "NSP", "CONNECTED", False),
    ))
    assert _own_party(caller, "IN", "EMP", frozenset({"EMSP", "NSP"})) == ("NSP", "CONNECTED")
    assert _own_party(caller, "IN", "EMP", frozenset({"EMSP"})) == ("EMSP", "PLANNED")
    assert _own_party(caller, "IN", "XXX", frozenset({"EMSP", "NSP"})) is None
