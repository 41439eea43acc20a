"""The recipient policy, table-driven (no PostgreSQL, no HTTP).

One row per case: the normal cases of every decision kind, and every case where the six
copies that decided recipients before (pushes, real time, forwarding, pulls, replay,
ClientInfo) disagreed; those rows' names start with ``was:``, saying what differed.
The network is tests/unit/world.py.
"""

from __future__ import annotations

import pytest

from hub.domain.recipients import cdr_token_emsp, rule_pair
from hub.ocpi.status import OcpiStatus
from tests.unit.world import HIDDEN_LOCATION, LOCATION, RULES, policy, rule, session

CPA, CPB, CPS, CPOFF = "IN/CPA/CPO", "IN/CPB/CPO", "IN/CPS/CPO", "IN/CPO/CPO"
EMA, EMO, EMS, EMP, EMD, EMX = ("IN/EMA/EMSP", "IN/EMO/EMSP", "IN/EMS/EMSP", "IN/EMP/EMSP", "IN/EMD/EMSP",
                                "IN/EMX/EMSP")
EMA_NSP, NAV, NAP, OTH, SCS = "IN/EMA/NSP", "IN/NAV/NSP", "IN/NAP/NAP", "IN/OTH/OTHER", "IN/SCS/SCSP"
MUL_CPO, MUL_EMSP = "IN/MUL/CPO", "IN/MUL/EMSP"
ALLOWED_SITE_READERS = {EMA, EMA_NSP, EMO, NAV, NAP, OTH, MUL_EMSP}
TOKENS = {EMA: [{"uid": "RFID-1", "type": "RFID"}], MUL_EMSP: [{"uid": "OTHER", "type": "RFID"}]}

# Forwarding a pushed change ------------------------------------------------------------------
# (module, owner, origin, scenario, to, body, status overrides, expected recipients)
FORWARD = [
    pytest.param("locations", CPA, CPA, "broadcast", None, LOCATION, {}, ALLOWED_SITE_READERS,
                 id="locations broadcast: every EMSP/NAP/NSP/OTHER, CONNECTED or OFFLINE, rules allowing"),
    pytest.param("tariffs", CPA, CPA, "open", None, LOCATION, {}, ALLOWED_SITE_READERS | {EMX},
                 id="tariffs open routing: like a broadcast (EMX offers a tariffs receiver)"),
    pytest.param("locations", CPA, CPA, "broadcast", None, LOCATION, {}, ALLOWED_SITE_READERS - {EMS},
                 id="was: SUSPENDED receives nothing (forwarding skipped it, replay did not)"),
    pytest.param("locations", CPA, CPA, "broadcast", None, LOCATION, {}, ALLOWED_SITE_READERS - {EMP},
                 id="PLANNED party (no endpoints yet) gets nothing"),
    pytest.param("locations", CPA, CPA, "broadcast", None, LOCATION, {}, ALLOWED_SITE_READERS - {SCS},
                 id="was: SCSP gets no Locations (pulls allowed SCSP, forwarding did not)"),
    pytest.param("locations", CPA, CPA, "broadcast", None, LOCATION, {}, ALLOWED_SITE_READERS | set(),
                 id="was: NAP gets Locations (no role set had NAP)"),
    pytest.param("locations", CPA, CPA, "broadcast", None, LOCATION, {}, ALLOWED_SITE_READERS - {EMD},
                 id="a deny rule keeps the pair apart"),
    pytest.param("locations", CPA, CPA, "broadcast", None, LOCATION, {}, ALLOWED_SITE_READERS - {EMX},
                 id="a party without the module's RECEIVER endpoint gets nothing"),
    pytest.param("locations", MUL_CPO, MUL_CPO, "broadcast", None, LOCATION, {},
                 (ALLOWED_SITE_READERS - {MUL_EMSP}) | {EMD},
                 id="never back to the platform it came from"),
    pytest.param("locations", CPA, CPA, "broadcast", None, LOCATION, {"IN_CPA_CPO": "SUSPENDED"}, set(),
                 id="a suspended owner's changes go nowhere"),
    pytest.param("locations", CPA, CPA, "directed", EMA, LOCATION, {}, {EMA},
                 id="directed: only the addressed party"),
    pytest.param("locations", CPA, CPA, "directed", EMO, LOCATION, {}, {EMO},
                 id="directed to an OFFLINE party: queued for it"),
    pytest.param("locations", CPA, CPA, "directed", EMD, LOCATION, {}, set(),
                 id="directed, but the rules refuse"),
    pytest.param("locations", MUL_CPO, MUL_CPO, "directed", MUL_EMSP, LOCATION, {}, set(),
                 id="directed to a party of its own platform: not sent back"),
    pytest.param("locations", CPA, CPA, "broadcast", None, HIDDEN_LOCATION, {}, {EMA},
                 id="publish: false only to holders of a token publish_allowed_to names"),
    pytest.param("sessions", CPA, CPA, "broadcast", None, session(), {}, {EMA},
                 id="was: sessions only to the EMSP of cdr_token (forwarding also sent them to an NSP with its ids)"),
    pytest.param("cdrs", CPA, CPA, "directed", NAV, session(), {}, {EMA},
                 id="cdrs go to the cdr_token eMSP whatever OCPI-to says"),
    pytest.param("sessions", CPA, CPA, "broadcast", None, session("IN", "NAV"), {}, set(),
                 id="a cdr_token naming no EMSP party goes nowhere"),
    pytest.param("sessions", CPA, CPA, "open", None, session("IN", "EMO"), {}, {EMO},
                 id="sessions for an OFFLINE eMSP are queued"),
    pytest.param("cdrs", CPA, CPA, "open", None, session("IN", "EMS"), {}, set(),
                 id="cdrs for a SUSPENDED eMSP are not sent"),
    pytest.param("sessions", MUL_CPO, MUL_CPO, "open", None, session("IN", "MUL"), {}, set(),
                 id="sessions of a multi-role platform's own eMSP stay there"),
    pytest.param("tokens", EMA, EMA, "broadcast", None, {"uid": "RFID-1"}, {}, {CPA, CPB, CPOFF, MUL_CPO},
                 id="tokens broadcast: every CPO but the suspended one"),
    pytest.param("tokens", EMD, EMD, "broadcast", None, {"uid": "X"}, {}, {CPB, CPOFF, MUL_CPO},
                 id="tokens: the rules pair the CPO receiver with the eMSP sender"),
    pytest.param("tokens", EMA, EMA, "directed", CPB, {"uid": "RFID-1"}, {}, {CPB},
                 id="tokens directed: only the addressed CPO"),
    pytest.param("tokens", EMA, EMA, "directed", NAV, {"uid": "RFID-1"}, {}, set(),
                 id="tokens never go to an eMSP-side party"),
]


@pytest.mark.parametrize(("module", "owner", "origin", "scenario", "to", "body", "status", "expected"), FORWARD)
def test_forward(module, owner, origin, scenario, to, body, status, expected):
    verdicts = policy(**status).forward(module, owner=owner, origin=origin, scenario=scenario, to=to, body=body,
                                        tokens=lambda key: TOKENS.get(key, []))
    assert {v.party.key for v in verdicts if v.allowed} == expected
    assert all(v.reason for v in verdicts)


# A Location that stops being visible to a party that was sent it -------------------------------
# (body, rules, status overrides, audience: who was sent it and still sees it, expected "hidden" ones,
#  expected recipients)
NOT_PUBLISHED = {**LOCATION, "publish": False}
HIDING = [
    pytest.param(NOT_PUBLISHED, None, {}, {NAV, EMO}, {NAV, EMO}, {NAV, EMO},
                 id="publish turned false: the parties that had it get this change once"),
    pytest.param(NOT_PUBLISHED, None, {}, set(), set(), set(),
                 id="later changes: the parties told are no longer in the audience and get nothing"),
    pytest.param({**HIDDEN_LOCATION, "publish_allowed_to": [{"uid": "NOBODY"}]}, None, {}, {EMA}, {EMA}, {EMA},
                 id="publish_allowed_to no longer naming the party's tokens: told"),
    pytest.param(LOCATION, [*RULES, rule(CPA, EMO, "locations", "deny")], {}, ALLOWED_SITE_READERS,
                 {EMO}, ALLOWED_SITE_READERS, id="a rule changed to deny: told once"),
    pytest.param(LOCATION, None, {"IN_EMA_EMSP": "SUSPENDED"}, ALLOWED_SITE_READERS, set(),
                 ALLOWED_SITE_READERS - {EMA}, id="a suspended party is not told (it receives nothing)"),
    pytest.param(LOCATION, None, {}, ALLOWED_SITE_READERS | {EMX}, set(), ALLOWED_SITE_READERS,
                 id="a party that lost its endpoint is not told (nothing to call)"),
]


@pytest.mark.parametrize(("body", "rules", "status", "audience", "hidden", "expected"), HIDING)
def test_forward_tells_a_party_once_that_a_location_is_no_longer_visible(body, rules, status, audience, hidden,
                                                                          expected):
    verdicts = policy(rules, **status).forward(
        "locations", owner=CPA, origin=CPA, scenario="broadcast", to=None, body=body,
        tokens=lambda key: TOKENS.get(key, []), audience=lambda: audience)
    assert {v.party.key for v in verdicts if v.allowed} == expected
    assert {v.party.key for v in verdicts if v.decided_by == "hidden"} == hidden
    assert all("no longer sees it" in v.reason for v in verdicts if v.decided_by == "hidden")


def test_only_locations_are_hidden_this_way():
    verdicts = policy([rule(CPA, EMO, "*", "deny")]).forward(
        "tariffs", owner=CPA, origin=CPA, scenario="broadcast", to=None, body=LOCATION,
        audience=lambda: ALLOWED_SITE_READERS)
    assert EMO not in {v.party.key for v in verdicts if v.allowed}


def test_forward_says_why_each_candidate_was_left_out():
    verdicts = {v.party.key: v for v in policy().forward(
        "locations", owner=CPA, origin=CPA, scenario="broadcast", to=None, body=HIDDEN_LOCATION,
        tokens=lambda key: TOKENS.get(key, []))}
    assert verdicts[EMS].decided_by == "status" and "SUSPENDED" in verdicts[EMS].reason
    assert verdicts[EMD].decided_by == "rule" and "contract ended" in verdicts[EMD].reason
    assert verdicts[EMX].decided_by == "endpoint"
    assert verdicts[NAV].decided_by == "publish"
    assert verdicts[EMA].allowed and verdicts[EMA].reason.endswith("(default: open)")


# Replay --------------------------------------------------------------------------------------
# (recipient, module, owner, audience, body, expected allowed)
REPLAY = [
    pytest.param(EMA, "locations", CPA, None, LOCATION, True, id="replay: a broadcast Location"),
    pytest.param(EMO, "tariffs", CPA, None, LOCATION, True, id="replay to an OFFLINE party is queued"),
    pytest.param(MUL_EMSP, "locations", MUL_CPO, None, LOCATION, False,
                 id="was: replay skips objects of the party's own platform (forwarding did, replay did not)"),
    pytest.param(EMS, "locations", CPA, None, LOCATION, False,
                 id="was: replay to a SUSPENDED party sends nothing (replay ignored the receiver's status)"),
    pytest.param(EMP, "locations", CPA, None, LOCATION, False, id="replay to a PLANNED party sends nothing"),
    pytest.param(EMD, "locations", CPA, None, LOCATION, False, id="replay: the rules refuse"),
    pytest.param(EMA, "locations", CPA, [EMO], LOCATION, False,
                 id="replay: a directed push only to the parties it named"),
    pytest.param(EMO, "locations", CPA, [EMO], LOCATION, True, id="replay: the party a directed push named"),
    pytest.param(NAV, "locations", CPA, None, HIDDEN_LOCATION, False,
                 id="replay: publish false without a matching token"),
    pytest.param(EMA, "locations", CPA, None, HIDDEN_LOCATION, True,
                 id="replay: publish false with a matching token"),
    pytest.param(EMA_NSP, "sessions", CPA, None, session(), False,
                 id="was: replay of sessions only to the EMSP role (replay sent them to any non-CPO role)"),
    pytest.param(CPB, "tokens", EMA, None, {"uid": "RFID-1"}, True, id="replay: tokens to a CPO"),
]


@pytest.mark.parametrize(("recipient", "module", "owner", "audience", "body", "expected"), REPLAY)
def test_replay(recipient, module, owner, audience, body, expected):
    p = policy()
    party = p.party(recipient)
    verdict = p.replay(party, module)
    if verdict.allowed:
        verdict = p.delivery(module, party, owner=owner, body=body, audience=audience,
                             tokens=lambda key: TOKENS.get(key, []))
    assert verdict.allowed is expected, verdict.reason


@pytest.mark.parametrize(("recipient", "module", "why"), [
    pytest.param(EMX, "locations", "endpoint", id="replay: not a module the party offers a RECEIVER for"),
    pytest.param(EMA, "tokens", "role", id="replay: tokens never go to an eMSP"),
    pytest.param(CPA, "locations", "role", id="replay: locations never go to a CPO"),
    pytest.param(EMA, "commands", "role", id="replay: commands are not stored, never replayed"),
])
def test_replay_refuses_a_whole_module(recipient, module, why):
    p = policy()
    verdict = p.replay(p.party(recipient), module)
    assert not verdict.allowed and verdict.decided_by == why


# Accepting a push ----------------------------------------------------------------------------
# (module, sender, scenario, to, emsp, expected OCPI status or None when accepted)
PUSH = [
    pytest.param("locations", CPA, "broadcast", None, None, None, id="push: broadcasts are accepted"),
    pytest.param("locations", CPA, "directed", ("IN", "EMA", "EMSP"), None, None, id="push: directed, all fine"),
    pytest.param("locations", CPA, "directed", ("IN", "EMO", "EMSP"), None, None,
                 id="push: OFFLINE receiver accepted (queued)"),
    pytest.param("locations", CPA, "directed", ("IN", "NOP", "EMSP"), None, OcpiStatus.UNKNOWN_RECEIVER,
                 id="push: unknown receiver is 4001"),
    pytest.param("locations", CPA, "directed", ("IN", "EMP", "EMSP"), None, OcpiStatus.CONNECTION_PROBLEM,
                 id="push: PLANNED receiver is 4003"),
    pytest.param("locations", CPA, "directed", ("IN", "EMS", "EMSP"), None, OcpiStatus.CONNECTION_PROBLEM,
                 id="push: SUSPENDED receiver is 4003"),
    pytest.param("locations", CPA, "directed", ("IN", "EMD", "EMSP"), None, OcpiStatus.HUB_ERROR,
                 id="push: the rules refuse, 4000"),
    pytest.param("locations", CPA, "directed", ("IN", "EMX", "EMSP"), None, OcpiStatus.HUB_ERROR,
                 id="push: the receiver offers no locations receiver, 4000"),
    pytest.param("locations", CPA, "directed", ("IN", "SCS", "SCSP"), None, OcpiStatus.HUB_ERROR,
                 id="was: push directed to an SCSP refused, 4000 (accepted, then forwarded to it)"),
    pytest.param("sessions", CPA, "open", None, ("IN", "EMA"), None, id="push: session for a known eMSP"),
    pytest.param("sessions", CPA, "open", None, ("IN", "NOP"), OcpiStatus.UNKNOWN_RECEIVER,
                 id="push: session for an unknown eMSP is 4001"),
    pytest.param("sessions", CPA, "open", None, ("IN", "NAV"), OcpiStatus.UNKNOWN_RECEIVER,
                 id="was: session whose cdr_token names only an NSP is 4001 (any eMSP-like role was taken)"),
    pytest.param("cdrs", CPA, "open", None, ("IN", "EMS"), OcpiStatus.CONNECTION_PROBLEM,
                 id="push: CDR for a SUSPENDED eMSP is 4003"),
    pytest.param("cdrs", CPA, "directed", ("IN", "EMO", "EMSP"), ("IN", "EMA"), OcpiStatus.INVALID_PARAMETERS,
                 id="push: CDR addressed to another party than its cdr_token eMSP is 2001"),
    pytest.param("sessions", CPA, "directed", ("IN", "EMA", "EMSP"), ("IN", "EMA"), None,
                 id="push: session addressed to its cdr_token eMSP"),
    pytest.param("sessions", MUL_CPO, "open", None, ("IN", "MUL"), None,
                 id="push: a session of the sender's own eMSP is stored, not forwarded"),
    pytest.param("tokens", EMA, "directed", ("IN", "CPB", "CPO"), None, None, id="push: token directed to a CPO"),
    pytest.param("tokens", EMA, "directed", ("IN", "CPS", "CPO"), None, OcpiStatus.CONNECTION_PROBLEM,
                 id="push: token directed to a SUSPENDED CPO is 4003"),
]


@pytest.mark.parametrize(("module", "sender", "scenario", "to", "emsp", "expected"), PUSH)
def test_accept_push(module, sender, scenario, to, emsp, expected):
    verdict = policy().accept_push(module, sender, scenario=scenario, to=to, emsp=emsp)
    assert verdict.allowed is (expected is None), verdict.reason
    assert verdict.status == expected
    assert verdict.reason


# Real time -----------------------------------------------------------------------------------
# (module, requester, cc, pid, expected status, or the endpoint URL when allowed)
REALTIME = [
    pytest.param("tokens", CPA, "IN", "EMA", "https://p-ema/tokens/sender",
                 id="realtime: authorize at the token eMSP's tokens SENDER"),
    pytest.param("commands", EMA, "IN", "CPA", "https://p-cpa/commands",
                 id="realtime: a command to the CPO's commands RECEIVER"),
    pytest.param("tokens", CPA, "IN", "EMO", OcpiStatus.CONNECTION_PROBLEM,
                 id="was: realtime needs CONNECTED, OFFLINE is 4003 (pushes accept OFFLINE)"),
    pytest.param("commands", EMA, "IN", "CPO", OcpiStatus.CONNECTION_PROBLEM,
                 id="realtime: command to an OFFLINE CPO is 4003"),
    pytest.param("tokens", CPA, "IN", "EMP", OcpiStatus.CONNECTION_PROBLEM, id="realtime: PLANNED is 4003"),
    pytest.param("commands", EMA, "IN", "CPS", OcpiStatus.CONNECTION_PROBLEM, id="realtime: SUSPENDED is 4003"),
    pytest.param("tokens", CPA, "IN", "NOP", OcpiStatus.UNKNOWN_RECEIVER, id="realtime: unknown is 4001"),
    pytest.param("tokens", CPA, "IN", "EMD", OcpiStatus.HUB_ERROR, id="realtime: rules refuse, 4000"),
    pytest.param("tokens", CPA, "IN", "NAV", OcpiStatus.UNKNOWN_RECEIVER,
                 id="was: authorize goes to the EMSP role only (an NSP with the ids was a candidate)"),
    pytest.param("commands", EMA, "IN", "CPB", OcpiStatus.HUB_ERROR,
                 id="realtime: a commands rule refuses the pair, 4000"),
    pytest.param("tokens", CPA, "IN", "EMX", OcpiStatus.HUB_ERROR,
                 id="realtime: the receiver offers no tokens SENDER, 4000"),
    pytest.param("chargingprofiles", EMA, "IN", "CPA", "https://p-cpa/chargingprofiles",
                 id="realtime: an eMSP's charging profile call to the CPO's chargingprofiles RECEIVER"),
    pytest.param("chargingprofiles", SCS, "IN", "CPA", "https://p-cpa/chargingprofiles",
                 id="realtime: an SCSP sets charging profiles like an eMSP"),
    pytest.param("chargingprofiles", EMD, "IN", "CPA", OcpiStatus.HUB_ERROR,
                 id="realtime: a rule keeps the eMSP's charging profiles from the CPO, 4000"),
    pytest.param("chargingprofiles", SCS, "IN", "CPB", OcpiStatus.HUB_ERROR,
                 id="realtime: the CPO offers no chargingprofiles RECEIVER, 4000"),
    pytest.param("chargingprofiles", SCS, "IN", "EMA", OcpiStatus.UNKNOWN_RECEIVER,
                 id="realtime: charging profiles go to a CPO only (an eMSP with the ids is unknown)"),
    pytest.param("sessions", EMA, "IN", "CPA", "https://p-cpa/sessions/sender",
                 id="realtime: charging preferences at the CPO's sessions SENDER"),
    pytest.param("sessions", EMA, "IN", "CPB", OcpiStatus.HUB_ERROR,
                 id="realtime: charging preferences to a CPO without a sessions SENDER, 4000"),
]


@pytest.mark.parametrize(("module", "requester", "cc", "pid", "expected"), REALTIME)
def test_realtime(module, requester, cc, pid, expected):
    p = policy(rules=[*policy().snapshot.rules.rules, rule(CPB, EMA, "commands", "deny", "no commands")])
    verdict = p.realtime(module, requester, cc, pid)
    if isinstance(expected, str):
        assert verdict.allowed and verdict.endpoint == expected, verdict.reason
    else:
        assert not verdict.allowed and verdict.status == expected, verdict.reason


@pytest.mark.parametrize(("cc", "pid", "expected"), [
    pytest.param("IN", "EMA", "https://p-ema/chargingprofiles/sender",
                 id="profile update: the session's eMSP at its chargingprofiles SENDER"),
    pytest.param("IN", "SCS", "https://p-scs/chargingprofiles/sender", id="profile update: an addressed SCSP"),
    pytest.param("IN", "EMO", "https://p-emo/chargingprofiles/sender",
                 id="profile update: an OFFLINE eMSP gets it queued (stored and forwarded)"),
    pytest.param("IN", "EMS", OcpiStatus.CONNECTION_PROBLEM, id="profile update: SUSPENDED gets nothing, 4003"),
    pytest.param("IN", "EMD", OcpiStatus.HUB_ERROR, id="profile update: the rules refuse, 4000"),
    pytest.param("IN", "EMX", OcpiStatus.HUB_ERROR, id="profile update: no chargingprofiles SENDER, 4000"),
    pytest.param("IN", "NAV", OcpiStatus.UNKNOWN_RECEIVER, id="profile update: never to an NSP, 4001"),
    pytest.param("IN", "NOP", OcpiStatus.UNKNOWN_RECEIVER, id="profile update: unknown is 4001"),
])
def test_profile_update(cc, pid, expected):
    verdict = policy().profile_update("chargingprofiles", CPA, cc, pid)
    if isinstance(expected, str):
        assert verdict.allowed and verdict.endpoint == expected, verdict.reason
    else:
        assert not verdict.allowed and verdict.status == expected, verdict.reason


@pytest.mark.parametrize(("owners", "status", "chosen"), [
    pytest.param([("IN", "EMA")], None, ("IN", "EMA"), id="sole owner: one owner is chosen as is"),
    pytest.param([], OcpiStatus.UNKNOWN_RECEIVER, None, id="sole owner: none is 4001"),
    pytest.param([("IN", "EMA"), ("IN", "EMO")], OcpiStatus.UNKNOWN_RECEIVER, None,
                 id="sole owner: several allowed is 4001"),
    pytest.param([("IN", "EMA"), ("IN", "EMD")], None, ("IN", "EMA"),
                 id="sole owner: the one the rules allow of several"),
    pytest.param([("IN", "EMD"), ("IN", "EMS")], OcpiStatus.HUB_ERROR, None,
                 id="was: sole owner counts suspensions like every path (rules only before), all refused 4000"),
])
def test_sole_owner(owners, status, chosen):
    verdict = policy().sole_owner("tokens", CPA, owners, "pushed token T1")
    assert verdict.status == status and verdict.owner == chosen, verdict.reason


# Pulls ---------------------------------------------------------------------------------------
# (module, viewer, to, status overrides, expected owners, expected emsp, expected viewer filter)
PULL = [
    pytest.param("locations", EMA, None, {}, {("IN", "CPA"), ("IN", "CPB"), ("IN", "CPO"), ("IN", "MUL")},
                 None, EMA, id="pull: every CPO but a suspended one; directed objects only to the viewer"),
    pytest.param("locations", EMD, None, {}, {("IN", "CPB"), ("IN", "CPO"), ("IN", "MUL")}, None, EMD,
                 id="pull: the rules hide a CPO"),
    pytest.param("tariffs", EMA, ("IN", "CPB"), {}, {("IN", "CPB")}, None, EMA,
                 id="pull addressed to one CPO: only it"),
    pytest.param("locations", MUL_EMSP, None, {}, {("IN", "CPA"), ("IN", "CPB"), ("IN", "CPO"), ("IN", "MUL")},
                 None, MUL_EMSP, id="pull: a pull answers from the store, its own platform's objects included"),
    pytest.param("sessions", EMA, None, {}, {("IN", "CPA"), ("IN", "CPB"), ("IN", "CPO"), ("IN", "MUL")},
                 ("IN", "EMA"), None, id="pull: sessions only the viewer's own (cdr_token)"),
    pytest.param("sessions", EMA_NSP, None, {}, set(), ("IN", "EMA"), None,
                 id="was: an NSP with the eMSP's ids sees no sessions (it saw the eMSP's)"),
    pytest.param("tokens", CPA, None, {},
                 {("IN", "EMA"), ("IN", "EMO"), ("IN", "EMP"), ("IN", "EMX"), ("IN", "MUL")}, None, CPA,
                 id="pull: tokens of eMSPs (OFFLINE and PLANNED owners too), not suspended, not denied"),
    pytest.param("locations", SCS, None, {}, set(), None, SCS, id="was: an SCSP sees no Locations"),
    pytest.param("locations", EMA, None, {"IN_EMA_EMSP": "SUSPENDED"}, set(), None, EMA,
                 id="pull: a suspended viewer sees nothing"),
]


@pytest.mark.parametrize(("module", "viewer", "to", "status", "owners", "emsp", "audience"), PULL)
def test_pull(module, viewer, to, status, owners, emsp, audience):
    scope = policy(**status).pull(module, viewer, to)
    assert set(scope.owners) == owners
    assert scope.emsp == emsp and scope.viewer == audience


# HubClientInfo -------------------------------------------------------------------------------
DENY_INFO = [rule(CPA, EMA, "hubclientinfo", "deny", "private")]


@pytest.mark.parametrize(("rules", "status", "viewers", "subject", "expected"), [
    pytest.param([], {}, [EMA], EMA, True, id="clientinfo: its own party"),
    pytest.param([], {}, [EMA], CPA, True, id="clientinfo: open by default"),
    pytest.param(DENY_INFO, {}, [EMA], CPA, False, id="clientinfo: a hubclientinfo rule hides the pair"),
    pytest.param(DENY_INFO, {}, [CPA], EMA, False, id="clientinfo: either way round"),
    pytest.param(DENY_INFO, {}, [CPB], CPA, True, id="clientinfo: CPO-CPO pairs are not ruled"),
    pytest.param(DENY_INFO, {}, [MUL_CPO, EMA], CPA, True, id="clientinfo: one viewer of the platform suffices"),
    pytest.param([], {}, [], CPA, True, id="clientinfo: a platform with no parties yet"),
    pytest.param([], {"IN_EMS_EMSP": "SUSPENDED"}, [EMS], CPA, False,
                 id="was: a suspended platform sees nothing (ClientInfo ignored suspension)"),
    pytest.param([], {}, [EMA], EMS, True, id="clientinfo: a suspended party is shown (as SUSPENDED)"),
])
def test_client_info_visible(rules, status, viewers, subject, expected):
    verdict = policy(rules, **status).client_info_visible(viewers, subject)
    assert verdict.allowed is expected, verdict.reason


def test_client_info_recipients_registered_offering_not_own_not_suspended():
    recipients = {platform for platform, v in policy([]).client_info_recipients(CPB) if v.allowed}
    # p-emp is INVITED, p-cpb itself is excluded, p-ems and p-cps are suspended, the rest offer no receiver.
    assert recipients == {"p-cpa", "p-ema", "p-emd", "p-mul"}


# explain -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cpo", "emsp", "module", "status", "allowed", "by", "reason"), [
    pytest.param(CPA, EMA, "locations", {}, True, "default", "default: open", id="explain: default open"),
    pytest.param(CPA, EMD, "cdrs", {}, False, "rule", "contract ended", id="explain: a rule refuses"),
    pytest.param(CPA, EMS, "locations", {}, False, "status", f"{EMS} is SUSPENDED",
                 id="explain: the CPO sends locations, the eMSP receives"),
    pytest.param(CPA, EMS, "commands", {}, False, "suspension", f"sender {EMS} is suspended",
                 id="explain: the eMSP sends commands"),
    pytest.param(CPS, EMA, "tokens", {}, False, "status", f"{CPS} is SUSPENDED",
                 id="explain: tokens go to the CPO"),
    pytest.param(CPA, EMP, "locations", {}, False, "status", "has no endpoints yet",
                 id="was: explain said delivered to a PLANNED receiver (it reported the rules only)"),
    pytest.param(CPA, EMX, "locations", {}, False, "endpoint", "offers no locations receiver interface",
                 id="was: explain said delivered to a receiver without the module's endpoint"),
    pytest.param(CPA, EMO, "locations", {"IN_EMO_EMSP": "OFFLINE"}, True, "default", "default: open",
                 id="explain: an OFFLINE receiver is queued for"),
    pytest.param(CPOFF, EMA, "commands", {}, False, "status", f"receiver {CPOFF} is OFFLINE",
                 id="explain: commands need a CONNECTED CPO (real time)"),
    pytest.param(CPA, "IN/NEW/EMSP", "tariffs", {}, True, "default", "default: open",
                 id="explain: a party not yet known"),
])
def test_explain(cpo, emsp, module, status, allowed, by, reason):
    verdict = policy(**status).explain(cpo, emsp, module)
    assert (verdict.allowed, verdict.decided_by) == (allowed, by)
    assert reason in verdict.reason


def test_cdr_token_emsp_and_rule_pair():
    assert cdr_token_emsp(session("in", "ema")) == ("IN", "EMA")
    assert cdr_token_emsp({"cdr_token": "x"}) is None and cdr_token_emsp(None) is None
    assert rule_pair(EMA, CPA) == (CPA, EMA) == rule_pair(CPA, EMA)
