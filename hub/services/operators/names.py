"""How an operator names a party: ``CC/PID`` or ``CC/PID/ROLE`` (``IN/ABC``, ``IN/ABC/CPO``)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.domain.parties import party_key

#: Every role a party may play (OCPI 2.2.1 Role, without the hub's own).
ROLES = ("CPO", "EMSP", "NSP", "NAP", "SCSP", "OTHER")


@dataclass(frozen=True)
class PartyName:
    """A party as named on the command line; ``role`` None: any role of these ids."""

    country_code: str
    party_id: str
    role: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.country_code, self.party_id, self.role) if p)

    @property
    def ids(self) -> str:
        """``CC/PID``, without the role."""
        return f"{self.country_code}/{self.party_id}"

    def key(self, role: str | None = None) -> str:
        return party_key(self.country_code, self.party_id, role or self.role or "")


def parse_party_name(text: str) -> PartyName:
    """``IN/ABC`` or ``IN/ABC/CPO`` (any case) as a :class:`PartyName`; ValueError otherwise."""
    parts = [p.strip().upper() for p in (text or "").split("/")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"{text!r}: write a party as COUNTRY_CODE/PARTY_ID (IN/ABC) or IN/ABC/ROLE")
    if len(parts) == 3 and parts[2] not in ROLES:
        raise ValueError(f"{text!r}: the role must be one of {', '.join(ROLES)}")
    return PartyName(parts[0], parts[1], parts[2] if len(parts) == 3 else None)
