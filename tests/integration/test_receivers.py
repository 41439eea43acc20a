"""The RECEIVER interfaces CPOs push to: Locations, Tariffs, Sessions, CDRs.

Everything goes through real HTTP, as a CPO back office would call the hub:
what is pushed is what the hub holds (unknown fields and ``last_updated``
included), bad pushes are refused with 2001 and leave nothing behind, and
every answer carries the routing headers and the caller's ``X-Request-ID``.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests import ocpi_examples as ex
from tests.partner import role

OCPI = "/ocpi/2.2.1"
LOC = "locations/receiver/IN/ECP/LOC-BLR-0001"
TRF = "tariffs/receiver/IN/ECP/TRF-DC-01"
SES = "sessions/receiver/IN/ECP/SES-20240315-0001"
CDR = "cdrs/receiver/IN/ECP/CDR-20240315-0001"
T0 = ex.LAST_UPDATED  # 2024-03-15T06:30:00Z
T1, T2, T3 = "2024-03-15T07:00:00Z", "2024-03-15T08:00:00Z", "2024-03-15T09:00:00Z"
OLDER = "2024-03-14T06:30:00Z"


@pytest.fixture
def emsp(hub):
    """IN/EMP, the eMSP of the examples' cdr_token: Sessions and CDRs are accepted
    only for an eMSP the hub can deliver them to."""
    partner = hub.connect_partner([role("EMSP", "IN", "EMP")])
    yield partner
    partner.stop()


@pytest.fixture
def cpo(hub, emsp):
    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    yield partner
    partner.stop()


def push(hub, partner, method, path, body=None, *, sender=("IN", "ECP"), to=("IN", "CIH"),
         request_id=None):
    """One request from ``sender``, addressed to the hub unless ``to`` says otherwise."""
    headers = {
        "OCPI-from-country-code": sender[0], "OCPI-from-party-id": sender[1],
        "OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1],
        "X-Request-ID": request_id or str(uuid.uuid4()), "X-Correlation-ID": str(uuid.uuid4()),
    }
    url = path if path.startswith("http") else f"{OCPI}/{path}"
    return hub.call(method, url, partner.hub_token, json=body, headers=headers)


def ok(response, http_status=200):
    body = response.json()
    assert (response.status_code, body["status_code"]) == (http_status, 1000), body
    return body


def refused(response, status_code=2001, http_status=200):
    body = response.json()
    assert (response.status_code, body["status_code"]) == (http_status, status_code), body
    return body


def data(hub, partner, path):
    return ok(push(hub, partner, "GET", path))["data"]


def object_events(settings, topic_suffix=""):
    """Domain events of pushed objects in the hub's log (optionally one kind only)."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        (count,) = conn.execute(
            "SELECT count(*) FROM hub_events WHERE topic LIKE %s",
            (f"hub.domain.objects:%{topic_suffix}",),
        ).fetchone()
    return count


# Stored exactly as pushed -----------------------------------------------------------

def test_location_create_replace_and_read_back_exactly(hub, cpo):
    first = ex.location(x_partner_note={"kept": ["as", "sent"]}, name="MG Road")
    ok(push(hub, cpo, "PUT", LOC, first), 201)
    assert data(hub, cpo, LOC) == first

    second = ex.location(last_updated=T1, name="MG Road Metro", x_other=1)
    ok(push(hub, cpo, "PUT", LOC, second), 200)
    assert data(hub, cpo, LOC) == second
    assert data(hub, cpo, LOC + "/EVSE-BLR-0001-1") == second["evses"][0]
    assert data(hub, cpo, LOC + "/EVSE-BLR-0001-1/2") == second["evses"][0]["connectors"][1]


def test_evse_put_and_connector_patch_move_the_parents_last_updated(hub, cpo):
    ok(push(hub, cpo, "PUT", LOC, ex.location()), 201)

    new_evse = ex.evse(uid="EVSE-BLR-0001-3", evse_id="IN*ECP*E0001*3", last_updated=T1)
    ok(push(hub, cpo, "PUT", LOC + "/EVSE-BLR-0001-3", new_evse), 201)
    assert data(hub, cpo, LOC + "/EVSE-BLR-0001-3") == new_evse
    location = data(hub, cpo, LOC)
    assert location["last_updated"] == T1
    assert [e["uid"] for e in location["evses"]] == ["EVSE-BLR-0001-1", "EVSE-BLR-0001-2", "EVSE-BLR-0001-3"]

    ok(push(hub, cpo, "PATCH", LOC + "/EVSE-BLR-0001-1/1", {"max_electric_power": 50000, "last_updated": T2}))
    connector = data(hub, cpo, LOC + "/EVSE-BLR-0001-1/1")
    assert connector == {**ex.connector(), "max_electric_power": 50000, "last_updated": T2}
    assert data(hub, cpo, LOC + "/EVSE-BLR-0001-1")["last_updated"] == T2
    location = data(hub, cpo, LOC)
    assert location["last_updated"] == T2
    # The sibling EVSEs keep their own last_updated.
    assert location["evses"][1]["last_updated"] == T0
    assert location["evses"][2] == new_evse


def test_tariff_create_replace_delete(hub, cpo):
    first = ex.tariff(x_gst_note="18 % GST")
    ok(push(hub, cpo, "PUT", TRF, first), 201)
    assert data(hub, cpo, TRF) == first

    second = ex.tariff(last_updated=T1, currency="INR", min_price=ex.DROP)
    ok(push(hub, cpo, "PUT", TRF, second), 200)
    assert data(hub, cpo, TRF) == second

    ok(push(hub, cpo, "DELETE", TRF))
    refused(push(hub, cpo, "GET", TRF), 2001, 404)
    refused(push(hub, cpo, "DELETE", TRF), 2001, 404)

    # A Tariff PUT after its DELETE creates it again.
    third = ex.tariff(last_updated=T2)
    ok(push(hub, cpo, "PUT", TRF, third), 201)
    assert data(hub, cpo, TRF) == third


def test_tariffs_have_no_patch(hub, cpo):
    ok(push(hub, cpo, "PUT", TRF, ex.tariff()), 201)
    response = push(hub, cpo, "PATCH", TRF, {"currency": "EUR", "last_updated": T1})
    assert response.status_code == 405
    assert response.json()["status_code"] == 2000
    assert data(hub, cpo, TRF) == ex.tariff()


def test_session_put_patch_appends_periods_and_put_replaces_them(hub, cpo):
    p1, p2 = ex.session()["charging_periods"]
    p3 = {"start_date_time": "2024-03-15T06:00:00Z", "dimensions": [{"type": "ENERGY", "volume": 3.5}],
          "x_meter_reading": "kept"}
    first = ex.session(charging_periods=[p1, p2], x_vehicle="Nexon EV")
    ok(push(hub, cpo, "PUT", SES, first), 201)
    assert data(hub, cpo, SES) == first

    ok(push(hub, cpo, "PATCH", SES, {"kwh": 25.75, "charging_periods": [p3], "last_updated": T1}))
    session = data(hub, cpo, SES)
    assert session["charging_periods"] == [p1, p2, p3]
    assert session == {**first, "kwh": 25.75, "charging_periods": [p1, p2, p3], "last_updated": T1}

    # A PATCH with an empty list of periods leaves them as they are.
    ok(push(hub, cpo, "PATCH", SES, {"charging_periods": [], "last_updated": T2}))
    assert data(hub, cpo, SES)["charging_periods"] == [p1, p2, p3]

    # A PUT replaces everything, charging_periods included.
    completed = ex.session(status="COMPLETED", end_date_time=T3, charging_periods=ex.DROP, last_updated=T3)
    ok(push(hub, cpo, "PUT", SES, completed), 200)
    session = data(hub, cpo, SES)
    assert session == completed
    assert not session.get("charging_periods")


def test_cdr_post_location_header_and_repeats(hub, cpo, settings):
    cdr = ex.cdr(x_billing_ref="INV-2024-03-0042")
    response = push(hub, cpo, "POST", "cdrs/receiver", cdr)
    ok(response, 201)
    location = response.headers["Location"]
    assert location == f"{settings.module_url('cdrs/receiver')}/IN/ECP/CDR-20240315-0001"
    assert data(hub, cpo, location) == cdr

    again = push(hub, cpo, "POST", "cdrs/receiver", ex.cdr(x_billing_ref="INV-2024-03-0042"))
    body = ok(again, 200)
    assert body.get("status_message")
    assert again.headers["Location"] == location
    assert object_events(settings, "Cdr.Posted") == 1

    different = push(hub, cpo, "POST", "cdrs/receiver", ex.cdr(total_energy=99.0))
    assert "id" in refused(different)["status_message"]
    assert "Location" not in different.headers
    assert data(hub, cpo, location) == cdr
    assert object_events(settings, "Cdr.Posted") == 1


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_cdrs_are_immutable(hub, cpo, method):
    ok(push(hub, cpo, "POST", "cdrs/receiver", ex.cdr()), 201)
    body = None if method == "DELETE" else ex.cdr(total_energy=1.0)
    response = push(hub, cpo, method, CDR, body)
    assert response.status_code == 405
    assert response.json()["status_code"] == 2000
    assert data(hub, cpo, CDR) == ex.cdr()


def test_unknown_objects_are_404(hub, cpo):
    refused(push(hub, cpo, "GET", LOC), 2003, 404)
    refused(push(hub, cpo, "GET", TRF), 2001, 404)
    refused(push(hub, cpo, "GET", SES), 2001, 404)
    refused(push(hub, cpo, "GET", CDR), 2001, 404)
    # PATCH of something never PUT: HTTP 404 with the module's code.
    refused(push(hub, cpo, "PATCH", LOC, {"name": "x", "last_updated": T1}), 2003, 404)
    refused(push(hub, cpo, "PATCH", LOC + "/EVSE-X", {"status": "BLOCKED", "last_updated": T1}), 2003, 404)
    refused(push(hub, cpo, "PATCH", SES, {"kwh": 1, "last_updated": T1}), 2001, 404)


# Invalid pushes: 2001 and nothing stored --------------------------------------------

CASES = {
    # module: (method, url, example factory, missing field, (enum field, bad value), too-long field)
    "locations": ("PUT", LOC, ex.location, "address", ("parking_type", "GARAGE"), "name"),
    "tariffs": ("PUT", TRF, ex.tariff, "currency", ("type", "CHEAP"), "tariff_alt_url"),
    "sessions": ("PUT", SES, ex.session, "kwh", ("status", "RUNNING"), "meter_id"),
    "cdrs": ("POST", "cdrs/receiver", ex.cdr, "total_cost", ("auth_method", "PIN"), "remark"),
}
READ_BACK = {"locations": (LOC, 2003), "tariffs": (TRF, 2001), "sessions": (SES, 2001), "cdrs": (CDR, 2001)}


def _with_owner(url: str, party_id: str) -> str:
    return url.replace("/IN/ECP/", f"/IN/{party_id}/")


def _with_id(url: str, object_id: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + object_id


def invalid_pushes(module: str):
    method, url, example, missing, (enum_field, bad), too_long = CASES[module]
    yield "missing required field", url, example(**{missing: ex.DROP}), missing
    yield "wrong enum", url, example(**{enum_field: bad}), enum_field
    yield "too long string", url, example(**{too_long: "x" * 256}), too_long
    yield "a datetime with an offset", url, example(last_updated="2024-03-15T06:30:00+00:00"), "last_updated"
    if method == "POST":
        yield "another party in the body", url, example(party_id="XYZ"), "IN/XYZ is not a CPO party"
        return
    yield "another party in the URL", _with_owner(url, "XYZ"), example(party_id="XYZ"), "IN/XYZ is not a CPO party"
    yield "body party_id differs from the URL", url, example(party_id="XYZ"), "party_id: 'XYZ' does not match"
    yield "URL id differs from the body id", _with_id(url, "OTHER-ID"), example(), "does not match the URL ('OTHER-ID')"


@pytest.mark.parametrize("module", list(CASES))
def test_invalid_pushes_are_2001_and_store_nothing(hub, cpo, settings, module):
    method = CASES[module][0]
    for case, url, body, named in invalid_pushes(module):
        answer = refused(push(hub, cpo, method, url, body))
        assert named in answer["status_message"], (case, answer)
    assert object_events(settings) == 0
    url, code = READ_BACK[module]
    refused(push(hub, cpo, "GET", url), code, 404)
    refused(push(hub, cpo, "GET", _with_id(url, "OTHER-ID")), code, 404)


def test_invalid_patches_change_nothing(hub, cpo):
    ok(push(hub, cpo, "PUT", LOC, ex.location()), 201)
    ok(push(hub, cpo, "PUT", SES, ex.session()), 201)
    for url in (LOC, LOC + "/EVSE-BLR-0001-1", LOC + "/EVSE-BLR-0001-1/1", SES):
        assert "last_updated" in refused(push(hub, cpo, "PATCH", url, {"kwh": 1}))["status_message"]
    refused(push(hub, cpo, "PATCH", LOC, {"parking_type": "GARAGE", "last_updated": T1}))
    refused(push(hub, cpo, "PATCH", LOC + "/EVSE-BLR-0001-1", {"status": "BROKEN", "last_updated": T1}))
    refused(push(hub, cpo, "PATCH", LOC, {"id": "LOC-OTHER", "last_updated": T1}))
    refused(push(hub, cpo, "PATCH", LOC, {"address": None, "last_updated": T1}))
    refused(push(hub, cpo, "PATCH", SES, {"status": "RUNNING", "last_updated": T1}))
    refused(push(hub, cpo, "PATCH", SES, {"party_id": "XYZ", "last_updated": T1}))
    refused(push(hub, cpo, "PATCH", SES, {"meter_id": "m" * 256, "last_updated": T1}))
    refused(push(hub, cpo, "PATCH", _with_owner(SES, "XYZ"), {"kwh": 1, "last_updated": T1}))
    assert data(hub, cpo, LOC) == ex.location()
    assert data(hub, cpo, SES) == ex.session()


PUSHES = {
    "locations": ("PUT", LOC, ex.location),
    "tariffs": ("PUT", TRF, ex.tariff),
    "sessions": ("PUT", SES, ex.session),
    "cdrs": ("POST", "cdrs/receiver", ex.cdr),
}


@pytest.mark.parametrize("module", list(PUSHES))
def test_an_emsp_cannot_push_client_owned_objects(hub, cpo, emsp, settings, module):
    method, url, example = PUSHES[module]
    # As itself (an eMSP party), and pretending to be the CPO of another connection.
    refused(push(hub, emsp, method, _with_owner(url, "EMP"), example(party_id="EMP"), sender=("IN", "EMP")))
    refused(push(hub, emsp, method, url, example(), sender=("IN", "EMP")))
    refused(push(hub, emsp, method, url, example(), sender=("IN", "ECP")))
    assert object_events(settings) == 0


def test_directed_sessions_and_cdrs_go_only_to_the_emsp_of_cdr_token(hub, cpo, settings):
    hub.connect_partner([role("EMSP", "IN", "EM2")])
    wrong, right = ("IN", "EM2"), ("IN", "EMP")
    assert "cdr_token" in refused(push(hub, cpo, "PUT", SES, ex.session(), to=wrong))["status_message"]
    refused(push(hub, cpo, "POST", "cdrs/receiver", ex.cdr(), to=wrong))
    assert object_events(settings) == 0

    ok(push(hub, cpo, "PUT", SES, ex.session(), to=right), 201)
    ok(push(hub, cpo, "POST", "cdrs/receiver", ex.cdr(), to=right), 201)
    # A PATCH without cdr_token is checked against the stored Session's eMSP.
    refused(push(hub, cpo, "PATCH", SES, {"kwh": 30, "last_updated": T1}, to=wrong))
    ok(push(hub, cpo, "PATCH", SES, {"kwh": 30, "last_updated": T1}, to=right))
    assert data(hub, cpo, SES)["kwh"] == 30


# Older pushes are acknowledged and ignored ------------------------------------------

def test_older_last_updated_is_1000_and_changes_nothing(hub, cpo, settings):
    ok(push(hub, cpo, "PUT", LOC, ex.location()), 201)
    ok(push(hub, cpo, "PUT", TRF, ex.tariff()), 201)
    ok(push(hub, cpo, "PUT", SES, ex.session()), 201)
    stale = [
        ("PUT", LOC, ex.location(name="Old name", last_updated=OLDER)),
        ("PUT", LOC + "/EVSE-BLR-0001-1", ex.evse(status="BLOCKED", last_updated=OLDER)),
        ("PATCH", LOC + "/EVSE-BLR-0001-1/1", {"max_voltage": 1, "last_updated": OLDER}),
        ("PUT", TRF, ex.tariff(currency="EUR", last_updated=OLDER)),
        ("PUT", SES, ex.session(kwh=1, last_updated=OLDER)),
        ("PATCH", SES, {"kwh": 1, "charging_periods": [], "last_updated": OLDER}),
    ]
    for method, url, body in stale:
        answer = ok(push(hub, cpo, method, url, body))
        assert "older" in answer["status_message"], (method, url, answer)
    assert data(hub, cpo, LOC) == ex.location()
    assert data(hub, cpo, TRF) == ex.tariff()
    assert data(hub, cpo, SES) == ex.session()
    assert object_events(settings, "StalePushIgnored") == len(stale)


# Headers on every answer ------------------------------------------------------------

def test_answers_carry_routing_headers_and_echo_the_request_id(hub, cpo):
    answers = [
        push(hub, cpo, "PUT", TRF, ex.tariff(), request_id="req-put-1"),
        push(hub, cpo, "PUT", TRF, ex.tariff(currency=ex.DROP), request_id="req-put-2"),
        push(hub, cpo, "GET", SES, request_id="req-get-3"),
        push(hub, cpo, "POST", "cdrs/receiver", ex.cdr(), request_id="req-post-4"),
        push(hub, cpo, "PATCH", CDR, {"last_updated": T1}, request_id="req-patch-5"),
    ]
    request_ids = ["req-put-1", "req-put-2", "req-get-3", "req-post-4", "req-patch-5"]
    assert [a.status_code for a in answers] == [201, 200, 404, 201, 405]
    assert [a.json()["status_code"] for a in answers] == [1000, 2001, 2001, 1000, 2000]
    for number, answer in enumerate(answers, start=1):
        assert answer.headers["X-Request-ID"] == request_ids[number - 1]
        assert answer.headers["OCPI-to-country-code"] == "IN"
        assert answer.headers["OCPI-to-party-id"] == "ECP"
        assert answer.headers["OCPI-from-country-code"] == "IN"
        assert answer.headers["OCPI-from-party-id"] == "CIH"


def test_version_details_list_the_receivers(hub, cpo):
    details = hub.call("GET", OCPI, cpo.hub_token).json()["data"]["endpoints"]
    receivers = {e["identifier"]: e["url"] for e in details if e["role"] == "RECEIVER"}
    for module in ("locations", "tariffs", "sessions", "cdrs"):
        assert receivers[module] == hub.settings.module_url(f"{module}/receiver") + "/"


def test_sessions_and_cdrs_for_an_emsp_the_hub_cannot_reach_are_refused(hub, cpo, settings):
    unknown = ex.session(cdr_token=ex.cdr_token(party_id="ZZZ"))
    assert refused(push(hub, cpo, "PUT", SES, unknown), 4001)["status_message"].endswith("IN/ZZZ")
    hub.onboard("EMSP", "IN", "PLN")  # onboarded, never registered
    planned = ex.cdr(cdr_token=ex.cdr_token(party_id="PLN"))
    assert "PLANNED" in refused(push(hub, cpo, "POST", "cdrs/receiver", planned), 4003)["status_message"]
    assert object_events(settings) == 0
