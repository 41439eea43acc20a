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
