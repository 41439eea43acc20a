"""A small network of parties, platforms and rules for the recipient policy's unit tests
(no PostgreSQL, no HTTP)."""

from __future__ import annotations

from hub.domain.recipients import Endpoint, Party, Platform, Policy, Snapshot
from hub.domain.ruleset import RuleSet

ALL_DATA = ("locations", "tariffs", "sessions", "cdrs")

# platform: (parties as (cc, pid, role, status), state, receiver modules, sender modules)
PLATFORMS = {
    "p-cpa": ([("IN", "CPA", "CPO", "CONNECTED")], "REGISTERED",
              ("tokens", "commands", "hubclientinfo", "chargingprofiles"), ("sessions",)),
    "p-cpb": ([("IN", "CPB", "CPO", "CONNECTED")], "REGISTERED", ("tokens", "commands"), ()),
    "p-cps": ([("IN", "CPS", "CPO", "SUSPENDED")], "REGISTERED", ("tokens", "commands", "hubclientinfo"), ()),
    "p-cpo": ([("IN", "CPO", "CPO", "OFFLINE")], "REGISTERED", ("tokens", "commands"), ()),
    "p-ema": ([("IN", "EMA", "EMSP", "CONNECTED")], "REGISTERED", (*ALL_DATA, "hubclientinfo"),
              ("tokens", "chargingprofiles")),
    "p-ema-nsp": ([("IN", "EMA", "NSP", "CONNECTED")], "REGISTERED", ALL_DATA, ()),
    "p-emo": ([("IN", "EMO", "EMSP", "OFFLINE")], "REGISTERED", ALL_DATA, ("tokens", "chargingprofiles")),
    "p-ems": ([("IN", "EMS", "EMSP", "SUSPENDED")], "REGISTERED", (*ALL_DATA, "hubclientinfo"),
              ("tokens", "chargingprofiles")),
    "p-emp": ([("IN", "EMP", "EMSP", "PLANNED")], "INVITED", (), ()),
    "p-emd": ([("IN", "EMD", "EMSP", "CONNECTED")], "REGISTERED", (*ALL_DATA, "hubclientinfo"), ("tokens",)),
    "p-emx": ([("IN", "EMX", "EMSP", "CONNECTED")], "REGISTERED", ("tariffs",), ()),
    "p-nav": ([("IN", "NAV", "NSP", "CONNECTED")], "REGISTERED", ALL_DATA, ()),
    "p-nap": ([("IN", "NAP", "NAP", "CONNECTED")], "REGISTERED", ("locations", "tariffs"), ()),
    "p-oth": ([("IN", "OTH", "OTHER", "CONNECTED")], "REGISTERED", ("locations", "tariffs"), ()),
    "p-scs": ([("IN", "SCS", "SCSP", "CONNECTED")], "REGISTERED", ALL_DATA, ("chargingprofiles",)),
    "p-mul": ([("IN", "MUL", "CPO", "CONNECTED"), ("IN", "MUL", "EMSP", "CONNECTED")], "REGISTERED",
              (*ALL_DATA, "tokens", "commands", "hubclientinfo"), ("tokens",)),
}

# IN/CPA/CPO may not deliver anything to IN/EMD/EMSP.
RULES = [{"cpo": "IN/CPA/CPO", "emsp": "IN/EMD/EMSP", "module": "*", "effect": "deny",
          "reason": "contract ended", "set_by": "ops", "updated_at": "2026-01-01T00:00:00Z"}]


def rule(cpo: str, emsp: str, module: str, effect: str, reason: str = "") -> dict:
    return {"cpo": cpo, "emsp": emsp, "module": module, "effect": effect, "reason": reason,
            "set_by": "ops", "updated_at": "2026-01-01T00:00:00Z"}


def snapshot(rules: list[dict] | None = None, **status: str) -> Snapshot:
    """The network; ``status`` overrides a party's status (``IN_EMA_EMSP="OFFLINE"``)."""
    parties, platforms = [], {}
    for platform_id, (members, state, receivers, senders) in PLATFORMS.items():
        for cc, pid, role, st in members:
            parties.append(Party(cc, pid, role, status.get(f"{cc}_{pid}_{role}", st), platform_id))
        endpoints = tuple([Endpoint(m, "RECEIVER", f"https://{platform_id}/{m}") for m in receivers]
                          + [Endpoint(m, "SENDER", f"https://{platform_id}/{m}/sender") for m in senders])
        platforms[platform_id] = Platform(platform_id, state, endpoints, token="secret")
    return Snapshot(tuple(parties), platforms, RuleSet(RULES if rules is None else rules))


def policy(rules: list[dict] | None = None, **status: str) -> Policy:
    return Policy(snapshot(rules, **status))


LOCATION = {"id": "LOC1", "country_code": "IN", "party_id": "CPA", "publish": True}
HIDDEN_LOCATION = {"id": "LOC2", "country_code": "IN", "party_id": "CPA", "publish": False,
                   "publish_allowed_to": [{"uid": "RFID-1"}]}


def session(cc: str = "IN", pid: str = "EMA") -> dict:
    return {"id": "S1", "country_code": "IN", "party_id": "CPA",
            "cdr_token": {"country_code": cc, "party_id": pid, "uid": "RFID-1", "type": "RFID"}}
