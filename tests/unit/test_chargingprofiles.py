"""ChargingProfiles pieces without PostgreSQL or HTTP: the hub's response_url stays a
secret in audit reads, and how long it takes results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.audit.records import redact
from hub.domain.chargingprofiles import RESULT_MODELS, ProfileRequest, profile_uuid
from hub.ocpi import models
from hub.ocpi.envelope import format_datetime


def exchange(method: str = "PUT") -> ProfileRequest:
    return ProfileRequest(result_id="cap-1", method=method, session_id="S1", requester="IN/EMP/EMSP",
                          cpo="IN/ECP/CPO", original_response_url="https://emsp/r/1",
                          hub_response_url="https://hub/ocpi/2.2.1/chargingprofiles/sender/results/cap-1",
                          correlation_id="c", request_id="r", requested_at="2026-01-01T00:00:00Z")


def test_the_capability_in_the_hubs_response_url_is_redacted():
    record = {"result_id": "cap-1", "hub_response_url": "x", "original_response_url": "https://emsp/r/1",
              "path": "/ocpi/2.2.1/chargingprofiles/sender/results/cap-1",
              "query": "duration=60&response_url=https://hub/ocpi/2.2.1/chargingprofiles/sender/results/cap-1"}
    clean = redact(record)
    assert "result_id" not in clean and "hub_response_url" not in clean
    assert clean["path"] == "/ocpi/2.2.1/chargingprofiles/sender/results/[redacted]"
    assert "cap-1" not in str(clean) and clean["original_response_url"] == "https://emsp/r/1"
    # An unsolicited update's URL names a session, not a capability: kept.
    assert redact("/ocpi/2.2.1/chargingprofiles/sender/S1") == "/ocpi/2.2.1/chargingprofiles/sender/S1"


def test_the_url_finds_the_exchange_and_takes_results_until_valid_until():
    found = exchange()
    assert found.id == profile_uuid("cap-1") != profile_uuid("cap-2")
    now = datetime.now(UTC)
    assert found.refusal(now) is None  # not answered yet: taken
    found.answer(200, 1000, "ACCEPTED", 30, format_datetime(now + timedelta(seconds=90)))
    assert found.refusal(now) is None
    assert "too late" in found.refusal(now + timedelta(seconds=91))


def test_each_call_has_its_result_model():
    assert {m: getattr(models, name).__name__ for m, name in RESULT_MODELS.items()} == {
        "GET": "ActiveChargingProfileResult", "PUT": "ChargingProfileResult", "DELETE": "ClearProfileResult"}
