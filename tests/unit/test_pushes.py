"""Merges and the stale guard, on the application with the in-memory event store.

What a CPO or eMSP pushing to the hub observes: which pushes are applied, the
body the hub then holds (and forwards and serves), and the refusals (HTTP
status, OCPI status, a message naming what is missing).
"""

from __future__ import annotations

import pytest

from hub.domain.objects import Cdr, Location, Session, Tariff, Token
from hub.ocpi.errors import InvalidParameters, NotFound
from hub.ocpi.status import OcpiStatus
from hub.services.application import UnitOfWork
from hub.services.pushes import Pushes, is_older
from tests import ocpi_examples as ex

CC, PID = "IN", "ECP"
LOC = "LOC1"
EVSE = "EVSE-1"


def t(minute: int) -> str:
    return f"2024-03-15T06:{minute:02d}:00Z"


def push(app, method: str, *args, **kwargs):
    """One request: a Pushes command in a unit of work, committed (as the receivers do)."""
    uow = UnitOfWork(app)
    try:
        result = getattr(Pushes(app), method)(uow, *args, {"request_id": "r"}, **kwargs)
    except Exception:
        uow.discard()
        raise
    uow.commit()
    return result


def held(app, cls, object_id: str, cc: str = CC, pid: str = PID) -> dict | None:
    """The body the hub holds now (what it forwards and serves)."""
    obj = Pushes(app).get(cls, cc, pid, object_id)
    return None if obj is None else obj.body


def events(app) -> list[str]:
    """Topics of every event stored so far, oldest first (class names only)."""
    return [n.topic.rsplit(".", 1)[-1] for n in app.recorder.select_notifications(start=1, limit=1000)]


def a_location(minute: int = 0, **overrides) -> dict:
    """A Location with one EVSE ``EVSE-1`` (connectors 1 and 2), everything stamped ``t(minute)``."""
    return ex.location(id=LOC, last_updated=t(minute),
                       evses=[ex.evse(uid=EVSE, last_updated=t(minute))], **overrides)


def location_with_times(location: int, evse: int, connector: int) -> dict:
    body = a_location(location)
    body["evses"][0]["last_updated"] = t(evse)
    for c in body["evses"][0]["connectors"]:
        c["last_updated"] = t(connector)
    return body


@pytest.fixture
def located(app):
    """The app holding :func:`a_location` at t(10)."""
    push(app, "put_location", CC, PID, LOC, a_location(10))
    return app


def evse_of(body: dict) -> dict:
    return next(e for e in body["evses"] if e["uid"] == EVSE)


def connector_of(body: dict, connector_id: str = "1") -> dict:
    return next(c for c in evse_of(body)["connectors"] if c["id"] == connector_id)


# The stale guard's comparison -------------------------------------------------------
@pytest.mark.parametrize(("pushed", "stored", "older"), [
    (t(1), t(2), True),
    (t(2), t(2), False),  # equal is not older: applied
    (t(3), t(2), False),
    ("2024-03-14T23:59:59Z", t(0), True),  # instants, across a day
    ("2024-03-15T06:01:00+05:30", "2024-03-15T06:40:00Z", False),  # not an OCPI (UTC) DateTime: not compared
    ("2024-03-15T06:01:00.500Z", "2024-03-15T06:01:00.250Z", False),
    ("not a date", t(2), False),  # nothing to compare: not called stale
    (t(1), None, False),
    (None, t(2), False),
])
def test_is_older_compares_instants(pushed, stored, older):
    assert is_older(pushed, stored) is older


# Locations -------------------------------------------------------------------------
def test_put_of_a_new_location_is_created_and_held_as_pushed(app):
    body = a_location(0)
    result = push(app, "put_location", CC, PID, LOC, body)
    assert result.created and not result.stale
    assert held(app, Location, LOC) == body


def test_put_replaces_the_whole_location(located):
    newer = a_location(20, name="Renamed")
    newer["evses"] = []
    result = push(located, "put_location", CC, PID, LOC, newer)
    assert not result.created and not result.stale
    assert held(located, Location, LOC) == newer


def test_older_put_of_a_location_changes_nothing_and_is_recorded(located):
    before = held(located, Location, LOC)
    result = push(located, "put_location", CC, PID, LOC, a_location(5, name="Old"))
    assert result.stale
    assert held(located, Location, LOC) == before
    assert events(located)[-1] == "StalePushIgnored"


def test_put_with_the_same_last_updated_is_applied(located):
    push(located, "put_location", CC, PID, LOC, a_location(10, name="Same time"))
    assert held(located, Location, LOC)["name"] == "Same time"


def test_location_ids_are_case_insensitive(located):
    push(located, "put_location", "in", "ecp", LOC.lower(), a_location(20, name="Lower"))
    assert held(located, Location, LOC)["name"] == "Lower"


def test_patch_of_a_location_replaces_only_the_fields_it_names(located):
    push(located, "patch_location", CC, PID, LOC, {"name": "Patched", "last_updated": t(20)})
    body = held(located, Location, LOC)
    assert body["name"] == "Patched" and body["last_updated"] == t(20)
    assert body["address"] == a_location(10)["address"] and len(body["evses"]) == 1


def test_older_patch_of_a_location_changes_nothing(located):
    result = push(located, "patch_location", CC, PID, LOC, {"name": "Old", "last_updated": t(5)})
    assert result.stale and held(located, Location, LOC) == a_location(10)


@pytest.mark.parametrize(("method", "args", "names"), [
    ("patch_location", (), "unknown location IN/ECP/NOPE; PUT the Location first"),
    ("put_evse", (EVSE,), "unknown location IN/ECP/NOPE"),
    ("put_connector", (EVSE, "1"), "unknown location IN/ECP/NOPE"),
])
def test_a_child_of_an_unknown_location_is_404_2003(app, method, args, names):
    body = ex.connector(last_updated=t(1)) if method == "put_connector" else ex.evse(last_updated=t(1))
    with pytest.raises(NotFound) as refused:
        if method == "patch_location":
            push(app, method, CC, PID, "NOPE", {"name": "x", "last_updated": t(1)})
        else:
            push(app, method, CC, PID, "NOPE", *args, body)
    assert (refused.value.http_status, refused.value.status_code) == (404, OcpiStatus.UNKNOWN_LOCATION)
    assert names in refused.value.message
    assert held(app, Location, "NOPE") is None


# EVSEs -----------------------------------------------------------------------------
def test_put_of_a_new_evse_adds_it_and_moves_the_location_last_updated(located):
    result = push(located, "put_evse", CC, PID, LOC, "EVSE-2", ex.evse(uid="EVSE-2", last_updated=t(30)))
    body = held(located, Location, LOC)
    assert result.created
    assert [e["uid"] for e in body["evses"]] == [EVSE, "EVSE-2"]
    assert body["last_updated"] == t(30)


def test_put_of_an_evse_older_than_the_location_keeps_the_location_last_updated(located):
    push(located, "put_evse", CC, PID, LOC, "EVSE-2", ex.evse(uid="EVSE-2", last_updated=t(3)))
    body = held(located, Location, LOC)
    assert [e["uid"] for e in body["evses"]] == [EVSE, "EVSE-2"]  # new: applied, nothing to be older than
    assert body["last_updated"] == t(10)  # the parent never moves back


def test_put_of_an_existing_evse_replaces_it(located):
    replacement = ex.evse(uid=EVSE, status="BLOCKED", last_updated=t(20), connectors=[])
    result = push(located, "put_evse", CC, PID, LOC, EVSE, replacement)
    assert not result.created
    assert evse_of(held(located, Location, LOC)) == replacement


def test_older_put_of_an_existing_evse_changes_nothing(located):
    result = push(located, "put_evse", CC, PID, LOC, EVSE, ex.evse(uid=EVSE, status="BLOCKED", last_updated=t(5)))
    assert result.stale and held(located, Location, LOC) == a_location(10)


def test_patch_of_an_evse_merges_and_moves_the_location_last_updated(located):
    push(located, "patch_location", CC, PID, LOC, {"status": "CHARGING", "last_updated": t(20)}, evse_uid=EVSE)
    body = held(located, Location, LOC)
    assert evse_of(body)["status"] == "CHARGING" and evse_of(body)["last_updated"] == t(20)
    assert evse_of(body)["connectors"] == a_location(10)["evses"][0]["connectors"]
    assert body["last_updated"] == t(20)


def test_patch_of_an_evse_is_stale_against_the_evse_not_the_location(app):
    push(app, "put_location", CC, PID, LOC, location_with_times(location=20, evse=10, connector=10))
    newer_than_evse = push(app, "patch_location", CC, PID, LOC, {"status": "BLOCKED", "last_updated": t(15)},
                           evse_uid=EVSE)
    assert not newer_than_evse.stale
    body = held(app, Location, LOC)
    assert evse_of(body)["status"] == "BLOCKED" and body["last_updated"] == t(20)
    older = push(app, "patch_location", CC, PID, LOC, {"status": "REMOVED", "last_updated": t(12)},
                 evse_uid=EVSE)
    assert older.stale and evse_of(held(app, Location, LOC))["status"] == "BLOCKED"


def test_patch_of_an_unknown_evse_is_404_2003_naming_it(located):
    with pytest.raises(NotFound) as refused:
        push(located, "patch_location", CC, PID, LOC, {"status": "BLOCKED", "last_updated": t(20)},
             evse_uid="EVSE-9")
    assert (refused.value.http_status, refused.value.status_code) == (404, OcpiStatus.UNKNOWN_LOCATION)
    assert refused.value.message == f"unknown EVSE EVSE-9 at location {CC}/{PID}/{LOC}"


def test_evse_uids_are_matched_case_insensitively(located):
    push(located, "patch_location", CC, PID, LOC, {"status": "CHARGING", "last_updated": t(20)},
         evse_uid=EVSE.lower())
    body = held(located, Location, LOC)
    assert len(body["evses"]) == 1 and evse_of(body)["status"] == "CHARGING"


# Connectors ------------------------------------------------------------------------
def test_put_of_a_new_connector_adds_it_and_moves_evse_and_location(located):
    result = push(located, "put_connector", CC, PID, LOC, EVSE, "3", ex.connector(id="3", last_updated=t(40)))
    body = held(located, Location, LOC)
    assert result.created
    assert [c["id"] for c in evse_of(body)["connectors"]] == ["1", "2", "3"]
    assert evse_of(body)["last_updated"] == t(40) and body["last_updated"] == t(40)


def test_put_of_a_connector_on_an_unknown_evse_is_404_2003(located):
    with pytest.raises(NotFound) as refused:
        push(located, "put_connector", CC, PID, LOC, "EVSE-9", "1", ex.connector(last_updated=t(20)))
    assert (refused.value.http_status, refused.value.status_code) == (404, OcpiStatus.UNKNOWN_LOCATION)
    assert refused.value.message == f"unknown EVSE EVSE-9 at location {CC}/{PID}/{LOC}"


def test_older_put_of_an_existing_connector_changes_nothing(located):
    result = push(located, "put_connector", CC, PID, LOC, EVSE, "1",
                  ex.connector(id="1", max_voltage=1, last_updated=t(5)))
    assert result.stale and held(located, Location, LOC) == a_location(10)


def test_patch_of_a_connector_merges_and_moves_evse_and_location(located):
    push(located, "patch_location", CC, PID, LOC, {"max_electric_power": 50000, "last_updated": t(20)},
         evse_uid=EVSE, connector_id="1")
    body = held(located, Location, LOC)
    assert connector_of(body)["max_electric_power"] == 50000
    assert connector_of(body)["standard"] == "IEC_62196_T2_COMBO"
    assert connector_of(body, "2") == a_location(10)["evses"][0]["connectors"][1]
    assert (connector_of(body)["last_updated"], evse_of(body)["last_updated"], body["last_updated"]) == (
        t(20), t(20), t(20))


def test_patch_of_a_connector_never_moves_its_parents_back(app):
    push(app, "put_location", CC, PID, LOC, location_with_times(location=30, evse=20, connector=5))
    push(app, "patch_location", CC, PID, LOC, {"max_voltage": 400, "last_updated": t(10)},
         evse_uid=EVSE, connector_id="1")
    body = held(app, Location, LOC)
    assert connector_of(body)["max_voltage"] == 400 and connector_of(body)["last_updated"] == t(10)
    assert evse_of(body)["last_updated"] == t(20) and body["last_updated"] == t(30)


def test_older_patch_of_a_connector_changes_nothing(located):
    result = push(located, "patch_location", CC, PID, LOC, {"max_voltage": 1, "last_updated": t(9)},
                  evse_uid=EVSE, connector_id="1")
    assert result.stale and held(located, Location, LOC) == a_location(10)


def test_patch_of_an_unknown_connector_is_404_2003_naming_it(located):
    with pytest.raises(NotFound) as refused:
        push(located, "patch_location", CC, PID, LOC, {"max_voltage": 1, "last_updated": t(20)},
             evse_uid=EVSE, connector_id="7")
    assert (refused.value.http_status, refused.value.status_code) == (404, OcpiStatus.UNKNOWN_LOCATION)
    assert refused.value.message == f"unknown connector 7 of EVSE {EVSE} at location {CC}/{PID}/{LOC}"


def test_a_refused_push_stores_nothing(located):
    before = events(located)
    with pytest.raises(NotFound):
        push(located, "patch_location", CC, PID, LOC, {"status": "X", "last_updated": t(20)}, evse_uid="NONE")
    assert events(located) == before


# Tariffs ---------------------------------------------------------------------------
def tariff(minute: int, **overrides) -> dict:
    return ex.tariff(id="T1", last_updated=t(minute), **overrides)


def test_tariff_put_replace_and_stale(app):
    assert push(app, "put_tariff", CC, PID, "T1", tariff(10)).created
    assert not push(app, "put_tariff", CC, PID, "T1", tariff(20, currency="EUR")).created
    assert push(app, "put_tariff", CC, PID, "T1", tariff(15, currency="USD")).stale
    assert held(app, Tariff, "T1") == tariff(20, currency="EUR")


def test_deleted_tariff_comes_back_with_a_newer_put_as_created(app):
    push(app, "put_tariff", CC, PID, "T1", tariff(10))
    push(app, "delete_tariff", CC, PID, "T1")
    assert Pushes(app).get(Tariff, CC, PID, "T1").deleted
    result = push(app, "put_tariff", CC, PID, "T1", tariff(20))
    assert result.created and not Pushes(app).get(Tariff, CC, PID, "T1").deleted


def test_older_put_does_not_bring_a_deleted_tariff_back(app):
    push(app, "put_tariff", CC, PID, "T1", tariff(10))
    push(app, "delete_tariff", CC, PID, "T1")
    assert push(app, "put_tariff", CC, PID, "T1", tariff(5)).stale
    assert Pushes(app).get(Tariff, CC, PID, "T1").deleted


@pytest.mark.parametrize("deleted_before", [False, True])
def test_delete_of_an_unknown_or_deleted_tariff_is_404_2001(app, deleted_before):
    if deleted_before:
        push(app, "put_tariff", CC, PID, "T1", tariff(10))
        push(app, "delete_tariff", CC, PID, "T1")
    with pytest.raises(NotFound) as refused:
        push(app, "delete_tariff", CC, PID, "T1")
    assert (refused.value.http_status, refused.value.status_code) == (404, OcpiStatus.INVALID_PARAMETERS)
    assert refused.value.message == f"unknown tariff {CC}/{PID}/T1"


# Sessions --------------------------------------------------------------------------
def session(minute: int, **overrides) -> dict:
    return ex.session(id="S1", last_updated=t(minute), **overrides)


def test_session_patch_appends_charging_periods_and_replaces_other_fields(app):
    push(app, "put_session", CC, PID, "S1", session(10))
    period = {"start_date_time": t(11), "dimensions": [{"type": "ENERGY", "volume": 1.5}]}
    push(app, "patch_session", CC, PID, "S1", {"kwh": 30.0, "charging_periods": [period], "last_updated": t(20)})
    body = held(app, Session, "S1")
    assert body["kwh"] == 30.0 and body["last_updated"] == t(20)
    assert body["charging_periods"] == [*session(10)["charging_periods"], period]


def test_session_patch_with_no_charging_periods_keeps_them(app):
    push(app, "put_session", CC, PID, "S1", session(10))
    push(app, "patch_session", CC, PID, "S1", {"charging_periods": [], "last_updated": t(20)})
    assert held(app, Session, "S1")["charging_periods"] == session(10)["charging_periods"]


def test_older_session_patch_and_put_change_nothing(app):
    push(app, "put_session", CC, PID, "S1", session(10))
    assert push(app, "patch_session", CC, PID, "S1", {"status": "COMPLETED", "last_updated": t(9)}).stale
    assert push(app, "put_session", CC, PID, "S1", session(9, status="COMPLETED")).stale
    assert held(app, Session, "S1") == session(10)


def test_patch_of_an_unknown_session_is_404_2001(app):
    with pytest.raises(NotFound) as refused:
        push(app, "patch_session", CC, PID, "S9", {"status": "COMPLETED", "last_updated": t(1)})
    assert (refused.value.http_status, refused.value.status_code) == (404, OcpiStatus.INVALID_PARAMETERS)
    assert refused.value.message == f"unknown session {CC}/{PID}/S9; PUT the Session first"


# Tokens (pushed by eMSPs) ----------------------------------------------------------
EMSP = ("IN", "EMP")


def token(minute: int, uid: str = "U1", **overrides) -> dict:
    return ex.token(uid=uid, last_updated=t(minute), **overrides)


def test_tokens_are_keyed_by_uid_and_type(app):
    push(app, "put_token", *EMSP, "U1", "RFID", token(10))
    push(app, "put_token", *EMSP, "U1", "APP_USER", token(10, type="APP_USER"))
    assert held(app, Token, "U1|RFID", *EMSP)["type"] == token(10)["type"]
    assert held(app, Token, "U1|APP_USER", *EMSP)["type"] == "APP_USER"
    assert held(app, Token, "u1|rfid", *EMSP) == token(10)  # CiString uid and type


def test_token_patch_merges_and_the_stale_guard_holds(app):
    push(app, "put_token", *EMSP, "U1", "RFID", token(10))
    push(app, "patch_token", *EMSP, "U1", "RFID", {"valid": False, "last_updated": t(20)})
    assert push(app, "patch_token", *EMSP, "U1", "RFID", {"valid": True, "last_updated": t(15)}).stale
    body = held(app, Token, "U1|RFID", *EMSP)
    assert body["valid"] is False and body["last_updated"] == t(20)
    assert body["contract_id"] == token(10)["contract_id"]


def test_older_token_put_changes_nothing(app):
    push(app, "put_token", *EMSP, "U1", "RFID", token(10))
    assert push(app, "put_token", *EMSP, "U1", "RFID", token(5, valid=False)).stale
    assert held(app, Token, "U1|RFID", *EMSP) == token(10)


def test_patch_of_an_unknown_token_is_404_2004(app):
    with pytest.raises(NotFound) as refused:
        push(app, "patch_token", *EMSP, "U9", "RFID", {"valid": False, "last_updated": t(1)})
    assert (refused.value.http_status, refused.value.status_code) == (404, OcpiStatus.UNKNOWN_TOKEN)
    assert refused.value.message == "unknown token IN/EMP/U9 of type RFID; PUT the Token first"


# CDRs ------------------------------------------------------------------------------
def test_cdr_is_stored_once(app):
    body = ex.cdr(id="C1")
    assert push(app, "post_cdr", body).created
    assert held(app, Cdr, "C1") == body


def test_repeated_identical_cdr_is_accepted_but_not_stored_again(app):
    body = ex.cdr(id="C1")
    push(app, "post_cdr", body)
    again = push(app, "post_cdr", dict(body))
    assert again.repeated and not again.created
    assert held(app, Cdr, "C1") == body
    assert events(app)[-2:] == ["Posted", "RepeatIgnored"]


def test_repeated_cdr_with_other_content_is_2001_naming_the_id(app):
    body = ex.cdr(id="C1")
    push(app, "post_cdr", body)
    with pytest.raises(InvalidParameters) as refused:
        push(app, "post_cdr", {**body, "total_energy": 999.0})
    assert refused.value.status_code == OcpiStatus.INVALID_PARAMETERS and refused.value.http_status == 200
    assert refused.value.message.startswith("id: CDR IN/ECP/C1 was already received with different content")
    assert "send a credit CDR instead" in refused.value.message
    assert held(app, Cdr, "C1") == body


def test_a_cdr_never_counts_as_stale(app):
    push(app, "post_cdr", ex.cdr(id="C1", last_updated=t(10)))
    second = push(app, "post_cdr", ex.cdr(id="C2", last_updated=t(1)))
    assert second.created and held(app, Cdr, "C2")["last_updated"] == t(1)
