"""Realistic Indian charging data for the sandbox's simulated partners.

Everything here is pure and deterministic (one ``random.Random`` per partner,
seeded by its ids): the same sandbox produces the same Locations, Tariffs and
Tokens on every run, so a partner developer can rely on ids between runs.

Connectors as OCPI 2.2.1 names them: CCS2 = ``IEC_62196_T2_COMBO``, Type 2 =
``IEC_62196_T2``, ``CHADEMO``; Bharat DC-001 uses the GB/T DC connector
(``GBT_DC``); Bharat AC-001 uses the IEC 60309 industrial socket
(``IEC_60309_2_single_16``, 230 V 15 A, 3.3 kW), as OCPI has no Bharat type.

Tariffs are in INR. OCPI prices exclude taxes and carry the tax rate in
``vat``: the GST-inclusive price a driver sees is ``price * (1 + vat / 100)``
(GST on EV charging services is 18 %). The inclusive figure is also given in
``tariff_alt_text``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

GST_PERCENT = 18.0
TIME_ZONE = "Asia/Kolkata"


@dataclass(frozen=True)
class City:
    name: str
    state: str
    postal_code: str
    latitude: float
    longitude: float
    streets: tuple[str, ...]


CITIES: tuple[City, ...] = (
    City("Bengaluru", "Karnataka", "560001", 12.9716, 77.5946,
         ("MG Road", "Outer Ring Road, Marathahalli", "Hosur Road, Electronic City", "100 Feet Road, Indiranagar")),
    City("Pune", "Maharashtra", "411001", 18.5204, 73.8567,
         ("FC Road, Shivajinagar", "Baner Road", "Nagar Road, Viman Nagar", "Hinjewadi Phase 1")),
    City("Delhi", "Delhi", "110001", 28.6139, 77.2090,
         ("Connaught Place", "Nehru Place", "Saket District Centre", "Dwarka Sector 21")),
    City("Mumbai", "Maharashtra", "400001", 19.0760, 72.8777,
         ("Bandra Kurla Complex", "Linking Road, Bandra West", "LBS Marg, Powai", "Western Express Highway, Andheri")),
    City("Chennai", "Tamil Nadu", "600001", 13.0827, 80.2707,
         ("Anna Salai", "OMR, Sholinganallur", "GST Road, Guindy", "ECR, Neelankarai")),
    City("Hyderabad", "Telangana", "500001", 17.3850, 78.4867,
         ("HITEC City", "Banjara Hills Road No. 12", "Gachibowli", "Begumpet")),
)


@dataclass(frozen=True)
class ChargerKind:
    """One kind of charge point found in India: its connector and power."""

    key: str
    standard: str
    format: str
    power_type: str
    max_voltage: int
    max_amperage: int
    max_electric_power: int  # W
    capabilities: tuple[str, ...]


CHARGERS: tuple[ChargerKind, ...] = (
    ChargerKind("bharat-ac-001", "IEC_60309_2_single_16", "SOCKET", "AC_1_PHASE", 230, 15, 3300,
                ("RFID_READER",)),
    ChargerKind("type2-7", "IEC_62196_T2", "SOCKET", "AC_1_PHASE", 230, 32, 7400,
                ("RFID_READER", "REMOTE_START_STOP_CAPABLE")),
    ChargerKind("type2-22", "IEC_62196_T2", "SOCKET", "AC_3_PHASE", 400, 32, 22000,
                ("RFID_READER", "REMOTE_START_STOP_CAPABLE")),
    ChargerKind("bharat-dc-001", "GBT_DC", "CABLE", "DC", 500, 200, 15000,
                ("RFID_READER", "REMOTE_START_STOP_CAPABLE")),
    ChargerKind("ccs2-30", "IEC_62196_T2_COMBO", "CABLE", "DC", 500, 75, 30000,
                ("RFID_READER", "REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE")),
    ChargerKind("ccs2-60", "IEC_62196_T2_COMBO", "CABLE", "DC", 920, 150, 60000,
                ("RFID_READER", "REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE")),
    ChargerKind("chademo-50", "CHADEMO", "CABLE", "DC", 500, 125, 50000,
                ("RFID_READER", "REMOTE_START_STOP_CAPABLE")),
    ChargerKind("ccs2-120", "IEC_62196_T2_COMBO", "CABLE", "DC", 920, 200, 120000,
                ("RFID_READER", "REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE")),
)

#: GST-inclusive prices in INR a driver sees: per kWh for AC and DC, and a per-minute idle fee.
AC_PRICE_INCL_GST = 14.16
DC_PRICE_INCL_GST = 21.24
IDLE_FEE_PER_HOUR_INCL_GST = 118.0


def ocpi_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def excl_gst(inclusive: float) -> float:
    """The OCPI ``price`` (before tax) of a GST-inclusive price, to the paisa."""
    return round(inclusive / (1 + GST_PERCENT / 100), 2)


def tariff_ids(country_code: str, party_id: str) -> dict[str, str]:
    return {"AC": f"{party_id}-AC-STD", "DC": f"{party_id}-DC-FAST"}


def tariffs(country_code: str, party_id: str, now: datetime) -> list[dict]:
    """A CPO's two tariffs: AC and DC per kWh, with an idle fee after the charge."""
    stamp = ocpi_time(now)
    out = []
    for kind, incl in (("AC", AC_PRICE_INCL_GST), ("DC", DC_PRICE_INCL_GST)):
        out.append({
            "country_code": country_code, "party_id": party_id, "id": tariff_ids(country_code, party_id)[kind],
            "currency": "INR", "type": "REGULAR",
            "tariff_alt_text": [{"language": "en", "text": f"{kind}: Rs {incl:.2f}/kWh incl. 18% GST;"
                                 f" idle fee Rs {IDLE_FEE_PER_HOUR_INCL_GST:.2f}/hour incl. GST"}],
            "elements": [
                {"price_components": [{"type": "ENERGY", "price": excl_gst(incl), "vat": GST_PERCENT,
                                       "step_size": 1}]},
                {"price_components": [{"type": "PARKING_TIME", "price": excl_gst(IDLE_FEE_PER_HOUR_INCL_GST),
                                       "vat": GST_PERCENT, "step_size": 60}]},
            ],
            "last_updated": stamp,
        })
    return out


def _connector(kind: ChargerKind, number: int, tariff: str, stamp: str) -> dict:
    return {"id": str(number), "standard": kind.standard, "format": kind.format, "power_type": kind.power_type,
            "max_voltage": kind.max_voltage, "max_amperage": kind.max_amperage,
            "max_electric_power": kind.max_electric_power, "tariff_ids": [tariff], "last_updated": stamp}


def locations(country_code: str, party_id: str, operator: str, now: datetime, count: int = 6) -> list[dict]:
    """``count`` Locations of one CPO spread over the cities, 2 to 4 EVSEs each."""
    rng = random.Random(f"{country_code}/{party_id}")
    stamp = ocpi_time(now)
    ids = tariff_ids(country_code, party_id)
    out = []
    for n in range(count):
        city = CITIES[n % len(CITIES)]
        street = city.streets[(n // len(CITIES)) % len(city.streets)]
        loc_id = f"{party_id}-{city.name[:3].upper()}-{n + 1:03d}"
        lat = round(city.latitude + rng.uniform(-0.08, 0.08), 6)
        lon = round(city.longitude + rng.uniform(-0.08, 0.08), 6)
        evses = []
        for e in range(rng.randint(2, 4)):
            kind = CHARGERS[rng.randrange(len(CHARGERS))]
            uid = f"{loc_id}-{e + 1}"
            tariff = ids["DC" if kind.power_type == "DC" else "AC"]
            evses.append({
                "uid": uid, "evse_id": f"{country_code}*{party_id}*E{n + 1:03d}{e + 1}",
                "status": rng.choice(("AVAILABLE", "AVAILABLE", "AVAILABLE", "CHARGING")),
                "capabilities": list(kind.capabilities),
                "connectors": [_connector(kind, 1, tariff, stamp)],
                "physical_reference": f"P{e + 1}",
                "coordinates": {"latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}"},
                "last_updated": stamp,
            })
        out.append({
            "country_code": country_code, "party_id": party_id, "id": loc_id, "publish": True,
            "name": f"{operator} {street.split(',')[0]}", "address": f"{rng.randint(1, 250)}, {street}",
            "city": city.name, "postal_code": str(int(city.postal_code) + rng.randint(0, 99)),
            "state": city.state, "country": "IND",
            "coordinates": {"latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}"},
            "parking_type": rng.choice(("PARKING_LOT", "ON_STREET", "PARKING_GARAGE")),
            "evses": evses, "operator": {"name": operator},
            "facilities": rng.sample(["CAFE", "MALL", "RESTAURANT", "WIFI", "SUPERMARKET", "HOTEL"], 2),
            "time_zone": TIME_ZONE, "opening_times": {"twentyfourseven": True},
            "last_updated": stamp,
        })
    return out


def tokens(country_code: str, party_id: str, issuer: str, now: datetime, count: int = 5) -> list[dict]:
    """An eMSP's RFID cards and app tokens. The last one is blocked (a lost card)."""
    stamp = ocpi_time(now)
    out = []
    for n in range(count):
        app = n % 2 == 1
        out.append({
            "country_code": country_code, "party_id": party_id, "uid": f"{party_id}{'APP' if app else 'RF'}{n + 1:05d}",
            "type": "APP_USER" if app else "RFID", "contract_id": f"{country_code}-{party_id}-C{n + 1:06d}",
            "visual_number": None if app else f"{party_id} 0000 {n + 1:04d}", "issuer": issuer,
            "valid": n != count - 1, "whitelist": "ALLOWED", "language": "en",
            "last_updated": stamp,
        })
        if out[-1]["visual_number"] is None:
            del out[-1]["visual_number"]
    return out


def session(cpo: tuple[str, str], location: dict, token: dict, session_id: str, start: datetime,
            kwh: float, status: str = "ACTIVE") -> dict:
    """A Session at the first EVSE of ``location`` for ``token``."""
    evse = location["evses"][0]
    connector = evse["connectors"][0]
    return {
        "country_code": cpo[0], "party_id": cpo[1], "id": session_id, "start_date_time": ocpi_time(start),
        "kwh": kwh, "cdr_token": cdr_token(token), "auth_method": "AUTH_REQUEST", "location_id": location["id"],
        "evse_uid": evse["uid"], "connector_id": connector["id"], "currency": "INR", "status": status,
        "last_updated": ocpi_time(start + timedelta(minutes=1)),
    }


def cdr_token(token: dict) -> dict:
    return {key: token[key] for key in ("country_code", "party_id", "uid", "type", "contract_id")}


def cdr(cpo: tuple[str, str], location: dict, token: dict, cdr_id: str, start: datetime, minutes: int,
        kwh: float) -> dict:
    """The CDR of a finished charge: energy at the connector's tariff, GST included in ``incl_vat``."""
    evse = location["evses"][0]
    connector = evse["connectors"][0]
    dc = connector["power_type"] == "DC"
    incl = DC_PRICE_INCL_GST if dc else AC_PRICE_INCL_GST
    end = start + timedelta(minutes=minutes)
    total_excl = round(excl_gst(incl) * kwh, 2)
    total = {"excl_vat": total_excl, "incl_vat": round(total_excl * (1 + GST_PERCENT / 100), 2)}
    return {
        "country_code": cpo[0], "party_id": cpo[1], "id": cdr_id, "start_date_time": ocpi_time(start),
        "end_date_time": ocpi_time(end), "cdr_token": cdr_token(token), "auth_method": "AUTH_REQUEST",
        "cdr_location": {
            "id": location["id"], "name": location["name"], "address": location["address"],
            "city": location["city"], "postal_code": location["postal_code"], "state": location["state"],
            "country": location["country"], "coordinates": location["coordinates"], "evse_uid": evse["uid"],
            "evse_id": evse["evse_id"], "connector_id": connector["id"], "connector_standard": connector["standard"],
            "connector_format": connector["format"], "connector_power_type": connector["power_type"]},
        "currency": "INR",
        "charging_periods": [{"start_date_time": ocpi_time(start),
                              "dimensions": [{"type": "ENERGY", "volume": kwh}],
                              "tariff_id": connector["tariff_ids"][0]}],
        "total_cost": total, "total_energy": kwh, "total_energy_cost": total, "total_time": round(minutes / 60, 4),
        "last_updated": ocpi_time(end),
    }


def invalid(module: str, obj: dict) -> dict:
    """``obj`` made to violate the 2.2.1 model in one named way (the ``invalid`` fault)."""
    broken = dict(obj)
    if module == "locations":
        broken.pop("coordinates", None)  # required
    elif module == "tokens":
        broken["whitelist"] = "SOMETIMES"  # not a WhitelistType
    elif module == "tariffs":
        broken["currency"] = "RUPEES"  # over 3 characters
    else:
        broken.pop("last_updated", None)
    return broken
