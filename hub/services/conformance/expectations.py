"""Which interfaces a party of a role publishes, judged from the role guides' checklist
(:func:`hub.domain.checklist.partner_endpoints`, itself derived from the module table).

- ``required``: what registration needs (``credentials``) and the Sender of every module the role
  owns and the hub stores (a CPO's Locations, Tariffs, Sessions, CDRs; an eMSP's Tokens): the hub
  pulls them from there (``hub parties sync``, a resync after an outage); missing one fails;
- ``expected``: every other endpoint the hub calls (a Receiver it forwards to, an interface it calls
  in real time); missing one is a warning: the hub cannot deliver or relay that to the party.

An interface published that the checklist of none of the platform's roles lists is a warning, except
the Sender of a real-time module the role requests (OCPI lets an eMSP publish its Commands SENDER,
though results come to each request's ``response_url``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.domain.checklist import PULLED, PUSHED, REALTIME, REGISTRATION, partner_endpoints
from hub.domain.modules import MODULES, SENDER

REQUIRED, EXPECTED = "required", "expected"

WHY = {REGISTRATION: "registration and the still-alive check use it",
       PULLED: "the hub pulls it there (hub parties sync, a resync after an outage)",
       PUSHED: "the hub delivers it there",
       REALTIME: "the hub relays real-time requests there"}


@dataclass(frozen=True)
class Expectation:
    module: str
    interface: str | None  # None: either interface role (credentials)
    need: str
    why: str

    def met_by(self, published: set[tuple[str, str]]) -> bool:
        return any(m == self.module and (self.interface is None or i == self.interface) for m, i in published)


def expectations(role: str) -> list[Expectation]:
    """What a party of ``role`` publishes (the versions endpoint aside: the probe starts there)."""
    found = []
    for endpoint in partner_endpoints(role):
        if endpoint.module == "versions":
            continue
        need = REQUIRED if endpoint.required or PULLED in endpoint.purposes else EXPECTED
        found.append(Expectation(endpoint.module, endpoint.interface, need,
                                 "; ".join(WHY[p] for p in endpoint.purposes)))
    return found


def sensible(roles: list[str]) -> set[tuple[str, str]]:
    """Every (module, interface) one of ``roles`` (a platform's) may publish; ``credentials`` with
    either interface."""
    pairs = {("credentials", "SENDER"), ("credentials", "RECEIVER")}
    for role in roles:
        role = (role or "").upper()
        pairs |= {(e.module, e.interface) for e in partner_endpoints(role) if e.interface}
        pairs |= {(m.identifier, SENDER) for m in MODULES.values()
                  if m.realtime and (role == m.owner or role in m.requesters)}
    return pairs
