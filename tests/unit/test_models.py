"""Unit tests for hub.ocpi.models and hub.ocpi.validation."""

from __future__ import annotations

import pytest

from hub.ocpi import models as m
from hub.ocpi.errors import InvalidParameters
from hub.ocpi.status import OcpiStatus
from hub.ocpi.validation import MAX_REPORTED_ERRORS, partial_model, validate
from tests import ocpi_examples as ex
from tests.ocpi_examples import DROP

TS = "2024-03-15T07:00:00Z"


def error_of(model: type[m.OcpiModel], payload: object, **kw: bool) -> str:
    with pytest.raises(InvalidParameters) as info:
        validate(model, payload, **kw)
    assert info.value.status_code == OcpiStatus.INVALID_PARAMETERS
    return info.value.message


# --------------------------------------------------------------------------
# Valid examples
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "factory"),
    [
        ("Location", ex.location),
        ("EVSE", ex.evse),
        ("Connector", ex.connector),
        ("Tariff", ex.tariff),
        ("Session", ex.session),
        ("CDR", ex.cdr),
        ("Token", ex.token),
        ("Credentials", ex.credentials),
        ("ClientInfo", ex.client_info),
        ("StartSession", ex.start_session),
        ("CdrToken", ex.cdr_token),
    ],
)
def test_examples_are_valid(name: str, factory) -> None:
    body = factory()
    result = validate(m.MODELS[name], body)
    assert isinstance(result, m.MODELS[name])


def test_location_details() -> None:
    loc = validate(m.Location, ex.location())
    assert isinstance(loc, m.Location)
    assert loc.country_code == "IN" and loc.country == "IND"
    assert loc.time_zone == "Asia/Kolkata"
    assert loc.coordinates.latitude == "12.975410"
    assert loc.evses[0].status is m.Status.AVAILABLE
    assert loc.evses[0].connectors[1].standard is m.ConnectorType.GBT_DC
    assert loc.evses[1].connectors[0].power_type is m.PowerType.AC_3_PHASE
    # DateTime stays the original string
    assert loc.last_updated == ex.LAST_UPDATED


def test_tariff_currency_and_elements() -> None:
    tariff = validate(m.Tariff, ex.tariff())
    assert tariff.currency == "INR"
    assert tariff.elements[0].price_components[0].type is m.TariffDimensionType.ENERGY
    assert tariff.elements[1].restrictions.day_of_week[0] is m.DayOfWeek.MONDAY


def test_examples_are_fresh_and_overridable() -> None:
    a = ex.location()
    a["evses"][0]["status"] = "REMOVED"
    assert ex.location()["evses"][0]["status"] == "AVAILABLE"
    b = ex.location(country_code="IN", party_id="XYZ", id="LOC-2", last_updated=TS)
    assert (b["party_id"], b["id"], b["last_updated"]) == ("XYZ", "LOC-2", TS)
    assert b["evses"][0]["connectors"][0]["last_updated"] == TS
    assert "name" not in ex.location(name=DROP)


def test_other_models_validate() -> None:
    details = {
        "version": "2.2.1",
        "endpoints": [
            {
                "identifier": "credentials",
                "role": "SENDER",
                "url": "https://h.example/cred",
            },
            {
                "identifier": "locations",
                "role": "RECEIVER",
                "url": "https://h.example/loc",
            },
            {
                "identifier": "incih-fleet",
                "role": "SENDER",
                "url": "https://h.example/x",
            },
        ],
    }
    vd = validate(m.VersionDetails, details)
    assert vd.version is m.VersionNumber.V2_2_1
    assert vd.endpoints[0].identifier is m.ModuleID.CREDENTIALS
    assert vd.endpoints[2].identifier == "incih-fleet"  # custom module ids are allowed
    v = validate(m.Version, {"version": "2.3.0", "url": "https://h.example/2.3.0"})
    assert v.version == "2.3.0"
    assert (
        validate(m.Version, {"version": "2.2.1", "url": "u"}).version
        is m.VersionNumber.V2_2_1
    )
    validate(m.CommandResponse, {"result": "ACCEPTED", "timeout": 30})
    message = [{"language": "en", "text": "Connector in use"}]
    validate(m.CommandResult, {"result": "EVSE_OCCUPIED", "message": message})
    validate(
        m.StopSession, {"response_url": "https://e.example/r/1", "session_id": "S1"}
    )
    validate(
        m.ReserveNow,
        {
            "response_url": "https://e.example/r/2",
            "token": ex.token(),
            "expiry_date": "2024-03-15T08:00:00Z",
            "reservation_id": "R1",
            "location_id": "LOC-BLR-0001",
        },
    )
    validate(
        m.CancelReservation,
        {"response_url": "https://e.example/r/3", "reservation_id": "R1"},
    )
    validate(
        m.UnlockConnector,
        {"response_url": "u", "location_id": "L", "evse_uid": "E", "connector_id": "1"},
    )
    validate(
        m.AuthorizationInfo,
        {
            "allowed": "ALLOWED",
            "token": ex.token(),
            "location": {"location_id": "LOC-BLR-0001"},
        },
    )
    validate(m.ChargingPreferences, {"profile_type": "GREEN", "energy_need": 20})
    assert m.COMMAND_MODELS[m.CommandType.START_SESSION] is m.StartSession


def test_models_registry() -> None:
    names = [
        "Location",
        "EVSE",
        "Connector",
        "Tariff",
        "Session",
        "CDR",
        "Token",
        "Credentials",
        "ClientInfo",
        "StartSession",
        "StopSession",
        "ReserveNow",
        "CancelReservation",
        "UnlockConnector",
        "CommandResponse",
        "CommandResult",
        "VersionDetails",
        "Version",
        "Endpoint",
    ]
    for name in names:
        assert m.MODELS[name].__name__ == name
        assert issubclass(m.MODELS[name], m.OcpiModel)


# --------------------------------------------------------------------------
# Required fields, enums, lists
# --------------------------------------------------------------------------


def test_missing_required_field_is_named() -> None:
    assert error_of(m.Location, ex.location(address=DROP)) == "address: field required"


def test_missing_nested_field_has_indexed_path() -> None:
    body = ex.location()
    del body["evses"][0]["connectors"][1]["max_voltage"]
    assert (
        error_of(m.Location, body)
        == "evses[0].connectors[1].max_voltage: field required"
    )


def test_wrong_enum_is_named() -> None:
    msg = error_of(m.EVSE, ex.evse(status="BROKEN"))
    assert msg.startswith("status: invalid value 'BROKEN'")
    assert "AVAILABLE" in msg
    msg = error_of(m.Connector, ex.connector(standard="CCS2"))
    assert msg.startswith("standard: ")
    # enum values are case-sensitive
    assert error_of(m.Token, ex.token(type="rfid")).startswith("type: ")


def test_wrong_scalar_types() -> None:
    assert error_of(m.Connector, ex.connector(max_voltage="230")).startswith(
        "max_voltage: "
    )
    assert error_of(m.Connector, ex.connector(max_voltage=True)).startswith(
        "max_voltage: "
    )
    assert error_of(m.Connector, ex.connector(max_voltage=230.5)).startswith(
        "max_voltage: "
    )
    assert error_of(m.Location, ex.location(publish="true")).startswith("publish: ")
    assert error_of(m.Session, ex.session(kwh=True)).startswith("kwh: ")
    assert error_of(m.Session, ex.session(kwh="1.5")).startswith("kwh: ")
    assert validate(m.Session, ex.session(kwh=3)).kwh == 3


def test_plus_list_must_not_be_empty() -> None:
    msg = error_of(m.EVSE, ex.evse(connectors=[]))
    assert msg == "connectors: at least 1 item required"
    assert error_of(m.Tariff, ex.tariff(elements=[])).startswith("elements: at least 1")
    assert error_of(m.CDR, ex.cdr(charging_periods=[])).startswith("charging_periods: ")
    assert error_of(m.Credentials, ex.credentials(roles=[])).startswith("roles: ")
    body = ex.tariff()
    body["elements"][0]["price_components"] = []
    assert error_of(m.Tariff, body).startswith("elements[0].price_components: ")


def test_star_list_may_be_empty_null_or_absent() -> None:
    validate(m.Location, ex.location(evses=[]))
    validate(m.Location, ex.location(evses=None))
    validate(m.Location, ex.location(evses=DROP))


def test_optional_field_may_be_null() -> None:
    validate(m.Location, ex.location(name=None, postal_code=None, operator=None))


def test_required_field_null_rejected() -> None:
    assert error_of(m.Location, ex.location(city=None)) == "city: must not be null"


def test_several_errors_joined_and_capped() -> None:
    msg = error_of(m.Location, {"last_updated": TS})
    parts = msg.split("; ")
    assert len(parts) == MAX_REPORTED_ERRORS + 1
    assert parts[0] == "country_code: field required"
    assert parts[-1].startswith("and ") and parts[-1].endswith("more errors")


# --------------------------------------------------------------------------
# String types
# --------------------------------------------------------------------------


def test_cistring_too_long() -> None:
    assert error_of(m.Location, ex.location(id="X" * 37)) == "id: at most 36 characters"
    validate(m.Location, ex.location(id="X" * 36))
    assert (
        error_of(m.Location, ex.location(party_id="ECPX"))
        == "party_id: at most 3 characters"
    )
    validate(m.CDR, ex.cdr(id="C" * 39))


def test_string_too_long() -> None:
    assert (
        error_of(m.Location, ex.location(city="a" * 46))
        == "city: at most 45 characters"
    )
    # length counts characters, not bytes
    validate(m.Location, ex.location(city="म" * 45))


def test_lengths_follow_the_2_2_1_errata() -> None:
    """Location address 255 and state 45; a CDR's location copies them; SignedValue plain_data 5000."""
    validate(m.Location, ex.location(address="a" * 255, state="s" * 45))
    assert error_of(m.Location, ex.location(address="a" * 256)) == "address: at most 255 characters"
    assert error_of(m.Location, ex.location(state="s" * 46)) == "state: at most 45 characters"
    cdr = ex.cdr()
    cdr["cdr_location"] = {**cdr["cdr_location"], "address": "Plot 14, " + "Outer Ring Road " * 10,
                           "state": "Dadra and Nagar Haveli and Daman and Diu"}
    assert len(cdr["cdr_location"]["address"]) > 45
    validate(m.CDR, cdr)
    cdr["cdr_location"]["address"] = "a" * 256
    assert error_of(m.CDR, cdr) == "cdr_location.address: at most 255 characters"


def test_cistring_rejects_non_ascii() -> None:
    msg = error_of(m.Location, ex.location(id="LOC-बेंगलुरु"))
    assert msg == "id: only printable ASCII characters (U+0020-U+007E) allowed"


def test_cistring_rejects_control_chars() -> None:
    assert error_of(m.Token, ex.token(uid="04A1\n")).startswith(
        "uid: only printable ASCII"
    )


@pytest.mark.parametrize(
    "bad", ["Line1\nLine2", "Tab\there", "CR\r", "nul\x00", "del\x7f", "c1\x85"]
)
def test_string_rejects_control_chars(bad: str) -> None:
    msg = error_of(m.Location, ex.location(address=bad))
    assert msg == "address: control characters (CR, LF, TAB, ...) not allowed"


def test_string_accepts_unicode_text() -> None:
    validate(m.Location, ex.location(name="चार्जिंग हब — MG Road ₹"))


def test_string_must_be_a_string() -> None:
    assert error_of(m.Location, ex.location(city=560001)).startswith("city: ")


# --------------------------------------------------------------------------
# DateTime
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2015-06-29T20:39:09Z",
        "2015-06-29T20:39:09",
        "2016-12-29T17:45:09.2Z",
        "2016-12-29T17:45:09.2",
        "2018-01-01T01:08:01.123Z",
        "2018-01-01T01:08:01.123",
        "2018-01-01T01:08:01.1234Z",  # 25 characters
        "2018-01-01T01:08:01.12345",  # 25 characters
        "2024-02-29T23:59:59Z",
    ],
)
def test_datetime_accepted(value: str) -> None:
    result = validate(m.ClientInfo, ex.client_info(last_updated=value))
    assert result.last_updated == value  # kept as the original string


@pytest.mark.parametrize(
    "value",
    [
        "2015-06-29T20:39:09+00:00",
        "2015-06-29T20:39:09+05:30",
        "2015-06-29T20:39:09.123+05:30",
        "2015-06-29T20:39:09-01:00",
        "2015-06-29 20:39:09Z",
        "2015-06-29",
        "20150629T203909Z",
        "2015-06-29T20:39Z",
        "2015-06-29t20:39:09z",
        "2015-13-29T20:39:09Z",
        "2015-06-29T24:00:00Z",
        "2015-06-29T20:39:09.Z",
        "yesterday",
        "",
    ],
)
def test_datetime_rejected(value: str) -> None:
    msg = error_of(m.ClientInfo, ex.client_info(last_updated=value))
    assert msg.startswith("last_updated: not an OCPI DateTime") or msg == (
        "last_updated: at most 25 characters"
    )


def test_datetime_impossible_date_and_length() -> None:
    assert error_of(
        m.ClientInfo, ex.client_info(last_updated="2023-02-29T00:00:00Z")
    ) == ("last_updated: not a valid calendar date")
    msg = error_of(
        m.ClientInfo, ex.client_info(last_updated="2018-01-01T01:08:01.123456Z")
    )
    assert msg == "last_updated: at most 25 characters"
    assert error_of(m.ClientInfo, ex.client_info(last_updated=1710484200)).startswith(
        "last_updated: "
    )


# --------------------------------------------------------------------------
# GeoLocation and other patterns
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        ("12.97160", "77.59456"),
        ("-33.868800", "151.2093000"),  # latitude is string(10), longitude string(11)
        ("0.00000", "-0.00000"),
    ],
)
def test_geolocation_valid(lat: str, lon: str) -> None:
    validate(m.GeoLocation, {"latitude": lat, "longitude": lon})


@pytest.mark.parametrize(
    ("field", "lat", "lon"),
    [
        ("latitude", "12.9716", "77.594560"),  # too few decimals
        ("latitude", "12,971600", "77.594560"),  # comma separator
        ("latitude", "123.971600", "77.594560"),  # three integer digits
        ("latitude", "12.97160012", "77.594560"),  # too many decimals
        ("latitude", "-12.9716001", "77.594560"),  # matches the regex, but > string(10)
        ("longitude", "12.971600", "1077.594560"),
        ("longitude", "12.971600", "+77.594560"),
    ],
)
def test_geolocation_pattern(field: str, lat: str, lon: str) -> None:
    body = ex.location(coordinates={"latitude": lat, "longitude": lon})
    msg = error_of(m.Location, body)
    assert msg.startswith(f"coordinates.{field}: ")
    assert "pattern" in msg or "characters" in msg


def test_geolocation_must_be_strings() -> None:
    msg = error_of(m.GeoLocation, {"latitude": 12.9716, "longitude": "77.594560"})
    assert msg.startswith("latitude: ")


def test_regular_hours_and_restrictions_patterns() -> None:
    body = ex.location()
    body["opening_times"]["regular_hours"][0]["period_begin"] = "6:00"
    assert error_of(m.Location, body).startswith(
        "opening_times.regular_hours[0].period_begin: "
    )
    body = ex.location()
    body["opening_times"]["regular_hours"][0]["weekday"] = 8
    assert error_of(m.Location, body).startswith(
        "opening_times.regular_hours[0].weekday: "
    )
    body = ex.tariff()
    body["elements"][1]["restrictions"]["start_date"] = "2024-4-1"
    assert error_of(m.Tariff, body).startswith("elements[1].restrictions.start_date: ")


# --------------------------------------------------------------------------
# Unknown properties and body shape
# --------------------------------------------------------------------------


def test_unknown_fields_accepted() -> None:
    body = ex.location(x_vendor_flag=True)
    body["evses"][0]["connectors"][0]["x_bharat_variant"] = "DC-001"
    loc = validate(m.Location, body)
    assert loc.model_extra == {"x_vendor_flag": True}
    assert body["x_vendor_flag"] is True  # the input dict is left as it was


@pytest.mark.parametrize("payload", [[], [ex.location()], "Location", 42, None, True])
def test_non_object_body_rejected(payload: object) -> None:
    assert error_of(m.Location, payload) == "body: expected a JSON object"
    assert error_of(m.Location, payload, partial=True) == "body: expected a JSON object"


def test_nested_non_object_names_field() -> None:
    assert error_of(m.Location, ex.location(coordinates="12.9,77.5")).startswith(
        "coordinates: "
    )


def test_huge_values_not_echoed() -> None:
    huge = "Z" * 10_000
    for msg in (
        error_of(m.EVSE, ex.evse(status=huge)),
        error_of(m.Location, ex.location(id=huge)),
        error_of(m.Location, ex.location(address=huge + "\n")),
    ):
        assert len(msg) < 400
        assert "Z" * 50 not in msg


# --------------------------------------------------------------------------
# PATCH (partial=True)
# --------------------------------------------------------------------------


def test_patch_requires_last_updated() -> None:
    msg = error_of(m.EVSE, {"status": "CHARGING"}, partial=True)
    assert msg == "last_updated: required in a PATCH"
    assert error_of(m.Tariff, {}, partial=True) == "last_updated: required in a PATCH"


def test_patch_status_only_ok() -> None:
    result = validate(m.EVSE, {"status": "CHARGING", "last_updated": TS}, partial=True)
    assert isinstance(result, m.EVSE)
    assert result.model_fields_set == {"status", "last_updated"}
    assert result.status is m.Status.CHARGING
    validate(
        m.Connector, {"tariff_ids": ["TRF-AC-02"], "last_updated": TS}, partial=True
    )
    validate(m.Token, {"valid": False, "last_updated": TS}, partial=True)
    validate(m.Location, {"last_updated": TS}, partial=True)


def test_patch_null_rejected_for_required_field() -> None:
    msg = error_of(m.EVSE, {"status": None, "last_updated": TS}, partial=True)
    assert msg == "status: must not be null"
    assert error_of(m.EVSE, {"last_updated": None}, partial=True).startswith(
        "last_updated: "
    )


def test_patch_null_accepted_for_optional_field() -> None:
    validate(
        m.Location,
        {"name": None, "opening_times": None, "last_updated": TS},
        partial=True,
    )


def test_patch_checks_present_fields_fully() -> None:
    msg = error_of(m.EVSE, {"status": "FOO", "last_updated": TS}, partial=True)
    assert msg.startswith("status: invalid value 'FOO'")
    body = {"status": "CHARGING", "last_updated": "2024-03-15T07:00:00+05:30"}
    msg = error_of(m.EVSE, body, partial=True)
    assert msg.startswith("last_updated: not an OCPI DateTime")


def test_patch_nested_values_are_complete() -> None:
    body = {"connectors": [{"id": "1"}], "last_updated": TS}
    msg = error_of(m.EVSE, body, partial=True)
    assert msg.startswith("connectors[0].standard: field required")
    body = {"coordinates": {"latitude": "12.97160"}, "last_updated": TS}
    msg = error_of(m.Location, body, partial=True)
    assert msg == "coordinates.longitude: field required"
    msg = error_of(m.EVSE, {"connectors": [], "last_updated": TS}, partial=True)
    assert msg.startswith("connectors: at least 1")
    periods = ex.session()["charging_periods"]
    body = {"charging_periods": periods, "kwh": 30.5, "last_updated": TS}
    validate(m.Session, body, partial=True)


def test_patch_unknown_fields_pass() -> None:
    result = validate(m.EVSE, {"x_custom": {"a": 1}, "last_updated": TS}, partial=True)
    assert result.model_extra == {"x_custom": {"a": 1}}


def test_partial_models_are_cached() -> None:
    assert partial_model(m.EVSE) is partial_model(m.EVSE)
    assert issubclass(partial_model(m.Location), m.Location)
    assert partial_model(m.Location) is not partial_model(m.EVSE)


def test_full_validation_unaffected_by_partial_models() -> None:
    partial_model(m.Connector)
    assert error_of(m.Connector, {"last_updated": TS}).startswith("id: field required")
