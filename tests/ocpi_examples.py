"""Spec-valid OCPI 2.2.1 example payloads with Indian data, for tests.

Every function returns a *fresh* dict (safe to mutate). Keyword overrides
replace top-level properties; pass :data:`DROP` to remove one, e.g.
``location(address=DROP)`` for a "missing required field" case.

Default parties: CPO ``IN``/``ECP`` owns locations, tariffs, sessions and
CDRs; eMSP ``IN``/``EMP`` owns the tokens.
"""

from __future__ import annotations

from typing import Any

#: Sentinel: ``location(name=DROP)`` removes ``name`` from the result.
DROP: Any = object()

CPO_COUNTRY = "IN"
CPO_PARTY = "ECP"
EMSP_COUNTRY = "IN"
EMSP_PARTY = "EMP"
LAST_UPDATED = "2024-03-15T06:30:00Z"


def _apply(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def connector(
    *, id: str = "1", last_updated: str = LAST_UPDATED, **overrides: Any
) -> dict[str, Any]:
    """A 60 kW CCS2 (IEC 62196 Type 2 Combo) DC connector with a cable."""
    body = {
        "id": id,
        "standard": "IEC_62196_T2_COMBO",
        "format": "CABLE",
        "power_type": "DC",
        "max_voltage": 500,
        "max_amperage": 125,
        "max_electric_power": 60000,
        "tariff_ids": ["TRF-DC-01"],
        "terms_and_conditions": "https://ecp.example.in/terms",
        "last_updated": last_updated,
    }
    return _apply(body, overrides)


def evse(
    *,
    uid: str = "EVSE-BLR-0001-1",
    status: str = "AVAILABLE",
    last_updated: str = LAST_UPDATED,
    **overrides: Any,
) -> dict[str, Any]:
    """A DC EVSE with a CCS2 and a Bharat DC-001 (GB/T) connector."""
    body = {
        "uid": uid,
        "evse_id": "IN*ECP*E0001*1",
        "status": status,
        "status_schedule": [],
        "capabilities": ["REMOTE_START_STOP_CAPABLE", "RFID_READER", "UNLOCK_CAPABLE"],
        "connectors": [
            connector(id="1", last_updated=last_updated),
            connector(
                id="2",
                standard="GBT_DC",
                max_voltage=500,
                max_amperage=30,
                max_electric_power=15000,
                tariff_ids=["TRF-DC-01"],
                last_updated=last_updated,
            ),
        ],
        "floor_level": "-1",
        "coordinates": {"latitude": "12.971600", "longitude": "77.594560"},
        "physical_reference": "DC-01",
        "directions": [{"language": "en", "text": "Basement level, bay 14"}],
        "parking_restrictions": ["EV_ONLY"],
        "last_updated": last_updated,
    }
    return _apply(body, overrides)


def location(
    *,
    country_code: str = CPO_COUNTRY,
    party_id: str = CPO_PARTY,
    id: str = "LOC-BLR-0001",
    last_updated: str = LAST_UPDATED,
    **overrides: Any,
) -> dict[str, Any]:
    """A public charging hub in central Bengaluru with one DC and one AC EVSE."""
    ac_evse = evse(
        uid="EVSE-BLR-0001-2",
        evse_id="IN*ECP*E0001*2",
        status="CHARGING",
        capabilities=["RFID_READER"],
        connectors=[
            connector(
                id="1",
                standard="IEC_62196_T2",
                format="SOCKET",
                power_type="AC_3_PHASE",
                max_voltage=230,
                max_amperage=32,
                max_electric_power=22000,
                tariff_ids=["TRF-AC-01"],
                last_updated=last_updated,
            )
        ],
        physical_reference="AC-01",
        last_updated=last_updated,
    )
    body = {
        "country_code": country_code,
        "party_id": party_id,
        "id": id,
        "publish": True,
        "name": "MG Road Metro Charging Hub",
        "address": "42, Mahatma Gandhi Road",
        "city": "Bengaluru",
        "postal_code": "560001",
        "state": "Karnataka",
        "country": "IND",
        "coordinates": {"latitude": "12.975410", "longitude": "77.606390"},
        "related_locations": [
            {
                "latitude": "12.975800",
                "longitude": "77.607100",
                "name": {"language": "en", "text": "Entrance from Brigade Road"},
            }
        ],
        "parking_type": "PARKING_GARAGE",
        "evses": [evse(last_updated=last_updated), ac_evse],
        "directions": [{"language": "hi", "text": "मेट्रो स्टेशन के पास, तहखाने में"}],
        "operator": {
            "name": "Example Charge Point Pvt Ltd",
            "website": "https://ecp.example.in",
        },
        "facilities": ["METRO_STATION", "MALL", "CAFE"],
        "time_zone": "Asia/Kolkata",
        "opening_times": {
            "twentyfourseven": False,
            "regular_hours": [
                {"weekday": day, "period_begin": "06:00", "period_end": "23:30"}
                for day in range(1, 8)
            ],
            "exceptional_closings": [
                {
                    "period_begin": "2024-10-31T18:30:00Z",
                    "period_end": "2024-11-01T18:30:00Z",
                }
            ],
        },
        "charging_when_closed": True,
        "images": [
            {
                "url": "https://ecp.example.in/img/loc-blr-0001.jpg",
                "thumbnail": "https://ecp.example.in/img/loc-blr-0001-thumb.jpg",
                "category": "LOCATION",
                "type": "jpeg",
                "width": 1280,
                "height": 720,
            }
        ],
        "energy_mix": {
            "is_green_energy": False,
            "energy_sources": [
                {"source": "COAL", "percentage": 70},
                {"source": "SOLAR", "percentage": 20.5},
                {"source": "WIND", "percentage": 9.5},
            ],
            "environ_impact": [{"category": "CARBON_DIOXIDE", "amount": 710}],
            "supplier_name": "BESCOM",
        },
        "last_updated": last_updated,
    }
    return _apply(body, overrides)


def tariff(
    *,
    country_code: str = CPO_COUNTRY,
    party_id: str = CPO_PARTY,
    id: str = "TRF-DC-01",
    last_updated: str = LAST_UPDATED,
    **overrides: Any,
) -> dict[str, Any]:
    """INR 18/kWh + 18 % GST, plus an idle fee after 22:00."""
    body = {
        "country_code": country_code,
        "party_id": party_id,
        "id": id,
        "currency": "INR",
        "type": "REGULAR",
        "tariff_alt_text": [
            {
                "language": "en",
                "text": "INR 18.00 per kWh excl. GST; INR 2.00/min idle fee at night",
            }
        ],
        "tariff_alt_url": "https://ecp.example.in/tariffs/dc-01",
        "min_price": {"excl_vat": 50.0, "incl_vat": 59.0},
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": 18.0, "vat": 18.0, "step_size": 1}
                ]
            },
            {
                "price_components": [
                    {
                        "type": "PARKING_TIME",
                        "price": 120.0,
                        "vat": 18.0,
                        "step_size": 60,
                    }
                ],
                "restrictions": {
                    "start_time": "22:00",
                    "end_time": "06:00",
                    "day_of_week": [
                        "MONDAY",
                        "TUESDAY",
                        "WEDNESDAY",
                        "THURSDAY",
                        "FRIDAY",
                    ],
                },
            },
        ],
        "start_date_time": "2024-04-01T00:00:00Z",
        "last_updated": last_updated,
    }
    return _apply(body, overrides)


def cdr_token(
    *, country_code: str = EMSP_COUNTRY, party_id: str = EMSP_PARTY, **overrides: Any
) -> dict[str, Any]:
    """The CdrToken of :func:`token`."""
    body = {
        "country_code": country_code,
        "party_id": party_id,
        "uid": "04A1B2C3D4E5F6",
        "type": "RFID",
        "contract_id": "IN-EMP-C12345678-9",
    }
    return _apply(body, overrides)


def _charging_periods() -> list[dict[str, Any]]:
    return [
        {
            "start_date_time": "2024-03-15T05:00:00Z",
            "dimensions": [
                {"type": "ENERGY", "volume": 12.5},
                {"type": "TIME", "volume": 0.5},
            ],
            "tariff_id": "TRF-DC-01",
        },
        {
            "start_date_time": "2024-03-15T05:30:00Z",
            "dimensions": [
                {"type": "ENERGY", "volume": 9.75},
                {"type": "TIME", "volume": 0.25},
            ],
            "tariff_id": "TRF-DC-01",
        },
    ]


def session(
    *,
    country_code: str = CPO_COUNTRY,
    party_id: str = CPO_PARTY,
    id: str = "SES-20240315-0001",
    last_updated: str = LAST_UPDATED,
    **overrides: Any,
) -> dict[str, Any]:
    """An active session on LOC-BLR-0001 / EVSE-BLR-0001-1 / connector 1."""
    body = {
        "country_code": country_code,
        "party_id": party_id,
        "id": id,
        "start_date_time": "2024-03-15T05:00:00Z",
        "kwh": 22.25,
        "cdr_token": cdr_token(),
        "auth_method": "WHITELIST",
        "authorization_reference": "AUTH-7f3c2a",
        "location_id": "LOC-BLR-0001",
        "evse_uid": "EVSE-BLR-0001-1",
        "connector_id": "1",
        "meter_id": "MTR-0001",
        "currency": "INR",
        "charging_periods": _charging_periods(),
        "total_cost": {"excl_vat": 400.5, "incl_vat": 472.59},
        "status": "ACTIVE",
        "last_updated": last_updated,
    }
    return _apply(body, overrides)


def cdr(
    *,
    country_code: str = CPO_COUNTRY,
    party_id: str = CPO_PARTY,
    id: str = "CDR-20240315-0001",
    last_updated: str = LAST_UPDATED,
    **overrides: Any,
) -> dict[str, Any]:
    """The final CDR of :func:`session`."""
    body = {
        "country_code": country_code,
        "party_id": party_id,
        "id": id,
        "start_date_time": "2024-03-15T05:00:00Z",
        "end_date_time": "2024-03-15T05:45:00Z",
        "session_id": "SES-20240315-0001",
        "cdr_token": cdr_token(),
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "LOC-BLR-0001",
            "name": "MG Road Metro Charging Hub",
            "address": "42, Mahatma Gandhi Road",
            "city": "Bengaluru",
            "postal_code": "560001",
            "state": "Karnataka",
            "country": "IND",
            "coordinates": {"latitude": "12.975410", "longitude": "77.606390"},
            "evse_uid": "EVSE-BLR-0001-1",
            "evse_id": "IN*ECP*E0001*1",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2_COMBO",
            "connector_format": "CABLE",
            "connector_power_type": "DC",
        },
        "meter_id": "MTR-0001",
        "currency": "INR",
        "tariffs": [tariff()],
        "charging_periods": _charging_periods(),
        "total_cost": {"excl_vat": 400.5, "incl_vat": 472.59},
        "total_energy": 22.25,
        "total_energy_cost": {"excl_vat": 400.5, "incl_vat": 472.59},
        "total_time": 0.75,
        "total_parking_time": 0.0,
        "last_updated": last_updated,
    }
    return _apply(body, overrides)


def token(
    *,
    country_code: str = EMSP_COUNTRY,
    party_id: str = EMSP_PARTY,
    uid: str = "04A1B2C3D4E5F6",
    last_updated: str = LAST_UPDATED,
    **overrides: Any,
) -> dict[str, Any]:
    """An RFID card of eMSP IN/EMP."""
    body = {
        "country_code": country_code,
        "party_id": party_id,
        "uid": uid,
        "type": "RFID",
        "contract_id": "IN-EMP-C12345678-9",
        "visual_number": "EMP-0012-3456",
        "issuer": "Example eMobility Pvt Ltd",
        "group_id": "GRP-FLEET-42",
        "valid": True,
        "whitelist": "ALLOWED",
        "language": "hi",
        "default_profile_type": "REGULAR",
        "last_updated": last_updated,
    }
    return _apply(body, overrides)


def credentials(
    *,
    token: str = "ebf3b399-779f-4497-9b9d-ac6ad3cc44d2",
    url: str = "https://ocpi.ecp.example.in/versions",
    **overrides: Any,
) -> dict[str, Any]:
    """Credentials of a platform hosting CPO IN/ECP and eMSP IN/EMP."""
    body = {
        "token": token,
        "url": url,
        "roles": [
            {
                "role": "CPO",
                "business_details": {
                    "name": "Example Charge Point Pvt Ltd",
                    "website": "https://ecp.example.in",
                    "logo": {
                        "url": "https://ecp.example.in/img/logo.png",
                        "category": "OPERATOR",
                        "type": "png",
                        "width": 512,
                        "height": 512,
                    },
                },
                "party_id": CPO_PARTY,
                "country_code": CPO_COUNTRY,
            },
            {
                "role": "EMSP",
                "business_details": {"name": "Example eMobility Pvt Ltd"},
                "party_id": EMSP_PARTY,
                "country_code": EMSP_COUNTRY,
            },
        ],
    }
    return _apply(body, overrides)


def client_info(
    *,
    country_code: str = CPO_COUNTRY,
    party_id: str = CPO_PARTY,
    last_updated: str = LAST_UPDATED,
    **overrides: Any,
) -> dict[str, Any]:
    """A connected CPO as seen by the hub."""
    body = {
        "party_id": party_id,
        "country_code": country_code,
        "role": "CPO",
        "status": "CONNECTED",
        "last_updated": last_updated,
    }
    return _apply(body, overrides)


def start_session(
    *,
    response_url: str = "https://ocpi.emp.example.in/commands/START_SESSION/42",
    **overrides: Any,
) -> dict[str, Any]:
    """START_SESSION for connector 1 of EVSE-BLR-0001-1 with :func:`token`."""
    body = {
        "response_url": response_url,
        "token": token(),
        "location_id": "LOC-BLR-0001",
        "evse_uid": "EVSE-BLR-0001-1",
        "connector_id": "1",
        "authorization_reference": "AUTH-7f3c2a",
    }
    return _apply(body, overrides)
