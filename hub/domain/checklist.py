"""The endpoints a partner of a given role serves for the hub, derived from the module table.

The role guides (docs/cpo-guide.md, docs/emsp-guide.md) open with this list as a checklist, and
``tests/unit/test_guides.py`` keeps them equal: a change to :mod:`hub.domain.modules` that makes
the hub call another interface fails that test until the guide says so.

Why the hub calls an endpoint (``purposes``):

- ``registration``: the versions and credentials endpoints, for the handshake and the still-alive
  check;
- ``pushed``: the hub forwards the module's changes to the role's RECEIVER (HubClientInfo too);
  for ChargingProfiles, the CPO's unsolicited ActiveChargingProfile goes to the requester's SENDER
  (``scheduler/chargingprofiles.py``);
- ``realtime``: the hub calls it while a partner waits (authorization, commands, charging
  profiles, charging preferences);
- ``pulled``: the hub pulls the role's own objects from its SENDER when the partner does not push
  (``hub parties sync``, :func:`hub.domain.sync.pullable`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.domain.modules import MODULES, RECEIVER, SENDER
from hub.domain.sync import pullable

REGISTRATION = "registration"
PUSHED = "pushed"
REALTIME = "realtime"
PULLED = "pulled"

#: Real-time modules whose receiver also sends unsolicited updates to the requester's SENDER.
UNSOLICITED_TO_REQUESTER = {"chargingprofiles": SENDER}


@dataclass(frozen=True)
class PartnerEndpoint:
    """One endpoint a partner lists in its 2.2.1 version details. ``interface`` is None for
    versions (no interface role) and credentials (one interface, either role may be listed)."""

    module: str
    interface: str | None
    purposes: tuple[str, ...]

    @property
    def required(self) -> bool:
        """Required of every partner: without it, registration fails."""
        return REGISTRATION in self.purposes


def partner_endpoints(role: str) -> tuple[PartnerEndpoint, ...]:
    """The endpoints the hub may call on a partner of ``role``, in the module table's order."""
    role = (role or "").upper()
    found: dict[tuple[str, str | None], list[str]] = {("versions", None): [REGISTRATION],
                                                      ("credentials", None): [REGISTRATION]}
    owned = set(pullable(role))
    for mod in MODULES.values():
        wanted: list[tuple[str, str]] = []
        if role in mod.receivers and (mod.stored or mod.identifier == "hubclientinfo"):
            wanted.append((RECEIVER, PUSHED))
        if mod.realtime and mod.realtime[0] == role:
            wanted.append((mod.realtime[1], REALTIME))
        if mod.identifier in UNSOLICITED_TO_REQUESTER and (role == mod.owner or role in mod.requesters):
            wanted.append((UNSOLICITED_TO_REQUESTER[mod.identifier], PUSHED))
        if mod.identifier in owned:
            wanted.append((SENDER, PULLED))
        for interface, purpose in wanted:
            found.setdefault((mod.identifier, interface), []).append(purpose)
    return tuple(PartnerEndpoint(module, interface, tuple(purposes))
                 for (module, interface), purposes in found.items())
