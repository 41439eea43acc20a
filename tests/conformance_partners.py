"""Partner test servers for ``hub parties check``: one that conforms, and the defects the check
must name. Built on :class:`tests.partner.Partner` (a real HTTP server on 127.0.0.1).

A :class:`ConformancePartner` publishes the interfaces OCPI 2.2.1 gives its roles (a CPO: the
Sender of Locations, Tariffs, Sessions and CDRs, the Receiver of Tokens, Commands, Charging
Profiles and HubClientInfo; an eMSP: the Sender of Tokens, Commands and Charging Profiles,
the Receiver of Locations, Tariffs, Sessions, CDRs and HubClientInfo), serves valid objects with OCPI paging,
answers 2003 for an object it does not hold, and keeps what is PUT to its Receivers. Each defect is
an attribute a test sets after the partner registered (registration itself needs a sane partner).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests import ocpi_examples as ex
from tests.conftest import HubUnderTest
from tests.partner import Partner, Received, envelope, role

INTERFACES = {
    "CPO": [("credentials", "SENDER"), ("hubclientinfo", "RECEIVER"), ("locations", "SENDER"),
            ("tariffs", "SENDER"), ("sessions", "SENDER"), ("cdrs", "SENDER"), ("tokens", "RECEIVER"),
            ("commands", "RECEIVER"), ("chargingprofiles", "RECEIVER")],
    "EMSP": [("credentials", "SENDER"), ("hubclientinfo", "RECEIVER"), ("locations", "RECEIVER"),
             ("tariffs", "RECEIVER"), ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"), ("tokens", "SENDER"),
             ("commands", "SENDER"), ("chargingprofiles", "SENDER")],
}


def held_for(roles: list[dict]) -> dict[str, list[dict]]:
    """Valid objects for every Sender of ``roles``: 5 Locations (3 pages of 2), a Tariff, a Session,
    a CDR; 3 Tokens (2 pages)."""
    held: dict[str, list[dict]] = {}
    for r in roles:
        cc, pid = r["country_code"], r["party_id"]
        if r["role"] == "CPO":
            held["locations"] = [ex.location(country_code=cc, party_id=pid, id=f"LOC{n}",
                                             last_updated=f"2026-01-0{n + 1}T10:00:00Z") for n in range(5)]
            held["tariffs"] = [ex.tariff(country_code=cc, party_id=pid)]
            held["sessions"] = [ex.session(country_code=cc, party_id=pid)]
            held["cdrs"] = [ex.cdr(country_code=cc, party_id=pid)]
        if r["role"] == "EMSP":
            held["tokens"] = [ex.token(country_code=cc, party_id=pid, uid=f"TOK{n}") for n in range(3)]
    return held


@dataclass
class ConformancePartner(Partner):
    html_404: tuple[str, ...] = ()  # these modules answer every request with an HTML 404 page
    not_envelope: tuple[str, ...] = ()  # these modules answer JSON that is not an OCPI envelope
    refuse_writes: tuple[str, ...] = ()  # these Receivers refuse every object PUT/POSTed (2001)
    total_off: int = 0  # added to every X-Total-Count
    drop_link: bool = False  # no Link header on Sender pages
    details_version: str = "2.2.1"  # the version the 2.2.1 details say they are for
    details_data: dict | None = None  # served as the 2.2.1 details' data instead of the real ones
    unpublish: tuple[tuple[str, str], ...] = ()  # (module, interface) left out of the details
    extra: tuple[tuple[str, str], ...] = ()  # (module, interface) published beyond its roles'
    objects: dict[str, object] = field(default_factory=dict)  # what was PUT to the Receivers, by path

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.held:
            self.held = held_for(self.roles)

    def published(self) -> list[tuple[str, str]]:
        pairs = [p for r in self.roles for p in INTERFACES.get(r["role"], [])] + list(self.extra)
        return [p for p in dict.fromkeys(pairs) if p not in self.unpublish]

    def answer(self, record: Received):
        parts = record.path.strip("/").split("/")
        module = parts[2] if len(parts) > 2 and parts[:2] == ["ocpi", "2.2.1"] else None
        if record.path == "/ocpi/2.2.1":
            endpoints = [{"identifier": m, "role": i, "url": f"{self.base}/ocpi/2.2.1/{m}/{i.lower()}"}
                         for m, i in self.published()]
            if self.details_data is not None:
                return envelope(self.details_data)
            return envelope({"version": self.details_version, "endpoints": endpoints})
        if module in self.html_404:
            return 404, b"<html><body><h1>404 Not Found</h1></body></html>", {"Content-Type": "text/html"}
        if module in self.not_envelope:
            return 200, [{"id": "not an envelope"}]
        if module == "credentials" and record.method == "GET":
            return envelope(self.credentials())
        if len(parts) > 4 and parts[3] == "receiver":  # one object of a Receiver
            return self.receiver(module, record)
        if module in self.held and record.method == "GET" and parts[-1] == "sender":
            status, body, headers = self.sender_page(module, record)
            if self.total_off:
                headers["X-Total-Count"] = str(int(headers["X-Total-Count"]) + self.total_off)
            if self.drop_link:
                headers.pop("Link", None)
            return status, body, headers
        if module == "cdrs" and parts[-1] == "receiver" and record.method == "POST":
            return self.receiver(module, record)
        return super().answer(record)

    def receiver(self, module: str, record: Received):
        if record.method == "GET":
            if record.path in self.objects:
                return envelope(self.objects[record.path])
            return 404, envelope(None, 2003, f"unknown {module} object")
        if module in self.refuse_writes:
            return envelope(None, 2001, f"{module}: this partner refuses every object")
        if record.method == "DELETE":
            self.objects.pop(record.path, None)
        elif record.method == "PATCH" and isinstance(self.objects.get(record.path), dict):
            self.objects[record.path] = {**self.objects[record.path], **(record.body or {})}
        else:
            self.objects[record.path] = record.body
        return envelope()


def connect(hub: HubUnderTest, roles: list[dict], **options) -> ConformancePartner:
    """Onboard the first role, start a :class:`ConformancePartner` and run its side of the handshake."""
    first = roles[0]
    token_a = hub.onboard(first["role"], first["country_code"], first["party_id"],
                          first["business_details"]["name"])["token_a"]
    partner = ConformancePartner(roles=roles, **options).start()
    hub.register(partner, token_a)
    return partner


__all__ = ["ConformancePartner", "connect", "held_for", "role"]
