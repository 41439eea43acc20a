"""Routing rules as operators set them: allow, deny, remove, and why a message would pass.

The CPO is always the first party of a rule, the eMSP-side party (EMSP, NSP,
SCSP, OTHER...) the second, whichever way the message flows.
"""

from __future__ import annotations

from collections.abc import Callable

from hub.domain import modules
from hub.domain.parties import Party
from hub.domain.recipients import Verdict
from hub.domain.rules import RoutingRule
from hub.services.application import Hub, UnitOfWork
from hub.services.operators import OperatorError, operator_name
from hub.services.operators.names import PartyName
from hub.services.operators.parties import find

EMSP_SIDE = "eMSP-side (EMSP, NSP, SCSP, OTHER…)"


def _known(app: Hub, name: PartyName) -> list[Party]:
    parties = find(app, name)
    if not parties:
        raise OperatorError(f"no party {name} (`hub parties list` shows every party)")
    return parties


def _one(name: PartyName, chosen: list[Party], found: list[Party], wanted: str, position: str) -> Party:
    if not chosen:
        roles = "/".join(sorted(p.role for p in found))
        raise OperatorError(f"{name} is not a known {wanted} party (it is {roles}); "
                            f"the {position} party of a rule must be the {wanted} one")
    if len(chosen) > 1:
        roles = ", ".join(sorted(p.role for p in chosen))
        raise OperatorError(f"{name} is ambiguous (roles {roles}); write it as {name}/ROLE")
    return chosen[0]


def rule_pair(app: Hub, cpo: PartyName, emsp: PartyName) -> tuple[str, str]:
    """The party keys of a rule's CPO and eMSP-side party."""
    cpos, emsps = _known(app, cpo), _known(app, emsp)
    chosen_cpo = _one(cpo, [p for p in cpos if p.role == "CPO"], cpos, "CPO", "first")
    chosen_emsp = _one(emsp, [p for p in emsps if p.role != "CPO"], emsps, EMSP_SIDE, "second")
    return chosen_cpo.key, chosen_emsp.key


def _rule(app: Hub, cpo: str, emsp: str, module: str) -> RoutingRule | None:
    from eventsourcing.application import AggregateNotFoundError

    try:
        return app.repository.get(RoutingRule.create_id(cpo, emsp, module))
    except AggregateNotFoundError:
        return None


def _commit(app: Hub, rule: RoutingRule) -> None:
    from eventsourcing.persistence import IntegrityError

    uow = UnitOfWork(app)
    uow.add(rule)
    try:
        uow.commit()
    except IntegrityError:
        raise OperatorError("the rule was changed at the same moment by someone else; try again") from None


def rule_row(rule: RoutingRule) -> dict:
    return {"cpo": rule.cpo, "emsp": rule.emsp, "module": rule.module, "effect": rule.effect,
            "reason": rule.reason, "set_by": rule.set_by, "updated_at": rule.modified_on.isoformat()}


def set_rule(app: Hub, cpo: PartyName, emsp: PartyName, module: str, effect: str, reason: str,
             refresh: Callable[..., None] = lambda *_: None) -> tuple[dict, bool]:
    """Allow or deny ``module`` (``*``: every module) between the pair; returns the rule and
    whether anything changed (setting the same rule again changes nothing)."""
    cpo_key, emsp_key = rule_pair(app, cpo, emsp)
    rule = _rule(app, cpo_key, emsp_key, module)
    changed = rule is None or rule.differs(effect, reason)
    if rule is None:
        rule = RoutingRule(cpo=cpo_key, emsp=emsp_key, module=module, effect=effect, reason=reason,
                           set_by=operator_name())
    elif changed:
        rule.change(effect, reason, operator_name())
    if changed:
        _commit(app, rule)
        refresh()
    return rule_row(rule), changed


def remove_rule(app: Hub, cpo: PartyName, emsp: PartyName, module: str,
                refresh: Callable[..., None] = lambda *_: None) -> tuple[str, str]:
    """Remove the rule (its history stays in the log); returns the pair's keys."""
    cpo_key, emsp_key = rule_pair(app, cpo, emsp)
    rule = _rule(app, cpo_key, emsp_key, module)
    if rule is None or rule.removed:
        scope = "all modules" if module == "*" else module
        raise OperatorError(f"no rule for {cpo_key} / {emsp_key} ({scope}); `hub routing list` shows them")
    rule.remove(operator_name())
    _commit(app, rule)
    refresh()
    return cpo_key, emsp_key


def explain_pair(app: Hub, sender: PartyName, receiver: PartyName, module: str) -> tuple[Party, Party]:
    """The sender and receiver parties of `explain`: one CPO, one eMSP-side party."""
    senders, receivers = _known(app, sender), _known(app, receiver)
    pairs = [(s, r) for s in senders for r in receivers if (s.role == "CPO") != (r.role == "CPO")]
    if not pairs:
        roles = (f"{sender} is {'/'.join(sorted(p.role for p in senders))}, "
                 f"{receiver} is {'/'.join(sorted(p.role for p in receivers))}")
        raise OperatorError(f"no CPO / eMSP-side pair ({roles}); routing rules apply between a CPO "
                            "and an eMSP-side party")
    if len(pairs) > 1:
        owner = modules.module(module).owner  # the direction the module's data flows in
        natural = [(s, r) for s, r in pairs
                   if (owner == modules.CPO and s.role == "CPO") or (owner not in (None, modules.CPO)
                                                                     and r.role == "CPO")]
        pairs = natural or pairs
    if len(pairs) > 1:
        options = ", ".join(f"{s.key} -> {r.key}" for s, r in pairs)
        raise OperatorError(f"ambiguous ({options}); write the parties as CC/PARTY_ID/ROLE")
    return pairs[0]


def explain(app: Hub, policy_explain: Callable[[str, str, str], tuple[Verdict, Verdict]], sender: PartyName,
            receiver: PartyName, module: str) -> dict:
    """Would a ``module`` message from ``sender`` reach ``receiver`` now, and what decides.

    ``policy_explain(cpo_key, emsp_key, module)``: the recipient policy's verdict and its rules'
    part (:meth:`hub.domain.recipients.Policy.explain` and ``explain_rules`` over the views'
    snapshot), so the operator reads the same reason a partner's refusal carries. ``delivered``
    takes the receiver's state and endpoints into account; ``rules`` is what the routing rules
    alone say (a rule can allow a pair whose receiver is not registered yet).
    """
    source, target = explain_pair(app, sender, receiver, module)
    cpo, emsp = (source, target) if source.role == "CPO" else (target, source)
    verdict, rules = policy_explain(cpo.key, emsp.key, module)
    rule = dict(verdict.rule or rules.rule) if (verdict.rule or rules.rule) else None
    if rule and hasattr(rule.get("updated_at"), "isoformat"):
        rule["updated_at"] = rule["updated_at"].isoformat()
    return {
        "sender": source.key, "receiver": target.key, "module": module, "cpo": cpo.key, "emsp": emsp.key,
        "delivered": verdict.allowed, "decided_by": verdict.decided_by, "reason": verdict.reason,
        "rule": rule, "sender_state": source.state, "receiver_state": target.state,
        "rules": {"allowed": rules.allowed, "decided_by": rules.decided_by, "reason": rules.reason},
    }
