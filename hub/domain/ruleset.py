"""Routing rules, evaluated in this one place (pure functions, no I/O).

Only the recipient policy (:mod:`hub.domain.recipients`) asks :func:`decide`
(or a :class:`RuleSet`); every path that moves or shows data between parties
asks the policy (tests/unit/test_recipients.py checks that no other module
calls ``decide``). The rules themselves come from the ``routing-rules``
projection (``projections.rules``; ``projections.recipients`` reads them with
the parties for the policy).

The pair is always (CPO party, eMSP-side party), whatever the direction of
the message: for Locations, Tariffs, Sessions and CDRs the CPO sends, for
Tokens and Commands the eMSP sends, for a GET-all the eMSP reads CPO data —
callers pass the CPO key first either way. The decision:

1. a party with status ``SUSPENDED`` on either side: not allowed;
2. a rule for (pair, module): its effect;
3. a rule for (pair, ``*``): its effect;
4. otherwise allowed (``default: open``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.domain.parties import SUSPENDED
from hub.domain.rules import ALLOW, ANY_MODULE, MODULES

DEFAULT_OPEN = "default: open"
SENDER_SUSPENDED = "sender is suspended"
RECEIVER_SUSPENDED = "receiver is suspended"


@dataclass(frozen=True)
class Decision:
    """Whether a message may pass, and what decided it.

    ``rule`` is the deciding rule as a row of ``view_routing_rules`` (``cpo``,
    ``emsp``, ``module``, ``effect``, ``reason``, ``set_by``, ``updated_at``),
    or None when the default or a suspension decided.
    """

    allowed: bool
    reason: str
    rule: dict | None = None


def _module(module: str) -> str:
    value = (module or "").lower()
    if value not in MODULES:
        raise ValueError(f"module {module!r}: rules apply to {', '.join(MODULES)}")
    return value


def _describe(rule: dict) -> str:
    scope = "all modules" if rule["module"] == ANY_MODULE else rule["module"]
    text = f"{rule['effect']} by rule {rule['cpo']} / {rule['emsp']} ({scope})"
    return f"{text}: {rule['reason']}" if rule.get("reason") else text


def decide(
    cpo_key: str,
    emsp_key: str,
    module: str,
    rules: Iterable[dict] | Mapping[tuple[str, str, str], dict],
    *,
    receiver_status: str | None = None,
    sender_status: str | None = None,
) -> Decision:
    """May ``module`` traffic pass between ``cpo_key`` and ``emsp_key``?

    ``rules``: rule rows (dicts with ``cpo``, ``emsp``, ``module``, ``effect``…)
    or a mapping ``(cpo, emsp, module) -> row`` as :class:`RuleSet` keeps them.
    ``receiver_status``/``sender_status``: the parties' ClientInfo statuses if
    known; either ``SUSPENDED`` refuses the message. Raises ValueError for a
    module rules do not apply to.
    """
    module = _module(module)
    if sender_status == SUSPENDED:
        return Decision(False, SENDER_SUSPENDED)
    if receiver_status == SUSPENDED:
        return Decision(False, RECEIVER_SUSPENDED)
    index = rules if isinstance(rules, Mapping) else _index(rules)
    cpo, emsp = cpo_key.upper(), emsp_key.upper()
    for scope in (module, ANY_MODULE):
        rule = index.get((cpo, emsp, scope))
        if rule is not None:
            return Decision(rule["effect"] == ALLOW, _describe(rule), dict(rule))
    return Decision(True, DEFAULT_OPEN)


def _index(rules: Iterable[dict]) -> dict[tuple[str, str, str], dict]:
    return {(r["cpo"].upper(), r["emsp"].upper(), r["module"].lower()): r for r in rules}


class RuleSet:
    """The routing rules as loaded from the view, ready to decide many messages."""

    def __init__(self, rules: Iterable[dict] = ()) -> None:
        self._index = _index(rules)

    @property
    def rules(self) -> list[dict]:
        """Every rule, ordered by CPO, eMSP, module."""
        return [self._index[key] for key in sorted(self._index)]

    def __len__(self) -> int:
        return len(self._index)

    def decide(
        self, cpo_key: str, emsp_key: str, module: str, *,
        receiver_status: str | None = None, sender_status: str | None = None,
    ) -> Decision:
        """:func:`decide` with these rules."""
        return decide(cpo_key, emsp_key, module, self._index,
                      receiver_status=receiver_status, sender_status=sender_status)


PUBLISH_MATCH_FIELDS = ("uid", "type", "visual_number", "issuer", "group_id")


def publish_visible(location: dict, tokens: Iterable[dict]) -> bool:
    """May an eMSP holding ``tokens`` see ``location``? (OCPI Location ``publish``)

    ``publish: false`` Locations are only for the owners of tokens matching an
    entry of ``publish_allowed_to`` (every field set in the entry must match).
    """
    if location.get("publish") is not False:
        return True
    entries = [e for e in location.get("publish_allowed_to") or [] if isinstance(e, dict)]
    tokens = list(tokens)
    for entry in entries:
        wanted = {f: entry[f] for f in PUBLISH_MATCH_FIELDS if entry.get(f) is not None}
        if wanted and any(all(str(t.get(f, "")).upper() == str(v).upper() for f, v in wanted.items())
                          for t in tokens):
            return True
    return False
