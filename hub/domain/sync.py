"""Pulling what a partner's Sender interfaces hold (issue 14 item 3): the rules, no I/O.

- which modules a party's role can be pulled for: the stored modules it owns
  (a CPO's Locations, Tariffs, Sessions and CDRs; an eMSP's Tokens), from the
  module table;
- :class:`PartySync`, one aggregate per party and module, whose events record
  every sync run (when it started, from which ``date_from``, how many pages and
  objects, or why it failed): the next incremental pull starts from the start of
  the last successful one;
- the per-party schedule (``HUB_SYNC_SCHEDULE``) and its parser;
- the ``Link`` header parser for the pages a partner hands out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from hub.domain.modules import MODULES

SYNC_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/ocpi/party-sync")
ROLES = ("CPO", "EMSP", "NAP", "NSP", "OTHER", "SCSP")


def pullable(role: str) -> tuple[str, ...]:
    """The modules the hub can pull from a party of ``role``: the stored ones it owns."""
    return tuple(m.identifier for m in MODULES.values() if m.stored and m.owner == (role or "").upper())


class PartySync(Aggregate):
    """The sync runs of one party (``CC/PID/ROLE``) and module."""

    @staticmethod
    def create_id(party: str, module: str, **_: object) -> UUID:
        return uuid5(SYNC_NAMESPACE, f"{party.upper()}/{module.lower()}")

    @event("Created")
    def __init__(self, party: str, module: str) -> None:
        self.party = party.upper()
        self.module = module.lower()
        self.last_success: str | None = None  # started_at of the last successful run
        self.last_run: dict | None = None

    @event("Completed")
    def completed(self, started_at: str, date_from: str | None, full: bool, pages: int, received: int,
                  stored: int, unchanged: int, stale: int, refused: int, correlation_id: str) -> None:
        """A run that read every page: its start is where the next incremental pull begins."""
        self.last_success = started_at
        self.last_run = {"state": "completed", "started_at": started_at, "pages": pages, "received": received}

    @event("Failed")
    def failed(self, started_at: str, date_from: str | None, full: bool, pages: int, received: int,
               error: str, correlation_id: str) -> None:
        """A run that stopped: what it stored stays stored; the next run starts where the last
        successful one did (pulling again what this one got is harmless: unchanged objects are
        not stored twice)."""
        self.last_run = {"state": "failed", "started_at": started_at, "pages": pages, "error": error}


# The schedule ---------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduleEntry:
    """``party`` (``CC/PID`` or ``CC/PID/ROLE``) pulled every ``seconds``; ``modules`` empty: every
    module its role can be pulled for."""

    party: str
    modules: tuple[str, ...]
    seconds: float

    def __str__(self) -> str:
        mods = ":" + "+".join(self.modules) if self.modules else ""
        return f"{self.party}{mods}={self.seconds:g}s"


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENTRY = re.compile(r"(?P<party>[A-Za-z]{2}/[A-Za-z0-9]{3}(?:/[A-Za-z]+)?)"
                    r"(?::(?P<modules>[a-z_]+(?:\+[a-z_]+)*))?=(?P<every>\d+(?:\.\d+)?)(?P<unit>[smhd]?)")
MIN_SYNC_SECONDS = 1.0


def parse_schedule(text: str | None) -> tuple[ScheduleEntry, ...]:
    """``IN/ABC=15m, IN/XYZ/EMSP:tokens=1h, IN/DEF:locations+tariffs=300``; ValueError naming the
    entry at fault."""
    entries: list[ScheduleEntry] = []
    seen: set[tuple[str, str]] = set()
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        found = _ENTRY.fullmatch(item)
        if found is None:
            raise ValueError(f"{item!r}: write CC/PID[/ROLE][:module[+module]]=INTERVAL, e.g. IN/ABC=15m"
                             " or IN/XYZ/EMSP:tokens=3600")
        party = found["party"].upper()
        role = party.split("/")[2] if party.count("/") == 2 else None
        if role is not None and role not in ROLES:
            raise ValueError(f"{item!r}: role {role} must be one of {', '.join(ROLES)}")
        modules = tuple(found["modules"].split("+")) if found["modules"] else ()
        for mod in modules:
            if mod not in MODULES or not MODULES[mod].stored:
                raise ValueError(f"{item!r}: module {mod} cannot be pulled; pullable: "
                                 + ", ".join(m for m in MODULES if MODULES[m].stored))
            if (party, mod) in seen:
                raise ValueError(f"{item!r}: {party} {mod} is scheduled twice")
            seen.add((party, mod))
        seconds = float(found["every"]) * _UNITS[found["unit"]]
        if seconds < MIN_SYNC_SECONDS:
            raise ValueError(f"{item!r}: the interval must be at least {MIN_SYNC_SECONDS:g} s")
        entries.append(ScheduleEntry(party, modules, seconds))
    return tuple(entries)


# Link ---------------------------------------------------------------------------
_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header (RFC 8288), if any."""
    for url, params in _LINK.findall(header or ""):
        rels = re.findall(r'rel\s*=\s*"?([^";]+)"?', params, flags=re.IGNORECASE)
        if any("next" in rel.lower().split() for rel in rels):
            return url.strip() or None
    return None
