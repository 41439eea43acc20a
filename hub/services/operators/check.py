"""``hub parties check``: probe a registered partner's OCPI 2.2.1 interfaces before it goes live.

The probe (:mod:`hub.services.conformance`) calls the partner as the hub does: the endpoints it
registered (and publishes now), the token it gave the hub, through the outbound client and its
guard. ``write`` also sends test objects to its Receivers, only for a party marked as a test party
(``hub parties test-mode CC/PID on``). With ``by_operator`` the run is recorded as an
``OperatorAction`` with its outcome.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub.domain.audit import Call, OperatorAction
from hub.domain.modules import MODULES
from hub.domain.parties import UNREGISTERED
from hub.infra.client import OcpiClient
from hub.ocpi.envelope import format_datetime
from hub.services.application import Hub
from hub.services.conformance.probe import Probe, Progress, Stop
from hub.services.conformance.write import write as write_test_object
from hub.services.operators import OperatorError
from hub.services.operators.names import ROLES, PartyName
from hub.services.operators.parties import one

VERDICTS = ("pass", "fail", "warn", "skip")


@dataclass
class CheckReport:
    """One run: ``ok`` when no row failed; ``rows`` each ``step, module, interface, verdict, detail, ms``."""

    party: str
    rows: list[dict] = field(default_factory=list)
    write: bool = False
    modules: list[str] = field(default_factory=list)
    started_at: str = ""
    correlation_id: str = ""

    @property
    def ok(self) -> bool:
        return not any(r["verdict"] == "fail" for r in self.rows)

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for r in self.rows if r["verdict"] == v) for v in VERDICTS}

    def as_dict(self) -> dict:
        return {"party": self.party, "ok": self.ok, "counts": self.counts(), "write": self.write,
                "modules": self.modules, "started_at": self.started_at, "correlation_id": self.correlation_id,
                "rows": self.rows}


def check(app: Hub, client: OcpiClient, name: PartyName, *, role: str | None = None, write: bool = False,
          modules=(), progress: Progress | None = None, by_operator: str | None = None) -> CheckReport:
    """Probe the party ``name`` denotes (``role`` picks one of its roles). ``modules``: only these
    modules' interfaces are probed (versions, details and roles always are). OperatorError when the
    check cannot run: no such party, not registered, ``write`` for a party not marked as a test."""
    party = one(app, _named(name, role))
    wanted = _modules(modules)
    platform = app.platform(party.platform_id)
    if party.connection == UNREGISTERED or platform.state != "REGISTERED" or not platform.partner_token:
        raise OperatorError(f"{party.key} has not registered (platform {platform.state}): the credentials"
                            " handshake comes first (give the partner its token A, or `hub parties connect`)")
    if write and not getattr(party, "testing", False):
        raise OperatorError(f"{party.key} is not a test party, and --write sends it test objects:"
                            f" `hub parties test-mode {party.key} on` first, or leave out --write")
    report = CheckReport(party.key, write=write, modules=list(wanted),
                         started_at=format_datetime(datetime.now(UTC)), correlation_id=str(uuid.uuid4()))
    probe = Probe(client, app.cipher.decrypt(platform.partner_token), party.country_code, party.party_id,
                  party.role, correlation_id=report.correlation_id, run=uuid.uuid4().hex[:8].upper(),
                  progress=progress, record=lambda made: app.save(Call(platform_id=str(platform.id),
                                                                       purpose="check", **made)))
    platform_roles = sorted({str(r.get("role")) for r in platform.roles or [] if isinstance(r, dict)})
    try:
        endpoints = probe.details(probe.versions(platform.versions_url))
        probe.endpoints(endpoints, platform.endpoints or [])
        probe.roles(endpoints, platform_roles)
        for endpoint in endpoints:
            if wanted and endpoint.get("identifier") not in wanted:
                continue
            probe.module(endpoint)
            if write and endpoint.get("role") == "RECEIVER":
                write_test_object(probe, str(endpoint.get("identifier")), str(endpoint.get("url")))
    except Stop:
        pass
    report.rows = probe.rows
    if by_operator:
        app.save(OperatorAction(
            command="parties check",
            arguments={"party": party.key, "write": write, "modules": list(wanted)},
            operator=by_operator, outcome=json.dumps({"ok": report.ok, **report.counts(),
                                                      "failed": [_short(r) for r in report.rows
                                                                 if r["verdict"] == "fail"][:20]}),
            correlation_id=report.correlation_id))
    return report


def _named(name: PartyName, role: str | None) -> PartyName:
    if not role:
        return name
    role = role.upper()
    if role not in ROLES:
        raise OperatorError(f"--role {role}: must be one of {', '.join(ROLES)}")
    if name.role and name.role != role:
        raise OperatorError(f"{name} names the role {name.role} but --role says {role}: give one")
    return PartyName(name.country_code, name.party_id, role)


def _modules(modules) -> tuple[str, ...]:
    known = [m for m in MODULES if m != "versions"]
    wanted = tuple(dict.fromkeys(str(m).lower() for m in modules or ()))
    for mod in wanted:
        if mod not in known:
            raise OperatorError(f"--module {mod}: must be one of {', '.join(known)}")
    return wanted


def _short(row: dict) -> str:
    where = " ".join(str(p) for p in (row["module"], row["interface"]) if p)
    return f"{row['step']} {where}: {row['detail']}"[:300]
