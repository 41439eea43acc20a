"""The test objects ``hub parties check --write`` sends to a partner's Receiver interfaces.

Each is a well-formed OCPI 2.2.1 object owned by the hub's own ids (``IN``/``CIH``), with an id
that says it is a test (``CIH-CHECK-...``), so a partner's staff can recognise and drop it. The
cleanup of each is what its module allows: a Tariff is deleted; a Location cannot be deleted in
OCPI, so it is sent again unpublished with its EVSE ``REMOVED``; a Token is made invalid; a
Session is declared ``INVALID`` (never billed); a CDR cannot be withdrawn at all.
"""

from __future__ import annotations

from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID

PREFIX = "CIH-CHECK"


def test_id(kind: str, run: str) -> str:
    """``CIH-CHECK-LOC-1a2b3c4d``: the id of one test object of one run (at most 36 characters)."""
    return f"{PREFIX}-{kind}-{run}"[:36]


def _owner() -> dict:
    return {"country_code": HUB_COUNTRY_CODE, "party_id": HUB_PARTY_ID}


def location(object_id: str, now: str, *, removed: bool = False) -> dict:
    """A test site with one AC EVSE; ``removed``: unpublished, its EVSE REMOVED (the cleanup)."""
    connector = {"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
                 "max_voltage": 230, "max_amperage": 32, "last_updated": now}
    evse = {"uid": f"{object_id}-1"[:36], "status": "REMOVED" if removed else "AVAILABLE",
            "connectors": [connector], "last_updated": now}
    return {**_owner(), "id": object_id, "publish": not removed,
            "name": "ChargeIndia Hub conformance check (test object, not a real site)",
            "address": "Test object of hub parties check", "city": "Bengaluru", "country": "IND",
            "coordinates": {"latitude": "12.971600", "longitude": "77.594600"},
            "evses": [evse], "time_zone": "Asia/Kolkata", "last_updated": now}


def tariff(object_id: str, now: str) -> dict:
    return {**_owner(), "id": object_id, "currency": "INR",
            "tariff_alt_text": [{"language": "en", "text": "Test tariff of a hub conformance check"}],
            "elements": [{"price_components": [{"type": "ENERGY", "price": 1, "vat": 18, "step_size": 1}]}],
            "last_updated": now}


def token(uid: str, now: str, *, valid: bool = True) -> dict:
    return {**_owner(), "uid": uid, "type": "RFID", "contract_id": uid, "issuer": "ChargeIndia Hub check",
            "valid": valid, "whitelist": "NEVER", "last_updated": now}


def _cdr_token(uid: str) -> dict:
    return {**_owner(), "uid": uid, "type": "RFID", "contract_id": uid}


def session(object_id: str, now: str) -> dict:
    return {**_owner(), "id": object_id, "start_date_time": now, "kwh": 0, "cdr_token": _cdr_token(object_id),
            "auth_method": "WHITELIST", "location_id": object_id, "evse_uid": f"{object_id}-1"[:36],
            "connector_id": "1", "currency": "INR", "status": "PENDING", "last_updated": now}


def cdr(object_id: str, now: str) -> dict:
    return {**_owner(), "id": object_id, "start_date_time": now, "end_date_time": now,
            "cdr_token": _cdr_token(object_id), "auth_method": "WHITELIST",
            "cdr_location": {"id": object_id, "address": "Test object of hub parties check", "city": "Bengaluru",
                             "country": "IND", "coordinates": {"latitude": "12.971600", "longitude": "77.594600"},
                             "evse_uid": f"{object_id}-1"[:36], "evse_id": "IN*CIH*ECHECK*1", "connector_id": "1",
                             "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET",
                             "connector_power_type": "AC_3_PHASE"},
            "currency": "INR",
            "charging_periods": [{"start_date_time": now, "dimensions": [{"type": "ENERGY", "volume": 0}]}],
            "total_cost": {"excl_vat": 0, "incl_vat": 0}, "total_energy": 0, "total_time": 0,
            "remark": "Test CDR of a hub conformance check: not a real charge, never to be billed",
            "last_updated": now}
