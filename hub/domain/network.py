"""The network as the recipient policy sees it: one snapshot of parties, their platforms'
endpoints and the routing rules, and the verdicts the policy gives (pure data, no I/O).

:mod:`hub.domain.recipients` decides over these; ``projections/recipients.py`` loads a
:class:`Snapshot` in one statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hub.domain.parties import party_key
from hub.domain.ruleset import RuleSet


@dataclass(frozen=True)
class Party:
    country_code: str
    party_id: str
    role: str
    status: str
    platform_id: object = None

    @property
    def key(self) -> str:
        return party_key(self.country_code, self.party_id, self.role)

    @property
    def ids(self) -> tuple[str, str]:
        return self.country_code, self.party_id


@dataclass(frozen=True)
class Endpoint:
    identifier: str
    role: str
    url: str = ""


@dataclass(frozen=True)
class Platform:
    """A partner platform: its state and the endpoints it registered.

    ``token``: the (encrypted) token it issued the hub, carried for the real-time
    caller in the same read; the policy never looks at it.
    """

    platform_id: object
    state: str = "REGISTERED"
    endpoints: tuple[Endpoint, ...] = ()
    token: str | None = field(default=None, repr=False)

    def endpoint(self, identifier: str, role: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.identifier == identifier and e.role == role), None)


@dataclass(frozen=True)
class Snapshot:
    """What the policy decides from, read at one moment."""

    parties: tuple[Party, ...] = ()
    platforms: Mapping[object, Platform] = field(default_factory=dict)
    rules: RuleSet = field(default_factory=RuleSet)


@dataclass(frozen=True)
class Verdict:
    """One decision. ``status``: the OCPI status code a refused caller gets (None when
    nobody is answered, e.g. a forward skipped). ``decided_by``: ``rule``, ``default``,
    ``suspension``, ``status``, ``endpoint``, ``platform``, ``audience``, ``publish``,
    ``role``, ``address``, ``unknown``, ``choice``, ``hidden`` (the last change of a Location
    a party no longer sees, :meth:`Policy.forward`). ``party``: the recipient it concerns."""

    allowed: bool
    reason: str
    status: int | None = None
    decided_by: str = "default"
    party: Party | None = None
    rule: dict | None = None
    endpoint: str | None = None
    owner: tuple[str, str] | None = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class PullScope:
    """What a pull may show: objects of ``owners`` (``(cc, pid)``); of the eMSP ``emsp``
    only (Sessions, CDRs); pushed directed to ``viewer`` or broadcast (None: any)."""

    owners: list[tuple[str, str]]
    emsp: tuple[str, str] | None = None
    viewer: str | None = None
