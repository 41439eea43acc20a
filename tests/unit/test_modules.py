"""The OCPI module table (hub/domain/modules.py) and what is derived from it, and the
source-tree rules of the recipient policy (no PostgreSQL, no HTTP)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from hub.domain import modules as m
from hub.domain.routing import DIRECTED, classify
from hub.domain.rules import MODULES as RULED
from hub.domain.rules import check_module
from hub.ocpi.errors import HubError, InvalidParameters

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ("hub", "handlers", "projections", "scheduler")


def test_every_module_the_hub_knows_is_one_entry():
    assert list(m.MODULES) == ["versions", "credentials", "hubclientinfo", "locations", "tariffs", "sessions",
                               "cdrs", "tokens", "commands", "chargingprofiles"]


@pytest.mark.parametrize(("identifier", "owner", "routing", "receivers"), [
    ("locations", "CPO", m.BROADCAST, {"EMSP", "NAP", "NSP", "OTHER"}),
    ("tariffs", "CPO", m.BROADCAST, {"EMSP", "NAP", "NSP", "OTHER"}),
    ("sessions", "CPO", m.CDR_TOKEN, {"EMSP"}),
    ("cdrs", "CPO", m.CDR_TOKEN, {"EMSP"}),
    ("tokens", "EMSP", m.BROADCAST, {"CPO"}),
    ("commands", "EMSP", m.REALTIME, {"CPO"}),
    ("chargingprofiles", "EMSP", m.REALTIME, {"CPO"}),
])
def test_owner_routing_and_receivers(identifier, owner, routing, receivers):
    module = m.MODULES[identifier]
    assert (module.owner, module.routing, set(module.receivers)) == (owner, routing, receivers)


def test_cdrs_never_collapse_the_other_stored_modules_do():
    assert m.COLLAPSIBLE == {"locations", "tariffs", "sessions", "tokens"}
    assert m.STORED == ("locations", "tariffs", "sessions", "cdrs", "tokens")


@pytest.mark.parametrize(("identifier", "interface", "callers"), [
    ("locations", "RECEIVER", {"CPO"}), ("cdrs", "RECEIVER", {"CPO"}), ("tokens", "RECEIVER", {"EMSP"}),
    ("commands", "RECEIVER", {"EMSP"}), ("locations", "SENDER", {"EMSP", "NAP", "NSP", "OTHER"}),
    ("sessions", "SENDER", {"EMSP"}), ("tokens", "SENDER", {"CPO"}), ("commands", "SENDER", {"CPO"}),
    ("hubclientinfo", "SENDER", set()), ("credentials", "SENDER", set()),
    ("chargingprofiles", "RECEIVER", {"EMSP", "SCSP"}), ("chargingprofiles", "SENDER", {"CPO"}),
])
def test_who_may_call_the_hubs_interfaces(identifier, interface, callers):
    assert set(m.MODULES[identifier].callers(interface)) == callers


def test_realtime_targets():
    assert m.MODULES["tokens"].realtime == ("EMSP", "SENDER")
    assert m.MODULES["commands"].realtime == ("CPO", "RECEIVER")
    assert m.MODULES["sessions"].realtime == ("CPO", "SENDER")  # charging preferences
    assert m.MODULES["chargingprofiles"].realtime == ("CPO", "RECEIVER")
    assert [i for i, mod in m.MODULES.items() if mod.realtime] == ["sessions", "tokens", "commands",
                                                                    "chargingprofiles"]


def test_unsolicited_profile_updates_go_to_the_requesting_side():
    assert m.MODULES["chargingprofiles"].counterparts("SENDER") == {"EMSP", "SCSP"}
    assert m.MODULES["chargingprofiles"].counterparts("RECEIVER") == {"CPO"}


def test_rules_apply_to_the_ruled_modules_and_check_module_uses_them():
    assert set(RULED) == {"hubclientinfo", "locations", "tariffs", "sessions", "cdrs", "tokens", "commands",
                          "chargingprofiles"}
    assert check_module(" Tokens ") == "tokens" and check_module("*") == "*"
    with pytest.raises(ValueError, match="credentials"):
        check_module("credentials")


def test_module_lookup_names_the_known_ones():
    assert m.module("CDRS").identifier == "cdrs"
    with pytest.raises(ValueError, match="locations"):
        m.module("parking")


def test_each_handler_advertises_exactly_the_interfaces_of_its_entry():
    from handlers.app import MODULES as HANDLER_FILES

    assert HANDLER_FILES == tuple(f"handlers.{i}" for i in m.HANDLED)
    for identifier in m.HANDLED:
        handler = importlib.import_module(f"handlers.{identifier}")
        advertised = {(module, role) for module, role, _ in handler.ENDPOINTS}
        assert advertised == {(identifier, role) for role in m.MODULES[identifier].interfaces}, identifier


# classify: the roles come from the table --------------------------------------------------------
PARTIES = {("IN", "CPA", "CPO"): "CONNECTED", ("IN", "EMA", "EMSP"): "CONNECTED",
           ("IN", "DUO", "NSP"): "CONNECTED", ("IN", "DUO", "CPO"): "OFFLINE", ("IN", "SCS", "SCSP"): "CONNECTED",
           ("IN", "NAP", "NAP"): "CONNECTED"}


def _classify(module, interface, method, caller, to=None):
    headers = {"OCPI-from-country-code": caller[0], "OCPI-from-party-id": caller[1]}
    if to:
        headers |= {"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]}

    def caller_party(cc, pid, roles):
        role = caller[2]
        return (role, PARTIES[(cc, pid, role)]) if (cc, pid) == caller[:2] and role in roles else None

    def find_receiver(cc, pid, _role):
        return [{"role": r, "status": s} for (c, p, r), s in PARTIES.items() if (c, p) == (cc, pid)]

    return classify(module=module, interface=interface, method=method, is_list=False, headers=headers,
                    caller_party=caller_party, find_receiver=find_receiver)


def test_classify_prefers_the_role_the_module_goes_to_over_a_connected_other_role():
    routing = _classify("tokens", "RECEIVER", "PUT", ("IN", "EMA", "EMSP"), to=("IN", "DUO"))
    assert (routing.scenario, routing.receiver_key) == (DIRECTED, "IN/DUO/CPO")


def test_classify_lets_a_nap_pull_locations_and_refuses_an_scsp():
    assert _classify("locations", "SENDER", "GET", ("IN", "NAP", "NAP")).sender_key == "IN/NAP/NAP"
    with pytest.raises(InvalidParameters, match="SCSP|EMSP"):
        _classify("locations", "SENDER", "GET", ("IN", "SCS", "SCSP"))


def test_classify_sessions_sender_is_for_emsps_only():
    with pytest.raises(InvalidParameters):
        _classify("sessions", "SENDER", "GET", ("IN", "DUO", "NSP"))


def test_classify_unknown_receiver_is_still_4001():
    with pytest.raises(HubError) as exc:
        _classify("locations", "RECEIVER", "PUT", ("IN", "CPA", "CPO"), to=("IN", "NOP"))
    assert exc.value.status_code == 4001


# Source-tree rules ------------------------------------------------------------------------------
def _sources():
    for package in SOURCE:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text()


def test_decide_is_called_only_by_the_recipient_policy():
    """The routing rules are evaluated (``decide``, ``RuleSet.decide``) by hub.domain.recipients
    alone; everything else asks the policy."""
    call = re.compile(r"(?<!def )\bdecide\(")
    imported = re.compile(r"^\s*from hub\.domain\.ruleset import [^\n]*\bdecide\b", re.M)
    allowed = {"hub/domain/ruleset.py", "hub/domain/recipients.py"}
    offenders = [name for name, text in _sources()
                 if name not in allowed and (call.search(text) or imported.search(text))]
    assert offenders == []


def test_the_grep_finds_a_call():
    assert re.search(r"(?<!def )\bdecide\(", "x = rules.decide(cpo, emsp, m)")
    assert not re.search(r"(?<!def )\bdecide\(", "    def decide(self, cpo):")


@pytest.mark.parametrize("name", ["handlers/pushing.py", "handlers/tokens.py", "handlers/commands.py",
                                  "handlers/pulls.py", "handlers/hubclientinfo.py"])
def test_no_sql_in_these_handlers(name):
    text = (ROOT / name).read_text()
    assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE FROM)\b|\.execute\(|pool\.connection\(", text)


def test_no_scattered_role_or_module_sets_remain():
    names = re.compile(r"\b(PER_EMSP|EMSP_LIKE|CPO_ONLY|BROADCAST_RECEIVERS|ALLOWED_SENDER_ROLES)\b")
    assert [name for name, text in _sources() if names.search(text)] == []
