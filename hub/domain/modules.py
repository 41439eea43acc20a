"""The OCPI modules the hub knows, declared once.

Every question "which roles…", "does this module…" is answered from
:data:`MODULES` here: the routing classification (who may call an interface),
the recipient policy (:mod:`hub.domain.recipients`: who receives and sees
what), the delivery backlog (may it collapse to the current state), the
routing rules (which modules they apply to). Adding a module is one entry
here plus its handler (``handlers/<identifier>.py`` with ``ENDPOINTS`` and
``routes``).
"""

from __future__ import annotations

from dataclasses import dataclass

CPO = "CPO"
EMSP = "EMSP"
SCSP = "SCSP"
# Every role a partner party may have (OCPI 2.2.1 Role, the hub's own HUB excepted).
PARTNER_ROLES = frozenset({"CPO", "EMSP", "NAP", "NSP", "OTHER", "SCSP"})
# The other side of a routing rule's pair: everyone but the CPO.
EMSP_SIDE = PARTNER_ROLES - {CPO}
# Who receives Locations and Tariffs: eMSPs, navigation (NSP) and national access points
# (NAP), and OTHER. Smart charging providers (SCSP) set profiles, they get no site data.
SITE_DATA_READERS = frozenset({"EMSP", "NAP", "NSP", "OTHER"})

# Routing kinds: how the recipients of one change are found.
BROADCAST = "broadcast"  # every party of ``receivers`` (or the one addressed with OCPI-to)
CDR_TOKEN = "cdr_token"  # only the eMSP of the object's ``cdr_token``, whatever OCPI-to says
REALTIME = "realtime"  # one party, resolved per request and called while the caller waits
CONFIGURATION = "configuration"  # no routing headers: versions, credentials, hubclientinfo

SENDER = "SENDER"
RECEIVER = "RECEIVER"


@dataclass(frozen=True)
class Module:
    """One OCPI module as the hub handles it.

    ``owner``: the role that owns the data and pushes it to the hub's RECEIVER
    interface (for Commands: the eMSP that sends them). ``receivers``: the roles
    that get it from the hub: forwarded changes, pulls from the hub's SENDER
    interface, replays (for Commands: the CPO that executes them).
    ``realtime``: the (role, partner interface) the hub calls synchronously, if any.
    ``interfaces``: the interface roles the hub itself offers (its version details).
    ``ruled``: whether routing rules apply to it.
    ``requesters``: roles besides the owner that may call the hub's RECEIVER (an SCSP
    sets charging profiles as an eMSP does).
    """

    identifier: str
    routing: str
    owner: str | None = None
    receivers: frozenset[str] = frozenset()
    collapsible: bool = False
    interfaces: tuple[str, ...] = ()
    ruled: bool = False
    realtime: tuple[str, str] | None = None
    requesters: frozenset[str] = frozenset()

    @property
    def stored(self) -> bool:
        """Client-owned objects the hub stores, forwards and serves from its store."""
        return self.routing in (BROADCAST, CDR_TOKEN)

    def callers(self, interface: str) -> frozenset[str]:
        """The roles that may call the hub's ``interface`` of this module: the owner pushes
        to its RECEIVER, the receivers pull from (or answer through) its SENDER."""
        if self.routing == CONFIGURATION:
            return frozenset()
        if interface == RECEIVER:
            return (frozenset({self.owner}) | self.requesters) if self.owner else frozenset()
        if interface == SENDER:
            return self.receivers
        return frozenset()

    def counterparts(self, interface: str) -> frozenset[str]:
        """The roles a request to the hub's ``interface`` is addressed to (OCPI-to): a push
        to the RECEIVER goes to the receivers, a call of the SENDER to the owner."""
        if interface == RECEIVER:
            return self.receivers
        if interface == SENDER and self.owner:
            return frozenset({self.owner}) | self.requesters
        return frozenset()


MODULES: dict[str, Module] = {m.identifier: m for m in (
    Module("versions", CONFIGURATION),
    Module("credentials", CONFIGURATION, interfaces=(SENDER,)),
    Module("hubclientinfo", CONFIGURATION, receivers=PARTNER_ROLES, interfaces=(SENDER,), ruled=True),
    Module("locations", BROADCAST, owner=CPO, receivers=SITE_DATA_READERS, collapsible=True,
           interfaces=(SENDER, RECEIVER), ruled=True),
    Module("tariffs", BROADCAST, owner=CPO, receivers=SITE_DATA_READERS, collapsible=True,
           interfaces=(SENDER, RECEIVER), ruled=True),
    # Charging preferences: the eMSP's PUT is relayed at once to the CPO's sessions SENDER.
    Module("sessions", CDR_TOKEN, owner=CPO, receivers=frozenset({EMSP}), collapsible=True,
           interfaces=(SENDER, RECEIVER), ruled=True, realtime=(CPO, SENDER)),
    # CDRs are never merged or dropped: every one is delivered as received.
    Module("cdrs", CDR_TOKEN, owner=CPO, receivers=frozenset({EMSP}), collapsible=False,
           interfaces=(SENDER, RECEIVER), ruled=True),
    Module("tokens", BROADCAST, owner=EMSP, receivers=frozenset({CPO}), collapsible=True,
           interfaces=(SENDER, RECEIVER), ruled=True, realtime=(EMSP, SENDER)),
    Module("commands", REALTIME, owner=EMSP, receivers=frozenset({CPO}),
           interfaces=(SENDER, RECEIVER), ruled=True, realtime=(CPO, RECEIVER)),
    # Smart charging: an eMSP or SCSP asks the CPO's RECEIVER (GET, PUT, DELETE per session);
    # the CPO posts results and unsolicited ActiveChargingProfile updates to the hub's SENDER.
    Module("chargingprofiles", REALTIME, owner=EMSP, requesters=frozenset({SCSP}), receivers=frozenset({CPO}),
           interfaces=(SENDER, RECEIVER), ruled=True, realtime=(CPO, RECEIVER)),
)}


def module(identifier: str) -> Module:
    """The module ``identifier`` (lower case), or ValueError naming the known ones."""
    found = MODULES.get((identifier or "").lower())
    if found is None:
        raise ValueError(f"module {identifier!r}: must be one of {', '.join(MODULES)}")
    return found


def names(**where: object) -> tuple[str, ...]:
    """The identifiers of the modules whose attributes equal ``where``, in table order
    (``names(ruled=True)``, ``names(collapsible=True)``, ``names(stored=True)``)."""
    return tuple(m.identifier for m in MODULES.values()
                 if all(getattr(m, k) == v for k, v in where.items()))


RULED = names(ruled=True)
COLLAPSIBLE = frozenset(names(collapsible=True))
STORED = names(stored=True)
# The handler packages, in the order the version details list them (versions is served apart).
HANDLED = tuple(m.identifier for m in MODULES.values() if m.interfaces)
