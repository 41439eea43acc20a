"""How operators name parties and which state they see: pure rules, no database."""

from __future__ import annotations

import pytest

from hub.domain.parties import PARTY_STATES, party_state
from hub.services.operators.names import PartyName, parse_party_name


@pytest.mark.parametrize(("text", "expected"), [
    ("IN/ABC", PartyName("IN", "ABC", None)),
    ("in/abc/cpo", PartyName("IN", "ABC", "CPO")),
    (" IN / EMP / EMSP ", PartyName("IN", "EMP", "EMSP")),
])
def test_a_party_is_cc_pid_with_an_optional_role(text, expected):
    name = parse_party_name(text)
    assert name == expected
    assert name.ids == f"{expected.country_code}/{expected.party_id}"
    assert str(name) == "/".join(p for p in (expected.country_code, expected.party_id, expected.role) if p)


@pytest.mark.parametrize(("text", "says"), [
    ("ABC", "COUNTRY_CODE/PARTY_ID"),
    ("IN/", "COUNTRY_CODE/PARTY_ID"),
    ("IN/ABC/CPO/X", "COUNTRY_CODE/PARTY_ID"),
    ("IN/ABC/HUBBY", "the role must be one of CPO, EMSP"),
    ("", "COUNTRY_CODE/PARTY_ID"),
])
def test_anything_else_is_refused_naming_the_form(text, says):
    with pytest.raises(ValueError, match=says):
        parse_party_name(text)


def test_the_role_fills_in_a_key():
    assert PartyName("IN", "ABC").key("CPO") == "IN/ABC/CPO"
    assert PartyName("IN", "ABC", "EMSP").key() == "IN/ABC/EMSP"


@pytest.mark.parametrize(("connection", "suspended", "state"), [
    ("PLANNED", False, "PLANNED"),
    ("CONNECTED", False, "CONNECTED"),
    ("OFFLINE", False, "OFFLINE"),
    ("CONNECTED", True, "SUSPENDED"),
    ("UNREGISTERED", False, "UNREGISTERED"),
    ("UNREGISTERED", True, "SUSPENDED"),  # resume lifts the suspension; the party stays UNREGISTERED
])
def test_one_state_per_party(connection, suspended, state):
    assert party_state(connection, suspended) == state
    assert state in PARTY_STATES
