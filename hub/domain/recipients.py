"""The recipient policy: who may receive, be called with, or see what (pure, no I/O).

Every path that moves or shows data between parties asks a :class:`Policy`
built over one :class:`Snapshot` (parties, their platforms' endpoints, the
routing rules). Each decision is a :class:`Verdict`: allowed or not, a
reason a person can read, and for refusals the OCPI status the caller gets.
Those data classes live in :mod:`hub.domain.network`.

The hub's semantics (DESIGN.md "Hub semantics"), decided here once:

- stored-and-forwarded pushes accept CONNECTED and OFFLINE receivers (they
  are queued); PLANNED parties have no endpoints yet; SUSPENDED receives nothing;
- real-time calls need a CONNECTED receiver;
- nothing is ever forwarded (or replayed) back to the platform it came from;
- Locations and Tariffs go to every party of the module's receiving roles
  (EMSP, NAP, NSP, OTHER), Tokens to every CPO; Sessions and CDRs only to the
  EMSP party of their ``cdr_token``;
- routing rules (:mod:`hub.domain.ruleset`) between the CPO and the
  eMSP-side party; a suspended party on either side refuses;
- the receiver must offer the module's interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hub.domain.modules import CDR_TOKEN, CPO, RECEIVER, SENDER, Module, module
from hub.domain.network import Endpoint, Party, Platform, PullScope, Snapshot, Verdict  # noqa: F401 (re-exported)
from hub.domain.parties import CONNECTED, OFFLINE, PLANNED, SUSPENDED, party_key
from hub.domain.ruleset import DEFAULT_OPEN, RECEIVER_SUSPENDED, SENDER_SUSPENDED, publish_visible
from hub.ocpi.status import OcpiStatus

QUEUEABLE = frozenset({CONNECTED, OFFLINE})  # stored-and-forwarded messages wait for OFFLINE parties


def cdr_token_emsp(body: Mapping | None) -> tuple[str, str] | None:
    """The eMSP a Session or CDR belongs to: the ids of its ``cdr_token`` (upper case)."""
    token = (body or {}).get("cdr_token")
    if not isinstance(token, Mapping):
        return None
    return str(token.get("country_code", "")).upper(), str(token.get("party_id", "")).upper()


def rule_pair(key_a: str, key_b: str) -> tuple[str, str]:
    """(CPO key, eMSP-side key) of two party keys, whichever is the sender."""
    return (key_a, key_b) if key_a.rsplit("/", 1)[-1] == CPO else (key_b, key_a)


#: Refusals that mean "may no longer see this Location" (rules or publish), not "cannot receive".
HIDING = frozenset({"rule", "default", "publish"})
#: ``decided_by`` of the one change that goes to a party that no longer sees the Location.
HIDDEN = "hidden"


def _allowed(reason: str, by: str = "default", **kw) -> Verdict:
    return Verdict(True, reason, None, by, **kw)


def _refused(reason: str, status: int | None, by: str, **kw) -> Verdict:
    return Verdict(False, reason, status, by, **kw)


class Policy:
    """The recipient decisions over one :class:`Snapshot`."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.rules = snapshot.rules
        self._by_key = {p.key: p for p in snapshot.parties}

    # Look-ups -------------------------------------------------------------------------
    def party(self, key: str | None) -> Party | None:
        return self._by_key.get((key or "").upper())

    def parties_with(self, country_code: str, party_id: str, roles: Iterable[str]) -> list[Party]:
        """The parties with these ids and one of ``roles``: CONNECTED, then OFFLINE, then the rest."""
        cc, pid, roles = country_code.upper(), party_id.upper(), frozenset(roles)
        found = [p for p in self.snapshot.parties if p.ids == (cc, pid) and p.role in roles]
        order = {CONNECTED: 0, OFFLINE: 1}
        return sorted(found, key=lambda p: order.get(p.status, 2))

    def offers(self, party: Party, identifier: str, interface: str) -> Endpoint | None:
        platform = self.snapshot.platforms.get(party.platform_id)
        return platform.endpoint(identifier, interface) if platform is not None else None

    # Rules ------------------------------------------------------------------------------
    def rules_verdict(self, sender_key: str, receiver_key: str, identifier: str) -> Verdict:
        """The routing rules (and suspensions) on ``identifier`` traffic from sender to receiver."""
        sender, receiver = self.party(sender_key), self.party(receiver_key)
        cpo, emsp = rule_pair(sender_key.upper(), receiver_key.upper())
        decision = self.rules.decide(cpo, emsp, identifier,
                                     sender_status=sender.status if sender else None,
                                     receiver_status=receiver.status if receiver else None)
        reason = {SENDER_SUSPENDED: f"sender {sender_key.upper()} is suspended",
                  RECEIVER_SUSPENDED: f"receiver {receiver_key.upper()} is suspended"}.get(
                      decision.reason, decision.reason)
        by = "rule" if decision.rule else ("default" if decision.reason == DEFAULT_OPEN else "suspension")
        return Verdict(decision.allowed, reason, None if decision.allowed else OcpiStatus.HUB_ERROR, by,
                       party=receiver, rule=decision.rule)

    def explain(self, cpo_key: str, emsp_key: str, identifier: str) -> Verdict:
        """Would ``identifier`` traffic pass between this CPO and eMSP-side party? The sender is
        the module's data owner (the eMSP for Tokens and Commands, else the CPO). The answer is
        the one the hub would give now: for a stored module a forwarded change's verdict
        (:meth:`delivery`: the receiver's role, state and endpoint, then the rules), for a
        real-time one the relay's (:meth:`realtime`); otherwise the rules alone."""
        mod = module(identifier)
        sender, receiver = (emsp_key, cpo_key) if mod.owner not in (None, CPO) else (cpo_key, emsp_key)
        target = self.party(receiver)
        if target is not None and mod.stored:
            return self.delivery(identifier, target, owner=sender.upper())
        if target is not None and mod.realtime is not None and target.role == mod.realtime[0]:
            return self.realtime(identifier, sender.upper(), *target.ids)
        return self.explain_rules(cpo_key, emsp_key, identifier)

    def explain_rules(self, cpo_key: str, emsp_key: str, identifier: str) -> Verdict:
        """The routing rules' (and suspensions') part of :meth:`explain` alone."""
        owner = module(identifier).owner
        sender, receiver = (emsp_key, cpo_key) if owner not in (None, CPO) else (cpo_key, emsp_key)
        return self.rules_verdict(sender, receiver, identifier)

    # Pushes accepted by the hub ---------------------------------------------------------
    def accept_push(self, identifier: str, sender_key: str, *, scenario: str,
                    to: tuple[str, str, str] | None = None,
                    emsp: tuple[str, str] | None = None) -> Verdict:
        """May the hub accept this push, that it could deliver? ``to``: the addressed party
        (``cc, pid, role``) of a directed push; ``emsp``: the ``cdr_token`` eMSP of a
        Session or CDR, which is then the only receiver whatever the scenario."""
        mod = module(identifier)
        if emsp is not None and mod.routing == CDR_TOKEN:
            if scenario == "directed" and to is not None and (to[0], to[1]) != emsp:
                return _refused(f"OCPI-to-party-id: {identifier} go to the eMSP of cdr_token "
                                f"({emsp[0]}/{emsp[1]}), not {to[0]}/{to[1]}",
                                OcpiStatus.INVALID_PARAMETERS, "address")
            target, roles = emsp, mod.receivers
        elif scenario == "directed" and to is not None:
            if to[2] not in mod.receivers:
                return _refused(f"{party_key(*to)}: {identifier} go to "
                                f"{'/'.join(sorted(mod.receivers))} parties", OcpiStatus.HUB_ERROR, "role")
            target, roles = (to[0], to[1]), frozenset({to[2]})
        else:
            return _allowed("broadcast and open-routed pushes go to whoever the policy allows")
        found = self.parties_with(*target, roles)
        if not found:
            return _refused(f"unknown receiver {target[0].upper()}/{target[1].upper()}",
                            OcpiStatus.UNKNOWN_RECEIVER, "unknown")
        party = found[0]
        if party.status not in QUEUEABLE:
            return _refused(f"receiver {party.key} is {party.status}", OcpiStatus.CONNECTION_PROBLEM,
                            "status", party=party)
        sender = self.party(sender_key)
        if sender is not None and sender.platform_id == party.platform_id:
            return _allowed(f"receiver {party.key} is on the sender's own platform: stored, "
                            "not forwarded", "platform", party=party)
        rules = self.rules_verdict(sender_key, party.key, identifier)
        if not rules:
            return _refused(f"routing to {party.key} refused: {rules.reason}", OcpiStatus.HUB_ERROR,
                            rules.decided_by, party=party, rule=rules.rule)
        if self.offers(party, identifier, RECEIVER) is None:
            return _refused(f"receiver {party.key} does not offer the {identifier} receiver interface",
                            OcpiStatus.HUB_ERROR, "endpoint", party=party)
        return _allowed(f"{party.key} may receive it ({rules.reason})", rules.decided_by, party=party,
                        rule=rules.rule)

    # Stored-and-forwarded deliveries ----------------------------------------------------
    def candidates(self, mod: Module, *, scenario: str, to: str | None,
                   body: Mapping | None) -> list[Party]:
        """Who a change of ``mod`` may go to before the per-party checks."""
        if mod.routing == CDR_TOKEN:
            emsp = cdr_token_emsp(body)
            return self.parties_with(*emsp, mod.receivers) if emsp else []
        if scenario == "directed":
            party = self.party(to)
            return [party] if party is not None else []
        return [p for p in self.snapshot.parties if p.role in mod.receivers]

    def delivery(self, identifier: str, recipient: Party, *, owner: str, origin: Party | str | None = None,
                 body: Mapping | None = None, audience: list | None = None,
                 tokens: Callable[[str], Iterable[dict]] | None = None) -> Verdict:
        """May a change of one object go to ``recipient`` (forwarding and replay alike)?

        ``owner``: the key of the party that owns the object (the rules' pair); ``origin``:
        the party it came from (default: the owner); ``audience``: the parties a directed
        push named (None: it was broadcast); ``tokens(key)``: the Tokens an eMSP party
        holds, asked only for a ``publish: false`` Location.
        """
        mod = module(identifier)
        if not isinstance(origin, Party):
            origin = self.party(origin) or self.party(owner)
        if recipient.role not in mod.receivers:
            return _refused(f"{recipient.key}: {identifier} go to {'/'.join(sorted(mod.receivers))} "
                            "parties", None, "role", party=recipient)
        if origin is not None and origin.platform_id == recipient.platform_id:
            return _refused(f"{recipient.key} is on the platform it came from", None, "platform",
                            party=recipient)
        if recipient.status not in QUEUEABLE:
            why = "has no endpoints yet" if recipient.status == PLANNED else "receives nothing"
            return _refused(f"{recipient.key} is {recipient.status}: {why}", None, "status", party=recipient)
        rules = self.rules_verdict(owner, recipient.key, identifier)
        if not rules:
            return _refused(rules.reason, None, rules.decided_by, party=recipient, rule=rules.rule)
        if self.offers(recipient, identifier, RECEIVER) is None:
            return _refused(f"{recipient.key} offers no {identifier} receiver interface", None, "endpoint",
                            party=recipient)
        if audience is not None and recipient.key not in audience:
            return _refused(f"{recipient.key} was not among the parties it was addressed to", None,
                            "audience", party=recipient)
        if (identifier == "locations" and body is not None and body.get("publish") is False
                and not publish_visible(body, tokens(recipient.key) if tokens else ())):
            return _refused(f"publish: false, and {recipient.key} holds no token publish_allowed_to names",
                            None, "publish", party=recipient)
        return _allowed(f"{recipient.key} receives it ({rules.reason})", rules.decided_by, party=recipient,
                        rule=rules.rule)

    def forward(self, identifier: str, *, owner: str, origin: str | None, scenario: str, to: str | None,
                body: Mapping | None, tokens: Callable[[str], Iterable[dict]] | None = None,
                audience: Callable[[], Iterable[str]] | None = None) -> list[Verdict]:
        """One verdict per candidate recipient of a pushed change (allowed ones get it).

        ``origin``: the key of the party that pushed it (``message["from"]``).

        ``audience()``: the parties that were sent this Location and still see it (asked only when
        one is refused). A Location that stops being visible to one of them (``publish`` turned
        false, ``publish_allowed_to`` no longer naming it, a routing rule that now denies) still
        goes to it once, with the change that hid it, so it can hide the Location
        (``decided_by="hidden"``); later changes do not. A party refused for another reason
        (suspended, no endpoint, its own platform) is not told."""
        mod = module(identifier)
        verdicts = [self.delivery(identifier, party, owner=owner, origin=origin, body=body, tokens=tokens)
                    for party in self.candidates(mod, scenario=scenario, to=to, body=body)]
        if identifier != "locations" or audience is None or all(v.allowed or v.decided_by not in HIDING
                                                                 for v in verdicts):
            return verdicts
        saw = set(audience())
        return [_allowed(f"{v.party.key} no longer sees it ({v.reason}): this change, its last, lets it "
                         "hide the Location", HIDDEN, party=v.party, rule=v.rule)
                if not v.allowed and v.decided_by in HIDING and v.party.key in saw else v
                for v in verdicts]

    def replay(self, recipient: Party, identifier: str) -> Verdict:
        """May ``recipient`` get a replay of ``identifier`` at all (before each object is asked
        with :meth:`delivery`)?"""
        mod = module(identifier)
        if not mod.stored:
            return _refused(f"{identifier} is not replayed", None, "role", party=recipient)
        if recipient.role not in mod.receivers:
            return _refused(f"{recipient.key}: {identifier} go to {'/'.join(sorted(mod.receivers))} "
                            "parties", None, "role", party=recipient)
        if recipient.status not in QUEUEABLE:
            return _refused(f"{recipient.key} is {recipient.status}", None, "status", party=recipient)
        if self.offers(recipient, identifier, RECEIVER) is None:
            return _refused(f"{recipient.key} offers no {identifier} receiver interface", None, "endpoint",
                            party=recipient)
        return _allowed(f"{recipient.key} may get a replay of {identifier}", party=recipient)

    # Real time --------------------------------------------------------------------------
    def realtime(self, identifier: str, requester_key: str, country_code: str, party_id: str) -> Verdict:
        """The party a real-time request goes to: it must be CONNECTED, allowed by the
        rules, and offer the interface; the verdict carries its endpoint URL."""
        mod = module(identifier)
        role, interface = mod.realtime or (None, None)
        found = self.parties_with(country_code, party_id, {role} if role else ())
        if not found:
            return _refused(f"unknown receiver {country_code.upper()}/{party_id.upper()}",
                            OcpiStatus.UNKNOWN_RECEIVER, "unknown")
        party = found[0]
        if party.status != CONNECTED:
            return _refused(f"receiver {party.key} is {party.status}", OcpiStatus.CONNECTION_PROBLEM,
                            "status", party=party)
        rules = self.rules_verdict(requester_key, party.key, identifier)
        if not rules:
            return _refused(f"routing to {party.key} refused: {rules.reason}", OcpiStatus.HUB_ERROR,
                            rules.decided_by, party=party, rule=rules.rule)
        endpoint = self.offers(party, identifier, interface)
        if endpoint is None or not endpoint.url:
            return _refused(f"receiver {party.key} does not offer the {identifier} {interface.lower()} "
                            "interface", OcpiStatus.HUB_ERROR, "endpoint", party=party)
        return _allowed(f"{party.key} answers ({rules.reason})", rules.decided_by, party=party,
                        rule=rules.rule, endpoint=endpoint.url)

    def profile_update(self, identifier: str, cpo_key: str, country_code: str, party_id: str) -> Verdict:
        """Who gets a CPO's unsolicited update (ActiveChargingProfile) for one session: the
        requesting-side party with these ids (CONNECTED or OFFLINE: it is queued), allowed by
        the rules, offering the module's SENDER; the verdict carries that endpoint URL."""
        mod = module(identifier)
        found = self.parties_with(country_code, party_id, mod.counterparts(SENDER))
        if not found:
            return _refused(f"unknown receiver {country_code.upper()}/{party_id.upper()}",
                            OcpiStatus.UNKNOWN_RECEIVER, "unknown")
        party = found[0]
        if party.status not in QUEUEABLE:
            return _refused(f"receiver {party.key} is {party.status}", OcpiStatus.CONNECTION_PROBLEM,
                            "status", party=party)
        rules = self.rules_verdict(cpo_key, party.key, identifier)
        if not rules:
            return _refused(f"routing to {party.key} refused: {rules.reason}", OcpiStatus.HUB_ERROR,
                            rules.decided_by, party=party, rule=rules.rule)
        endpoint = self.offers(party, identifier, SENDER)
        if endpoint is None or not endpoint.url:
            return _refused(f"receiver {party.key} does not offer the {identifier} sender interface",
                            OcpiStatus.HUB_ERROR, "endpoint", party=party)
        return _allowed(f"{party.key} receives it ({rules.reason})", rules.decided_by, party=party,
                        rule=rules.rule, endpoint=endpoint.url)

    def sole_owner(self, identifier: str, requester_key: str, owners: list[tuple[str, str]],
                   what: str) -> Verdict:
        """Open routing of a real-time request: the one party of ``owners`` (``cc, pid``) to
        send it to, counting only those the rules let receive it (``verdict.owner``).

        None found or several allowed: 4001. Several, all refused: 4000. A single owner is
        chosen as is; :meth:`realtime` then says why it is refused, if it is.
        """
        role = (module(identifier).realtime or (CPO, ""))[0]
        kind = "eMSP" if role == "EMSP" else role
        owners = [(cc.upper(), pid.upper()) for cc, pid in owners]
        if len(owners) > 1:
            allowed = [o for o in owners if self.rules_verdict(requester_key, party_key(*o, role), identifier)]
            if not allowed:
                return _refused(f"routing refused: the routing rules allow none of the {kind}s that {what}",
                                OcpiStatus.HUB_ERROR, "rule")
            owners = allowed
        if len(owners) != 1:
            why = f"no {kind} has" if not owners else f"several {kind}s have"
            return _refused(f"{why} {what}; address the {kind} with OCPI-to", OcpiStatus.UNKNOWN_RECEIVER,
                            "choice")
        return _allowed(f"{owners[0][0]}/{owners[0][1]} {what}", "choice", owner=owners[0])

    # Pulls ------------------------------------------------------------------------------
    def pull(self, identifier: str, viewer_key: str, to: tuple[str, str] | None = None) -> PullScope:
        """What ``viewer_key`` may see in a pull of ``identifier`` from the hub's store
        (``to``: the owner a directed pull addresses)."""
        mod = module(identifier)
        viewer = self.party(viewer_key)
        owners = [p.ids for p in self.snapshot.parties
                  if p.role == mod.owner and self.visible(identifier, p, viewer_key)]
        if to is not None:
            owners = [o for o in owners if o == (to[0].upper(), to[1].upper())]
        if viewer is None or viewer.role not in mod.receivers:
            owners = []
        if mod.routing == CDR_TOKEN:
            return PullScope(owners, emsp=viewer.ids if viewer else ("", ""), viewer=None)
        return PullScope(owners, viewer=viewer_key.upper())

    def visible(self, identifier: str, owner: Party, viewer_key: str) -> Verdict:
        """May ``viewer_key`` see ``owner``'s ``identifier`` objects in a pull? (The rules and
        suspensions only: a pull answers from the hub's store, so an OFFLINE or PLANNED
        owner's objects stay visible, and so do those of the viewer's own platform.)"""
        return self.rules_verdict(owner.key, viewer_key, identifier)

    # HubClientInfo ----------------------------------------------------------------------
    def client_info_visible(self, viewer_keys: Iterable[str], subject_key: str) -> Verdict:
        """May a platform with parties ``viewer_keys`` see (and be told about) ``subject_key``?

        Its own parties always. Its SUSPENDED parties see nothing: a platform whose every
        party is suspended is told nothing. A CPO–eMSP pair unless a ``hubclientinfo`` (or
        all-modules) rule denies it; any other pair always.
        """
        viewers = [k.upper() for k in viewer_keys]
        subject_key = subject_key.upper()
        if subject_key in viewers:
            return _allowed("its own party")
        if not viewers:
            return _allowed("a platform with no parties yet sees every party")
        live = [k for k in viewers if (self.party(k) is None or self.party(k).status != SUSPENDED)]
        if not live:
            return _refused("every party of the viewing platform is suspended", None, "suspension")
        subject_cpo = subject_key.rsplit("/", 1)[-1] == CPO
        refusals = []
        for viewer in live:
            if (viewer.rsplit("/", 1)[-1] == CPO) == subject_cpo:
                return _allowed(f"{viewer} and {subject_key} are no CPO–eMSP pair: rules do not apply")
            cpo, emsp = rule_pair(viewer, subject_key)
            decision = self.rules.decide(cpo, emsp, "hubclientinfo")
            if decision.allowed:
                return _allowed(f"{viewer} may see {subject_key} ({decision.reason})",
                                "rule" if decision.rule else "default", rule=decision.rule)
            refusals.append(decision)
        return _refused(f"{subject_key} is hidden from {', '.join(live)}: {refusals[0].reason}", None,
                        "rule", rule=refusals[0].rule)

    def client_info_recipients(self, subject_key: str) -> list[tuple[object, Verdict]]:
        """``(platform_id, verdict)`` for every platform a change of ``subject_key``'s ClientInfo
        could be pushed to: registered, offering a hubclientinfo RECEIVER, not its own."""
        subject = self.party(subject_key)
        found = []
        for platform in self.snapshot.platforms.values():
            if platform.state != "REGISTERED" or platform.endpoint("hubclientinfo", RECEIVER) is None:
                continue
            if subject is not None and platform.platform_id == subject.platform_id:
                continue
            found.append((platform.platform_id,
                          self.client_info_visible(self.viewers_of(platform.platform_id), subject_key)))
        return found

    def viewers_of(self, platform_id: object) -> list[str]:
        """The party keys of one platform (what it may see in HubClientInfo depends on them)."""
        return [p.key for p in self.snapshot.parties if p.platform_id == platform_id]


__all__ = ["Endpoint", "Party", "Platform", "Policy", "PullScope", "Snapshot", "Verdict", "cdr_token_emsp",
           "publish_visible", "rule_pair"]
