"""Routing rules: the one decision (unit tests) and `hub routing` as an operator uses it."""

from __future__ import annotations

import json

import psycopg
import pytest

from hub.domain.rules import MODULES
from hub.domain.ruleset import DEFAULT_OPEN, Decision, RuleSet, decide
from tests.cli import run_hub

ABC, XYZ = "IN/ABC/CPO", "IN/XYZ/CPO"
EMP, NSP = "IN/EMP/EMSP", "IN/NAV/NSP"


def rule(cpo: str, emsp: str, module: str, effect: str, reason: str = "") -> dict:
    return {"cpo": cpo, "emsp": emsp, "module": module, "effect": effect, "reason": reason,
            "set_by": "ops", "updated_at": None}


# decide ---------------------------------------------------------------------------
@pytest.mark.parametrize("module", MODULES)
def test_default_open(module):
    decision = decide(ABC, EMP, module, [])
    assert decision == Decision(True, DEFAULT_OPEN, None)


def test_pair_deny_applies_to_every_module_of_that_pair_only():
    rules = [rule(ABC, EMP, "*", "deny", "contract ended")]
    for module in MODULES:
        decision = decide(ABC, EMP, module, rules)
        assert not decision.allowed
        assert decision.rule["module"] == "*" and "contract ended" in decision.reason
    assert decide(ABC, NSP, "locations", rules).allowed
    assert decide(XYZ, EMP, "locations", rules).allowed


def test_module_allow_overrides_pair_deny():
    rules = [rule(ABC, EMP, "*", "deny"), rule(ABC, EMP, "tokens", "allow", "pilot")]
    tokens = decide(ABC, EMP, "tokens", rules)
    assert tokens.allowed and tokens.rule["module"] == "tokens" and "pilot" in tokens.reason
    assert not decide(ABC, EMP, "locations", rules).allowed


def test_module_deny_overrides_pair_allow():
    rules = [rule(ABC, EMP, "cdrs", "deny"), rule(ABC, EMP, "*", "allow")]
    assert not decide(ABC, EMP, "cdrs", rules).allowed
    assert decide(ABC, EMP, "sessions", rules).allowed
    assert decide(ABC, EMP, "sessions", rules).rule["module"] == "*"


def test_module_rule_without_pair_rule_leaves_other_modules_open():
    rules = [rule(ABC, EMP, "commands", "deny")]
    assert not decide(ABC, EMP, "commands", rules).allowed
    other = decide(ABC, EMP, "tokens", rules)
    assert other.allowed and other.reason == DEFAULT_OPEN and other.rule is None


def test_suspended_sender_or_receiver_gets_nothing_whatever_the_rules():
    rules = [rule(ABC, EMP, "*", "allow")]
    sender = decide(ABC, EMP, "locations", rules, sender_status="SUSPENDED", receiver_status="CONNECTED")
    receiver = decide(ABC, EMP, "tokens", rules, sender_status="CONNECTED", receiver_status="SUSPENDED")
    assert not sender.allowed and "suspended" in sender.reason and sender.rule is None
    assert not receiver.allowed and "suspended" in receiver.reason
    assert sender.reason != receiver.reason
    for status in ("PLANNED", "CONNECTED", "OFFLINE", None):
        assert decide(ABC, EMP, "cdrs", [], sender_status=status, receiver_status=status).allowed


def test_keys_are_case_insensitive_and_unknown_modules_refused():
    assert not decide("in/abc/cpo", "in/emp/emsp", "LOCATIONS", [rule(ABC, EMP, "*", "deny")]).allowed
    with pytest.raises(ValueError, match="credentials"):
        decide(ABC, EMP, "credentials", [])
    with pytest.raises(ValueError):
        decide(ABC, EMP, "*", [])


def test_rule_set_helpers():
    rules = RuleSet([rule(ABC, EMP, "*", "deny"), rule(ABC, EMP, "hubclientinfo", "allow"),
                     rule(XYZ, NSP, "tokens", "deny")])
    assert len(rules) == 3 and [r["cpo"] for r in rules.rules] == [ABC, ABC, XYZ]
    assert [e for e in (EMP, NSP) if rules.decide(ABC, e, "locations").allowed] == [NSP]
    assert [e for e in (EMP, NSP) if rules.decide(ABC, e, "hubclientinfo").allowed] == [EMP, NSP]
    assert not rules.decide(ABC, NSP, "locations", receiver_status="SUSPENDED").allowed
    assert not rules.decide(XYZ, NSP, "locations", sender_status="SUSPENDED").allowed
    assert [c for c in (ABC, XYZ) if rules.decide(c, NSP, "tokens").allowed] == [ABC]
    assert [c for c in (ABC, XYZ) if rules.decide(c, EMP, "tokens").allowed] == [XYZ]
    assert rules.decide(ABC, EMP, "tariffs", receiver_status="SUSPENDED").reason == "receiver is suspended"


# hub routing --------------------------------------------------------------------
def onboard_parties(settings) -> None:
    for role_name, party_id in (("CPO", "ABC"), ("EMSP", "EMP"), ("NSP", "NAV"), ("CPO", "XYZ")):
        run_hub(settings, "parties", "add", "--role", role_name, "--country-code", "IN",
                "--party-id", party_id, "--name", f"{party_id} Ltd")


def query(settings, sql: str) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        return conn.execute(sql).fetchall()


def explain(settings, *args: str) -> dict:
    return json.loads(run_hub(settings, "routing", "explain", *args, "--json").stdout)


def test_allow_deny_list_explain_remove(settings):
    onboard_parties(settings)
    assert run_hub(settings, "routing", "list").stdout.strip() == "(none)"
    assert json.loads(run_hub(settings, "routing", "list", "--json").stdout) == []

    opened = explain(settings, "IN/ABC", "IN/EMP", "--module", "locations")
    assert opened["rules"] == {"allowed": True, "decided_by": "default", "reason": DEFAULT_OPEN}
    assert (opened["sender"], opened["receiver"]) == (ABC, EMP)
    # The rules allow it, but nothing is delivered to a party that has not registered yet.
    assert opened["delivered"] is False and opened["decided_by"] == "status"
    assert opened["reason"] == f"{EMP} is PLANNED: has no endpoints yet"
    people = run_hub(settings, "routing", "explain", "IN/ABC", "IN/EMP", "--module", "locations").stdout
    assert "NOT delivered" in people and f"routing rules alone: allow ({DEFAULT_OPEN})" in people

    denied = json.loads(run_hub(settings, "routing", "deny", "in/abc", "IN/EMP", "--reason",
                                "contract ended", "--json").stdout)
    assert {k: denied[k] for k in ("cpo", "emsp", "module", "effect", "reason", "changed")} == {
        "cpo": ABC, "emsp": EMP, "module": "*", "effect": "deny", "reason": "contract ended",
        "changed": True}
    assert denied["set_by"] and denied["updated_at"]
    table = run_hub(settings, "routing", "allow", "IN/ABC", "IN/EMP", "--module", "tokens",
                    "--reason", "pilot").stdout.splitlines()
    assert table[0].split() == ["CPO", "EMSP", "MODULE", "EFFECT", "REASON", "UPDATED_AT"]
    assert table[1].split()[:5] == [ABC, EMP, "tokens", "allow", "pilot"]

    listed = json.loads(run_hub(settings, "routing", "list", "--json").stdout)
    assert [(r["cpo"], r["emsp"], r["module"], r["effect"]) for r in listed] == [
        (ABC, EMP, "*", "deny"), (ABC, EMP, "tokens", "allow")]
    lines = run_hub(settings, "routing", "list").stdout.splitlines()
    assert lines[0].split()[0] == "CPO" and len(lines) == 3
    assert lines[1].split()[:4] == [ABC, EMP, "*", "deny"] and "contract ended" in lines[1]

    # eMSP -> CPO for tokens: the module rule beats the pair rule.
    tokens = explain(settings, "IN/EMP", "IN/ABC", "--module", "tokens")
    assert tokens["rules"]["allowed"] is True and tokens["rules"]["decided_by"] == "rule"
    assert (tokens["sender"], tokens["receiver"], tokens["cpo"], tokens["emsp"]) == (EMP, ABC, ABC, EMP)
    assert tokens["rule"]["module"] == "tokens" and tokens["rule"]["effect"] == "allow"
    locations = explain(settings, "IN/ABC", "IN/EMP", "--module", "locations")
    assert locations["rules"]["allowed"] is False and locations["rule"]["module"] == "*"
    assert "contract ended" in locations["rules"]["reason"]
    other = explain(settings, "IN/ABC", "IN/NAV", "--module", "locations")
    assert other["rules"]["allowed"] is True and other["rules"]["decided_by"] == "default"

    people = run_hub(settings, "routing", "explain", "IN/ABC", "IN/EMP", "--module", "cdrs")
    assert people.returncode == 0
    assert "NOT delivered" in people.stdout and "routing rules alone: deny (" in people.stdout
    assert "contract ended" in people.stdout
    people = run_hub(settings, "routing", "explain", "IN/EMP", "IN/ABC", "--module", "commands")
    assert "NOT delivered" in people.stdout
    assert "delivered" in run_hub(settings, "routing", "explain", "IN/NAV", "IN/ABC",
                                  "--module", "tariffs").stdout

    # Setting the same rule again changes nothing; another effect changes it.
    again = json.loads(run_hub(settings, "routing", "deny", "IN/ABC", "IN/EMP", "--reason",
                               "contract ended", "--json").stdout)
    assert again["changed"] is False
    flipped = json.loads(run_hub(settings, "routing", "allow", "IN/ABC", "IN/EMP", "--json").stdout)
    assert flipped["changed"] is True and flipped["effect"] == "allow" and flipped["reason"] == ""
    assert explain(settings, "IN/ABC", "IN/EMP", "--module", "cdrs")["rules"]["allowed"] is True

    removed = run_hub(settings, "routing", "remove", "IN/ABC", "IN/EMP", "--module", "tokens")
    assert "removed" in removed.stdout
    gone = run_hub(settings, "routing", "remove", "IN/ABC", "IN/EMP", "--module", "tokens", ok=False)
    assert gone.returncode != 0 and "no rule" in gone.stderr
    removed = json.loads(run_hub(settings, "routing", "remove", "IN/ABC", "IN/EMP", "--json").stdout)
    assert removed["removed"] is True
    assert json.loads(run_hub(settings, "routing", "list", "--json").stdout) == []
    assert explain(settings, "IN/EMP", "IN/ABC", "--module", "tokens")["rules"]["decided_by"] == "default"


def test_suspended_party_receives_nothing(settings):
    onboard_parties(settings)
    run_hub(settings, "routing", "allow", "IN/ABC", "IN/EMP")
    run_hub(settings, "parties", "suspend", "IN", "EMP", "--reason", "unpaid")
    as_receiver = explain(settings, "IN/ABC", "IN/EMP", "--module", "locations")
    assert as_receiver["delivered"] is False and as_receiver["decided_by"] == "status"
    assert as_receiver["reason"] == f"{EMP} is SUSPENDED: receives nothing"
    assert as_receiver["rules"]["reason"] == f"receiver {EMP} is suspended"
    as_sender = explain(settings, "IN/EMP", "IN/ABC", "--module", "commands")
    assert as_sender["delivered"] is False and as_sender["rules"]["reason"] == f"sender {EMP} is suspended"
    text = run_hub(settings, "routing", "explain", "IN/ABC", "IN/EMP", "--module", "hubclientinfo")
    assert text.returncode == 0 and "NOT delivered" in text.stdout and "suspended" in text.stdout
    run_hub(settings, "parties", "resume", "IN", "EMP")
    resumed = explain(settings, "IN/ABC", "IN/EMP", "--module", "locations")
    assert resumed["rules"]["allowed"] is True and resumed["receiver_state"] == "PLANNED"


def test_parties_must_be_known_and_of_the_right_role(settings):
    onboard_parties(settings)
    cases = [
        (("allow", "IN/EMP", "IN/ABC"), "not a known CPO"),
        (("allow", "IN/ABC", "IN/XYZ"), "not a known eMSP"),
        (("deny", "IN/NOP", "IN/EMP"), "no party IN/NOP"),
        (("deny", "ABC", "IN/EMP"), "COUNTRY_CODE/PARTY_ID"),
        (("explain", "IN/ABC", "IN/XYZ", "--module", "tokens"), "no CPO / eMSP-side pair"),
        (("explain", "IN/ABC", "IN/NOP", "--module", "tokens"), "no party IN/NOP"),
        (("remove", "IN/ABC", "IN/NAV"), "no rule"),
    ]
    for args, message in cases:
        done = run_hub(settings, "routing", *args, ok=False)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
    bad_module = run_hub(settings, "routing", "deny", "IN/ABC", "IN/EMP", "--module", "credentials", ok=False)
    assert bad_module.returncode != 0
    assert json.loads(run_hub(settings, "routing", "list", "--json").stdout) == []


def test_multi_role_platform_roles(settings):
    first = json.loads(run_hub(settings, "parties", "add", "--role", "CPO", "--country-code", "IN",
                               "--party-id", "MUL", "--name", "Multi", "--json").stdout)
    for role_name in ("EMSP", "NSP"):
        run_hub(settings, "parties", "add", "--role", role_name, "--country-code", "IN", "--party-id",
                "MUL", "--name", "Multi", "--platform", first["platform_id"])
    run_hub(settings, "parties", "add", "--role", "EMSP", "--country-code", "IN", "--party-id", "EMP",
            "--name", "EMP")

    # IN/MUL is a CPO (first argument) and two eMSP-side roles (second argument).
    made = json.loads(run_hub(settings, "routing", "deny", "IN/MUL", "IN/EMP", "--json").stdout)
    assert (made["cpo"], made["emsp"]) == ("IN/MUL/CPO", EMP)
    ambiguous = run_hub(settings, "routing", "deny", "IN/MUL", "IN/MUL", ok=False)
    assert ambiguous.returncode != 0 and "ambiguous" in ambiguous.stderr
    made = json.loads(run_hub(settings, "routing", "deny", "IN/MUL", "IN/MUL/NSP", "--json").stdout)
    assert (made["cpo"], made["emsp"]) == ("IN/MUL/CPO", "IN/MUL/NSP")

    # The module's usual direction settles which role IN/MUL plays when sending.
    tokens = explain(settings, "IN/EMP", "IN/MUL", "--module", "tokens")
    assert (tokens["cpo"], tokens["emsp"], tokens["delivered"]) == ("IN/MUL/CPO", EMP, False)
    locations = explain(settings, "IN/MUL", "IN/EMP", "--module", "locations")
    assert (locations["cpo"], locations["delivered"]) == ("IN/MUL/CPO", False)
    as_emsp = explain(settings, "IN/MUL/EMSP", "IN/MUL/CPO", "--module", "tokens")
    assert as_emsp["rules"]["allowed"] is True and as_emsp["rules"]["decided_by"] == "default"
    # ... but a change never goes back to the platform it came from.
    assert as_emsp["delivered"] is False and as_emsp["decided_by"] == "platform"


def test_rule_changes_are_events_and_rebuild_gives_the_same_view(settings):
    onboard_parties(settings)
    run_hub(settings, "routing", "deny", "IN/ABC", "IN/EMP", "--reason", "first")
    run_hub(settings, "routing", "deny", "IN/ABC", "IN/EMP", "--reason", "second")
    run_hub(settings, "routing", "allow", "IN/ABC", "IN/EMP", "--module", "tariffs")
    run_hub(settings, "routing", "deny", "IN/XYZ", "IN/NAV", "--module", "hubclientinfo")
    run_hub(settings, "routing", "remove", "IN/XYZ", "IN/NAV", "--module", "hubclientinfo")
    run_hub(settings, "routing", "allow", "IN/XYZ", "IN/NAV", "--module", "hubclientinfo")
    run_hub(settings, "routing", "remove", "IN/ABC", "IN/EMP", "--module", "tariffs")

    topics = [t for (t,) in query(settings, "SELECT topic FROM hub_events WHERE topic LIKE '%RoutingRule%'"
                                             " ORDER BY notification_id")]
    assert [t.rsplit(".", 1)[-1] for t in topics] == [
        "Set", "Changed", "Set", "Set", "Removed", "Changed", "Removed"]

    def view():
        return query(settings, "SELECT * FROM view_routing_rules ORDER BY cpo, emsp, module")

    before = view()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in before] == [
        (ABC, EMP, "*", "deny", "second"), (XYZ, NSP, "hubclientinfo", "allow", "")]
    status = json.loads(run_hub(settings, "projections", "status", "--json").stdout)
    rules = next(s for s in status if s["name"] == "routing-rules")
    assert rules["lag"] == 0
    rebuilt = run_hub(settings, "projections", "rebuild", "routing-rules")
    assert "routing-rules: rebuilt from 7 events" in rebuilt.stdout
    assert view() == before
