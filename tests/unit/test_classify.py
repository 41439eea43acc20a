"""Routing classification, scenario by scenario, through the public ``classify()`` only.

``tests/unit/test_routing.py`` covers the headers one by one; this table is the
whole matrix a partner meets: who calls which interface with which addressing,
and what the hub answers (a scenario, or the OCPI error with its HTTP status).
"""

from __future__ import annotations

import pytest

from hub.domain.routing import BROADCAST, DIRECTED, GET_ALL, OPEN, classify
from hub.ocpi.errors import OcpiError

# Every party the hub knows: (country_code, party_id, role) -> status.
DIRECTORY = {
    ("IN", "CPA", "CPO"): "CONNECTED",
    ("IN", "EMA", "EMSP"): "CONNECTED",
    ("IN", "OFF", "EMSP"): "OFFLINE",
    ("IN", "PLN", "EMSP"): "PLANNED",
    ("IN", "SUE", "EMSP"): "SUSPENDED",
    # One id, two roles: a CPO and an eMSP run by one company.
    ("IN", "DUO", "CPO"): "CONNECTED",
    ("IN", "DUO", "EMSP"): "OFFLINE",
    # One id, both eMSP-side roles, one connected.
    ("IN", "TWO", "EMSP"): "OFFLINE",
    ("IN", "TWO", "NSP"): "CONNECTED",
}
# The caller's own parties (its platform's roles).
OWN = {("IN", "CPA", "CPO"), ("IN", "EMA", "EMSP"), ("IN", "SUE", "EMSP"), ("IN", "PLN", "EMSP")}


def caller_party(cc: str, pid: str, roles: frozenset[str]):
    for role in sorted(roles):
        if (cc, pid, role) in OWN:
            return role, DIRECTORY[(cc, pid, role)]
    return None


def find_receiver(cc: str, pid: str, _sender_role: str) -> list[dict]:
    return [{"role": r, "status": s} for (c, p, r), s in DIRECTORY.items() if (c, p) == (cc, pid)]


def classified(frm: str, to: str | None, module: str, interface: str, method: str, is_list: bool = False):
    """``frm``/``to``: ``CC/PID`` (``to`` None: no OCPI-to headers). Returns the routing or the error."""
    headers = dict(zip(("OCPI-from-country-code", "OCPI-from-party-id"), frm.split("/"), strict=True))
    if to is not None:
        headers.update(zip(("OCPI-to-country-code", "OCPI-to-party-id"), to.split("/"), strict=True))
    try:
        return classify(module=module, interface=interface, method=method, is_list=is_list, headers=headers,
                        caller_party=caller_party, find_receiver=find_receiver)
    except OcpiError as exc:
        return exc


@pytest.mark.parametrize(("frm", "to", "module", "interface", "method", "is_list", "scenario", "receiver"), [
    # A CPO pushes.
    ("IN/CPA", "IN/CIH", "locations", "RECEIVER", "PUT", False, BROADCAST, "IN/CIH/HUB"),
    ("IN/CPA", "IN/CIH", "tariffs", "RECEIVER", "DELETE", False, BROADCAST, "IN/CIH/HUB"),
    ("IN/CPA", None, "locations", "RECEIVER", "PATCH", False, OPEN, None),
    ("IN/CPA", "IN/EMA", "sessions", "RECEIVER", "PUT", False, DIRECTED, "IN/EMA/EMSP"),
    ("IN/CPA", "IN/EMA", "cdrs", "RECEIVER", "POST", False, DIRECTED, "IN/EMA/EMSP"),
    ("IN/CPA", "IN/OFF", "cdrs", "RECEIVER", "POST", False, DIRECTED, "IN/OFF/EMSP"),  # stored, forwarded later
    # An eMSP pulls.
    ("IN/EMA", "IN/CIH", "locations", "SENDER", "GET", True, GET_ALL, "IN/CIH/HUB"),
    ("IN/EMA", "IN/CIH", "locations", "SENDER", "GET", False, GET_ALL, "IN/CIH/HUB"),
    ("IN/EMA", None, "tariffs", "SENDER", "GET", False, OPEN, None),
    ("IN/EMA", "IN/CPA", "locations", "SENDER", "GET", False, DIRECTED, "IN/CPA/CPO"),
    # An eMSP pushes Tokens and sends commands; a CPO pulls Tokens.
    ("IN/EMA", "IN/CPA", "tokens", "RECEIVER", "PUT", False, DIRECTED, "IN/CPA/CPO"),
    ("IN/EMA", "IN/CIH", "tokens", "RECEIVER", "PUT", False, BROADCAST, "IN/CIH/HUB"),
    ("IN/EMA", "IN/CPA", "commands", "RECEIVER", "POST", False, DIRECTED, "IN/CPA/CPO"),
    ("IN/CPA", "IN/CIH", "tokens", "SENDER", "GET", True, GET_ALL, "IN/CIH/HUB"),
    # A receiver with the same ids in several roles: the one that is not the sender's role.
    ("IN/CPA", "IN/DUO", "sessions", "RECEIVER", "PUT", False, DIRECTED, "IN/DUO/EMSP"),
    ("IN/EMA", "IN/DUO", "tokens", "RECEIVER", "PUT", False, DIRECTED, "IN/DUO/CPO"),
    # ...and among several acceptable ones, a CONNECTED one before an OFFLINE one.
    # Sessions go to an EMSP only: its OFFLINE EMSP is chosen (and queued for), not a CONNECTED NSP.
    ("IN/CPA", "IN/TWO", "sessions", "RECEIVER", "PUT", False, DIRECTED, "IN/TWO/EMSP"),
    # Ids are CiStrings.
    ("in/cpa", "in/cih", "locations", "RECEIVER", "PUT", False, BROADCAST, "IN/CIH/HUB"),
    ("in/cpa", "in/ema", "cdrs", "RECEIVER", "POST", False, DIRECTED, "IN/EMA/EMSP"),
])
def test_scenarios(frm, to, module, interface, method, is_list, scenario, receiver):
    routing = classified(frm, to, module, interface, method, is_list)
    assert not isinstance(routing, OcpiError), routing.message
    assert routing.scenario == scenario
    assert routing.sender_key == frm.upper() + ("/CPO" if frm.upper().endswith("CPA") else "/EMSP")
    assert routing.receiver_key == receiver


@pytest.mark.parametrize(("frm", "to", "module", "interface", "method", "is_list", "answer", "names"), [
    # The caller is not a party of this connection in a role that may use the interface.
    ("IN/EMA", "IN/CIH", "locations", "RECEIVER", "PUT", False, (200, 2001), "IN/EMA is not a CPO party"),
    ("IN/CPA", "IN/CIH", "locations", "SENDER", "GET", True, (200, 2001), "the locations sender interface is for"),
    ("IN/CPA", "IN/EMA", "commands", "RECEIVER", "POST", False, (200, 2001), "commands receiver interface"),
    ("IN/XYZ", "IN/CIH", "locations", "RECEIVER", "PUT", False, (200, 2001), "IN/XYZ is not a CPO party"),
    ("IN/CPA", "IN/CIH", "versions", "RECEIVER", "GET", False, (200, 2001), "is for no one"),
    # The caller's own party is suspended, or was never registered by this connection.
    ("IN/SUE", "IN/CPA", "tokens", "RECEIVER", "PUT", False, (401, 2000), "party IN/SUE is suspended"),
    ("IN/PLN", "IN/CPA", "tokens", "RECEIVER", "PUT", False, (200, 2001), "add it to the roles of a credentials PUT"),
    # Addressing.
    ("IN/EMA", None, "locations", "SENDER", "GET", True, (200, 2001), "a list request must be addressed to the hub"),
    ("IN/CPA", "IN/NOPE", "sessions", "RECEIVER", "PUT", False, (200, 4001), "unknown receiver IN/NOPE"),
    ("IN/CPA", "IN/CPA", "sessions", "RECEIVER", "PUT", False, (200, 4001), "unknown receiver IN/CPA"),
    ("IN/CPA", "IN/SUE", "sessions", "RECEIVER", "PUT", False, (200, 4003), "receiver IN/SUE is SUSPENDED"),
    ("IN/CPA", "IN/PLN", "cdrs", "RECEIVER", "POST", False, (200, 4003), "receiver IN/PLN is PLANNED"),
])
def test_errors(frm, to, module, interface, method, is_list, answer, names):
    error = classified(frm, to, module, interface, method, is_list)
    assert isinstance(error, OcpiError), error
    assert (error.http_status, error.status_code) == answer
    assert names in error.message


@pytest.mark.parametrize(("headers", "names"), [
    ({}, "OCPI-from-country-code: required on locations requests"
         " (this connection has no registered party that can send them)"),
    ({"OCPI-from-country-code": "IN"}, "OCPI-from-party-id: required on locations requests"),
    ({"OCPI-from-country-code": "IN", "OCPI-from-party-id": "CPA", "OCPI-to-country-code": "IN"},
     "OCPI-to-party-id: required when the other OCPI-to header is set"),
    ({"OCPI-from-country-code": "IN", "OCPI-from-party-id": "CPA", "OCPI-to-party-id": "EMA"},
     "OCPI-to-country-code: required when the other OCPI-to header is set"),
])
def test_missing_headers_are_2001_naming_the_header(headers, names):
    with pytest.raises(OcpiError) as refused:
        classify(module="locations", interface="RECEIVER", method="PUT", is_list=False, headers=headers,
                 caller_party=caller_party, find_receiver=find_receiver)
    assert (refused.value.http_status, refused.value.status_code) == (200, 2001)
    assert refused.value.message == names


def test_a_request_without_ocpi_from_comes_from_the_one_party_able_to_send_it():
    """Some 2.2 implementations send no OCPI-from: the connection's one party that may send the
    module is the sender; with several, 2001 names them; a URL that names the sender wins."""
    def classify_without_from(able, named=None, module="locations", interface="RECEIVER", to=None):
        return classify(module=module, interface=interface, method="PUT", is_list=False, headers=to or {},
                        caller_party=caller_party, find_receiver=find_receiver,
                        able_senders=lambda roles: [ids for ids in able if roles & {"CPO", "EMSP"}],
                        named_by_url=(lambda: named) if named else None)

    routing = classify_without_from([("IN", "CPA")])
    assert (routing.sender_key, routing.scenario, routing.from_inferred) == ("IN/CPA/CPO", OPEN, "platform")
    routing = classify_without_from([("IN", "CPA")], to={"OCPI-to-country-code": "IN", "OCPI-to-party-id": "EMA"})
    assert (routing.scenario, routing.receiver_key) == (DIRECTED, "IN/EMA/EMSP")
    with pytest.raises(OcpiError) as refused:
        classify_without_from([("IN", "CPA"), ("IN", "CPB")])
    assert refused.value.status_code == 2001
    assert refused.value.message == ("OCPI-from-country-code: required on locations requests (this connection"
                                     " has several parties that can send them (IN/CPA, IN/CPB))")
    routing = classify_without_from([("IN", "CPA"), ("IN", "CPB")], named=("IN", "CPA"),
                                    module="commands", interface="SENDER")
    assert (routing.sender_key, routing.from_inferred) == ("IN/CPA/CPO", "url")
    # The inferred sender is checked as a sent one: a party of another connection is refused.
    with pytest.raises(OcpiError) as refused:
        classify_without_from([], named=("IN", "XYZ"), module="commands", interface="SENDER")
    assert refused.value.status_code == 2001 and "IN/XYZ is not a CPO party of this connection" in \
        refused.value.message


def test_header_values_are_trimmed():
    headers = {"OCPI-from-country-code": " IN ", "OCPI-from-party-id": "CPA ",
               "OCPI-to-country-code": "IN", "OCPI-to-party-id": " EMA"}
    routing = classify(module="cdrs", interface="RECEIVER", method="POST", is_list=False, headers=headers,
                       caller_party=caller_party, find_receiver=find_receiver)
    assert (routing.sender_key, routing.receiver_key) == ("IN/CPA/CPO", "IN/EMA/EMSP")
