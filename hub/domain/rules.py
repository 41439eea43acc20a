"""Routing rules: operators restrict who may exchange what through the hub.

The hub is open by default. A :class:`RoutingRule` allows or denies traffic
between one CPO party and one eMSP-side party (EMSP, NSP, SCSP, OTHER…), for
one OCPI module or for all of them (``module`` ``"*"``). A rule is keyed by
that triple, so setting a rule again changes the same aggregate and its whole
history stays in the log. Every event names the rule's triple, so an auditor
reading a single event knows which pair and module it concerns.

Evaluation lives in :mod:`hub.domain.ruleset` (pure functions over the rules view).
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from hub.domain.modules import RULED

RULE_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/ocpi/routing-rule")

ALLOW = "allow"
DENY = "deny"
EFFECTS = (ALLOW, DENY)

ANY_MODULE = "*"
# The modules rules apply to (functional modules and HubClientInfo visibility): the
# ``ruled`` entries of hub.domain.modules.
MODULES = RULED


def check_module(module: str) -> str:
    """``module`` normalised (lower case), or ValueError naming the allowed values."""
    value = (module or "").strip().lower()
    if value != ANY_MODULE and value not in MODULES:
        raise ValueError(f"module {module!r}: must be one of {', '.join(MODULES)} or *")
    return value


def check_effect(effect: str) -> str:
    value = (effect or "").strip().lower()
    if value not in EFFECTS:
        raise ValueError(f"effect {effect!r}: must be allow or deny")
    return value


def rule_key(cpo: str, emsp: str, module: str) -> str:
    """The canonical text key of a rule: ``IN/ABC/CPO|IN/EMP/EMSP|tokens``."""
    return f"{cpo.upper()}|{emsp.upper()}|{module.lower()}"


class RoutingRule(Aggregate):
    """Allow or deny traffic between a CPO party and an eMSP-side party.

    ``cpo`` and ``emsp`` are party keys (``IN/ABC/CPO``, ``IN/EMP/EMSP``);
    ``module`` is one of :data:`MODULES` or ``"*"`` (every module).
    """

    @staticmethod
    def create_id(cpo: str, emsp: str, module: str, **_: object) -> UUID:
        return uuid5(RULE_NAMESPACE, rule_key(cpo, emsp, module))

    @event("Set")
    def __init__(self, cpo: str, emsp: str, module: str, effect: str, reason: str, set_by: str) -> None:
        self.cpo = cpo.upper()
        self.emsp = emsp.upper()
        self.module = check_module(module)
        self.effect = check_effect(effect)
        self.reason = reason
        self.set_by = set_by
        self.removed = False

    def change(self, effect: str, reason: str, set_by: str) -> None:
        """The operator set the rule again (another effect or reason, or after removal)."""
        self._changed(self.cpo, self.emsp, self.module, check_effect(effect), reason, set_by)

    def remove(self, set_by: str) -> None:
        """The operator removed the rule; the pair falls back to wider rules or the default."""
        self._removed(self.cpo, self.emsp, self.module, set_by)

    @event("Changed")
    def _changed(self, cpo: str, emsp: str, module: str, effect: str, reason: str, set_by: str) -> None:
        self.effect = effect
        self.reason = reason
        self.set_by = set_by
        self.removed = False

    @event("Removed")
    def _removed(self, cpo: str, emsp: str, module: str, set_by: str) -> None:
        self.set_by = set_by
        self.removed = True

    @property
    def key(self) -> str:
        return rule_key(self.cpo, self.emsp, self.module)

    def differs(self, effect: str, reason: str) -> bool:
        """Whether setting ``effect``/``reason`` would change anything."""
        return self.removed or (self.effect, self.reason) != (effect, reason)
