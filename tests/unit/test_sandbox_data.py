"""The sandbox's pure parts: its data is valid OCPI 2.2.1 and Indian, its faults parse as documented."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.ocpi import models
from hub.ocpi.errors import InvalidParameters
from hub.ocpi.validation import validate
from hub.sandbox import data
from hub.sandbox.faults import MODES, Fault, FaultError

NOW = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)


def test_locations_validate_and_are_in_indian_cities():
    locations = data.locations("IN", "VYC", "Volt Yatra Charging", NOW, count=12)
    for location in locations:
        validate(models.Location, location)
        assert location["country"] == "IND" and location["time_zone"] == "Asia/Kolkata"
        city = next(c for c in data.CITIES if c.name == location["city"])
        lat, lon = float(location["coordinates"]["latitude"]), float(location["coordinates"]["longitude"])
        assert abs(lat - city.latitude) < 0.1 and abs(lon - city.longitude) < 0.1
        assert location["state"] == city.state
    assert {loc["city"] for loc in locations} == {c.name for c in data.CITIES}
    # The same ids on every run: a partner developer can rely on them.
    assert data.locations("IN", "VYC", "Volt Yatra Charging", NOW, count=12) == locations


def test_connectors_are_those_used_in_india_from_3_3_kw_ac_to_fast_dc():
    standards = {k.standard for k in data.CHARGERS}
    assert {"IEC_62196_T2_COMBO", "IEC_62196_T2", "CHADEMO", "GBT_DC", "IEC_60309_2_single_16"} <= standards
    powers = [k.max_electric_power for k in data.CHARGERS]
    assert min(powers) == 3300 and max(powers) >= 60000
    for kind in data.CHARGERS:
        connector = data._connector(kind, 1, "T", "2026-12-01T06:30:00Z")
        validate(models.Connector, connector)
        assert (kind.power_type == "DC") == (kind.standard in ("IEC_62196_T2_COMBO", "CHADEMO", "GBT_DC"))


def test_tariffs_are_inr_with_gst_as_ocpi_vat():
    tariffs = data.tariffs("IN", "VYC", NOW)
    for tariff in tariffs:
        validate(models.Tariff, tariff)
        assert tariff["currency"] == "INR"
        for element in tariff["elements"]:
            for component in element["price_components"]:
                assert component["vat"] == 18.0
    energy = tariffs[1]["elements"][0]["price_components"][0]
    assert energy["type"] == "ENERGY"  # the DC tariff: Rs 21.24/kWh incl. GST = 18.00 + 18 %
    assert round(energy["price"] * 1.18, 2) == data.DC_PRICE_INCL_GST
    assert "21.24" in tariffs[1]["tariff_alt_text"][0]["text"]


def test_tokens_sessions_and_cdrs_validate():
    tokens = data.tokens("IN", "CHL", "Chalo EV", NOW)
    for token in tokens:
        validate(models.Token, token)
    assert [t["valid"] for t in tokens] == [True, True, True, True, False]
    location = data.locations("IN", "VYC", "Volt Yatra Charging", NOW)[0]
    validate(models.Session, data.session(("IN", "VYC"), location, tokens[0], "S1", NOW, 4.2))
    cdr = data.cdr(("IN", "VYC"), location, tokens[0], "S1-CDR", NOW, 40, 12.5)
    validate(models.CDR, cdr)
    assert cdr["total_cost"]["incl_vat"] == round(cdr["total_cost"]["excl_vat"] * 1.18, 2)


@pytest.mark.parametrize(("module", "model", "field"), [
    ("locations", models.Location, "coordinates"), ("tokens", models.Token, "whitelist"),
    ("tariffs", models.Tariff, "currency")])
def test_the_invalid_fault_breaks_one_named_field(module, model, field):
    objects = {"locations": data.locations("IN", "VYC", "V", NOW), "tokens": data.tokens("IN", "CHL", "C", NOW),
               "tariffs": data.tariffs("IN", "VYC", NOW)}[module]
    with pytest.raises(InvalidParameters) as refused:
        validate(model, data.invalid(module, objects[0]))
    assert field in str(refused.value)


def test_faults_parse_with_their_defaults_and_refuse_what_is_unknown():
    assert Fault.parse("5XX").mode == "5xx"
    assert (Fault.parse("429").seconds, Fault.parse("slow", 4).seconds) == (2.0, 4.0)
    assert Fault.parse("timeout").describe() == "timeout (30 s)"
    assert Fault.parse("off").mode is None and Fault.parse("off").describe() == "off"
    with pytest.raises(FaultError, match="use one of slow, 5xx, 429, timeout, invalid, pagination or off"):
        Fault.parse("flaky")
    with pytest.raises(FaultError, match="between 0 and 600"):
        Fault.parse("slow", -1)
    assert set(MODES) == {"slow", "5xx", "429", "timeout", "invalid", "pagination"}


# A partner's answers, without a network: Partner.answer is what its server sends ------------
def _partner(role: str = "CPO", **options):
    from hub.sandbox.partner import Partner

    return Partner(role, "IN", "VYC" if role == "CPO" else "CHL", "Sandbox", token_b="token-b", **options)


def _headers(token: str = "token-b") -> dict:
    import base64

    return {"AUTHORIZATION": "Token " + base64.b64encode(token.encode()).decode(),
            "OCPI-FROM-COUNTRY-CODE": "IN", "OCPI-FROM-PARTY-ID": "CIH"}


def test_a_partner_answers_only_its_token_b_and_publishes_its_roles_interfaces():
    cpo = _partner()
    try:
        assert cpo.answer("GET", "/ocpi/versions", {}, None, _headers("wrong"))[0] == 401
        status, body, _ = cpo.answer("GET", "/ocpi/2.2.1", {}, None, _headers())
        assert status == 200 and body["status_code"] == 1000
        published = {(e["identifier"], e["role"]) for e in body["data"]["endpoints"]}
        assert {("locations", "SENDER"), ("commands", "RECEIVER"), ("tokens", "RECEIVER")} <= published
    finally:
        cpo.stop()


def test_faults_change_the_answers_as_documented():
    cpo = _partner(locations=5)
    try:
        cpo.set_fault(Fault.parse("5xx"))
        status, body, _ = cpo.answer("GET", "/ocpi/2.2.1/locations", {}, None, _headers())
        assert (status, body["status_code"]) == (503, 3000)
        cpo.set_fault(Fault.parse("429", 7))
        assert cpo.answer("GET", "/ocpi/2.2.1/locations", {}, None, _headers())[::2] == (429, {"Retry-After": "7"})
        cpo.set_fault(Fault.parse("pagination"))
        status, body, headers = cpo.answer("GET", "/ocpi/2.2.1/locations", {}, None, _headers())
        assert len(body["data"]) == 1 and headers["X-Total-Count"] == "5" and headers["X-Limit"] == "1"
        assert headers["Link"].endswith('/ocpi/2.2.1/locations?offset=1&limit=1>; rel="next"')
        cpo.set_fault(Fault.parse("invalid"))
        body = cpo.answer("GET", "/ocpi/2.2.1/locations", {}, None, _headers())[1]
        assert all("coordinates" not in loc for loc in body["data"])
        cpo.set_fault(Fault.parse("off"))
        status, body, headers = cpo.answer("GET", "/ocpi/2.2.1/locations", {}, None, _headers())
        assert len(body["data"]) == 5 and "Link" not in headers
    finally:
        cpo.stop()


def test_an_emsp_authorizes_its_valid_tokens_and_blocks_the_lost_card():
    emsp = _partner("EMSP")
    try:
        card, lost = emsp.held["tokens"][0], emsp.held["tokens"][-1]
        path = "/ocpi/2.2.1/tokens/{}/authorize"
        allowed = emsp.answer("POST", path.format(card["uid"]), {"type": "RFID"}, None, _headers())[1]
        assert allowed["data"]["allowed"] == "ALLOWED"
        validate(models.AuthorizationInfo, allowed["data"])
        assert emsp.answer("POST", path.format(lost["uid"]), {"type": lost["type"]}, None,
                           _headers())[1]["data"]["allowed"] == "BLOCKED"
        status, body, _ = emsp.answer("POST", path.format("NOPE"), {"type": "RFID"}, None, _headers())
        assert (status, body["status_code"]) == (404, 2004)
    finally:
        emsp.stop()
