"""The sandbox's partners and what they do over time.

:class:`Sandbox` holds the partners; :meth:`Sandbox.tick` is one step of their
activity: each CPO changes one EVSE's status, and every few ticks a driver of
one of the eMSPs charges at a CPO (authorization through the hub, a Session,
then the completed Session and its CDR).
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hub.sandbox import client, data
from hub.sandbox.partner import Partner

log = logging.getLogger("hub.sandbox")


@dataclass(frozen=True)
class PartySpec:
    role: str
    country_code: str
    party_id: str
    name: str


#: The sandbox's partners (fictional operators and apps; Indian cities and data).
DEFAULT_PARTIES: tuple[PartySpec, ...] = (
    PartySpec("CPO", "IN", "VYC", "Volt Yatra Charging"),
    PartySpec("CPO", "IN", "GRP", "GridPath Energy"),
    PartySpec("EMSP", "IN", "CHL", "Chalo EV"),
    PartySpec("EMSP", "IN", "MRG", "Marg Mobility"),
)
CHARGE_EVERY = 3  # ticks


def finish_session(partner: Partner, session: dict) -> None:
    """Complete an ACTIVE session: push it COMPLETED, then its CDR."""
    now = datetime.now(UTC)
    start = datetime.strptime(session["start_date_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    minutes = max(1, int((now - start).total_seconds() // 60))
    location = next(loc for loc in partner.held["locations"] if loc["id"] == session["location_id"])
    kwh = round(min(minutes, 90) * location["evses"][0]["connectors"][0]["max_electric_power"] / 60000, 3) or 0.5
    token = {**session["cdr_token"]}
    session.update({"status": "COMPLETED", "kwh": kwh, "end_date_time": data.ocpi_time(now),
                    "last_updated": data.ocpi_time(now)})
    client.push(partner, "sessions", session)
    record = data.cdr((partner.country_code, partner.party_id), location, token, f"{session['id']}-CDR",
                      now - timedelta(minutes=minutes), minutes, kwh)
    record["session_id"] = session["id"]
    with partner.lock:
        partner.held["cdrs"].append(record)
    client.push(partner, "cdrs", record)


class Sandbox:
    def __init__(self, specs=DEFAULT_PARTIES, *, ports: dict[str, int] | None = None, locations: int = 6,
                 seed: int = 2026) -> None:
        """``ports``: a fixed port per party key (a restarted sandbox keeps the URLs the hub stored)."""
        self.partners: list[Partner] = []
        for spec in specs:
            port = (ports or {}).get(f"{spec.country_code}/{spec.party_id}/{spec.role}", 0)
            self.partners.append(Partner(spec.role, spec.country_code, spec.party_id, spec.name, port=port,
                                         locations=locations))
        self.rng = random.Random(seed)
        self.ticks = 0
        self.charging: list[tuple[Partner, dict]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sandbox:
        for partner in self.partners:
            partner.start()
        return self

    def find(self, name: str) -> Partner:
        """The partner named ``CC/PID`` or ``CC/PID/ROLE`` (case-insensitive)."""
        wanted = name.upper().strip("/")
        for partner in self.partners:
            if wanted in (partner.key, f"{partner.country_code}/{partner.party_id}"):
                return partner
        raise KeyError(f"no sandbox partner {name}: the partners are "
                       + ", ".join(p.key for p in self.partners))

    def of_role(self, role: str) -> list[Partner]:
        return [p for p in self.partners if p.role == role]

    def publish(self) -> None:
        """Every registered partner pushes what it owns (eMSPs first: CPOs then know the tokens)."""
        for partner in sorted(self.partners, key=lambda p: p.role != "EMSP"):
            if partner.token_c:
                try:
                    client.push_all(partner)
                except (client.HubError, OSError) as exc:
                    log.warning("sandbox %s: initial push failed: %s", partner.key, exc)

    # Activity ---------------------------------------------------------------
    def tick(self) -> None:
        self.ticks += 1
        for cpo in self.of_role("CPO"):
            if cpo.token_c:
                self._guarded(cpo, "EVSE status change", self.change_status, cpo)
        if self.charging:
            cpo, session = self.charging.pop(0)
            self._guarded(cpo, "session end", finish_session, cpo, session)
        if self.ticks % CHARGE_EVERY == 0:
            cpos = [p for p in self.of_role("CPO") if p.token_c]
            emsps = [p for p in self.of_role("EMSP") if p.token_c]
            if cpos and emsps:
                cpo, emsp = self.rng.choice(cpos), self.rng.choice(emsps)
                self._guarded(cpo, "charge", self.charge, cpo, emsp)

    def _guarded(self, partner: Partner, what: str, func, *args) -> None:
        try:
            func(*args)
        except (client.HubError, OSError, KeyError, StopIteration) as exc:
            log.warning("sandbox %s: %s failed: %s", partner.key, what, exc)

    def change_status(self, cpo: Partner) -> dict:
        """One EVSE of ``cpo`` changes status; PATCHed to the hub."""
        location = self.rng.choice(cpo.held["locations"])
        evse = self.rng.choice(location["evses"])
        status = self.rng.choice([s for s in ("AVAILABLE", "CHARGING", "OUTOFORDER", "AVAILABLE")
                                  if s != evse["status"]])
        stamp = data.ocpi_time(datetime.now(UTC))
        evse.update({"status": status, "last_updated": stamp})
        location["last_updated"] = stamp
        client.push(cpo, "locations", {"status": status, "last_updated": stamp}, "PATCH",
                    location["id"], evse["uid"])
        return evse

    def charge(self, cpo: Partner, emsp: Partner) -> dict | None:
        """A driver of ``emsp`` taps a card at ``cpo``: authorized through the hub, then a Session."""
        token = self.rng.choice(emsp.held["tokens"])
        location = self.rng.choice(cpo.held["locations"])
        answer = client.authorize(cpo, token, location["id"]).json()
        allowed = (answer.get("data") or {}).get("allowed")
        if allowed != "ALLOWED":
            log.info("sandbox %s: %s not allowed (%s %s)", cpo.key, token["uid"], answer.get("status_code"),
                     allowed or answer.get("status_message"))
            return None
        session = data.session((cpo.country_code, cpo.party_id), location, token,
                               f"{cpo.party_id}-S{self.ticks:06d}{self.rng.randrange(1000):03d}",
                               datetime.now(UTC) - timedelta(minutes=20), 4.2)
        session["authorization_reference"] = answer["data"].get("authorization_reference")
        with cpo.lock:
            cpo.held["sessions"].append(session)
        client.push(cpo, "sessions", session)
        self.charging.append((cpo, session))
        return session

    def run(self, interval: float) -> None:
        """Tick every ``interval`` seconds in a thread until :meth:`stop`."""
        def loop() -> None:
            while not self._stop.wait(interval):
                self.tick()

        self._thread = threading.Thread(target=loop, name="sandbox-activity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for partner in self.partners:
            partner.stop()
