"""Which interfaces a party of a role publishes in its version details, from the module table.

- ``required``: the Sender interface of every module the role owns and the hub stores (a CPO's
  Locations, Tariffs, Sessions, CDRs; an eMSP's Tokens): the hub pulls them from there
  (``hub parties sync``, a resync after an outage), and ``credentials`` SENDER (every party);
- ``expected``: the Receiver interface of every stored module the role receives (an eMSP's
  Locations...; a CPO's Tokens), and the interface the hub calls in real time (a CPO's Commands
  RECEIVER); missing one is a warning (the hub then cannot deliver or relay it);
- ``optional``: what the role may offer but need not (``hubclientinfo`` RECEIVER; the result
  receivers of an eMSP's Commands and Charging Profiles).

Anything else a platform publishes belongs to none of its roles and is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.domain.modules import MODULES, REALTIME, RECEIVER, SENDER

REQUIRED, EXPECTED, OPTIONAL = "required", "expected", "optional"


@dataclass(frozen=True)
class Expectation:
    module: str
    interface: str
    need: str
    why: str


def expectations(role: str) -> list[Expectation]:
    """What a party of ``role`` publishes (one entry per module and interface)."""
    role = (role or "").upper()
    found: dict[tuple[str, str], Expectation] = {}

    def want(module: str, interface: str, need: str, why: str) -> None:
        order = (REQUIRED, EXPECTED, OPTIONAL)
        old = found.get((module, interface))
        if old is None or order.index(need) < order.index(old.need):
            found[(module, interface)] = Expectation(module, interface, need, why)

    want("credentials", SENDER, REQUIRED, "every party publishes its credentials")
    for mod in MODULES.values():
        if mod.identifier == "hubclientinfo" and role in mod.receivers:
            want(mod.identifier, RECEIVER, OPTIONAL, "where the hub pushes the status of other parties")
        if mod.stored and mod.owner == role:
            want(mod.identifier, SENDER, REQUIRED, f"the hub pulls {mod.identifier} there"
                 " (hub parties sync, a resync after an outage)")
        if mod.stored and role in mod.receivers:
            want(mod.identifier, RECEIVER, EXPECTED, f"the hub delivers {mod.identifier} there")
        if mod.realtime and mod.realtime[0] == role:
            want(mod.identifier, mod.realtime[1], EXPECTED,
                 f"the hub relays real-time {mod.identifier} requests there")
        if mod.routing == REALTIME and (role == mod.owner or role in mod.requesters):
            want(mod.identifier, SENDER, OPTIONAL, f"{mod.identifier} results come back there")
    return list(found.values())


def sensible(roles: list[str]) -> set[tuple[str, str]]:
    """Every (module, interface) that one of ``roles`` (a platform's) may publish."""
    return {(e.module, e.interface) for role in roles for e in expectations(role)}
