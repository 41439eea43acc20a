"""``check()`` (hub/services/operators/check.py) against partner servers on 127.0.0.1: a conforming
CPO and eMSP pass every check; each defect is named in its row; ``write`` needs a test party."""

from __future__ import annotations

import json

import pytest

from hub.infra.client import OcpiClient
from hub.services.application import Hub
from hub.services.operators import OperatorError
from hub.services.operators.check import check
from hub.services.operators.names import PartyName
from hub.services.operators.parties import set_testing
from tests.conformance_partners import connect, role

CPO = [role("CPO", "IN", "ECP")]
EMSP = [role("EMSP", "IN", "EMP")]


@pytest.fixture
def app(settings):
    app = Hub(settings, settings.database_url, pool_size=2)
    yield app
    app.close()


@pytest.fixture
def client(settings):
    client = OcpiClient(read_timeout=5, guard=settings.outbound_guard())
    yield client
    client.close()


@pytest.fixture
def partners():
    started = []
    yield started
    for partner in started:
        partner.stop()


def _connect(hub, partners, roles, **options):
    partner = connect(hub, roles, **options)
    partners.append(partner)
    return partner


def rows(report, verdict=None, step=None, module=None):
    return [r for r in report.rows if (verdict is None or r["verdict"] == verdict)
            and (step is None or r["step"] == step) and (module is None or r["module"] == module)]


def one_failure(report, step, module):
    """The one failed row of the report: at ``step`` for ``module``."""
    failed = rows(report, "fail")
    assert [(r["step"], r["module"]) for r in failed] == [(step, module)], failed
    return failed[0]


def test_a_conforming_cpo_and_emsp_pass_every_check(hub, settings, app, client, partners):
    cpo = _connect(hub, partners, CPO)
    _connect(hub, partners, EMSP)
    seen = []
    report = check(app, client, PartyName("IN", "ECP"), progress=seen.append, by_operator="alice")
    assert report.ok and not rows(report, "fail") and not rows(report, "warn"), report.rows
    assert seen == report.rows and all(isinstance(r["ms"], float) for r in rows(report, step="answers")
                                       if r["verdict"] != "skip")
    probed = {(r["module"], r["interface"]) for r in rows(report, step="answers")}
    assert probed == set(cpo.published())  # every published interface got a row
    assert {r["module"] for r in rows(report, "pass", "sample")} == {"credentials", "locations", "tariffs",
                                                                     "sessions", "cdrs"}
    paging = rows(report, "pass", "paging", "locations")[0]
    assert paging["detail"] == "X-Total-Count 5, X-Limit 2, followed 3 pages"
    assert {r["module"] for r in rows(report, "skip")} == {"commands", "chargingprofiles"}
    # The calls went as the hub's do: the token the CPO gave, OCPI-to the CPO, one correlation id.
    gets = cpo.requests_to("/ocpi/2.2.1/locations/sender", "GET")
    assert gets[0].token == cpo.token_for_hub and gets[0].header("OCPI-to-party-id") == "ECP"
    assert gets[0].header("X-Correlation-ID") == report.correlation_id
    unknown = cpo.requests_to("/ocpi/2.2.1/tokens/receiver/IN/CIH/CIH-CHECK-NONE-", "GET")
    assert len(unknown) == 1 and unknown[0].query == "type=RFID"
    as_dict = json.loads(json.dumps(report.as_dict()))
    assert as_dict["ok"] is True and as_dict["party"] == "IN/ECP/CPO" and as_dict["counts"]["fail"] == 0

    emsp = check(app, client, PartyName("IN", "EMP", "EMSP"))
    assert emsp.ok, rows(emsp, "fail")
    assert rows(emsp, "pass", "sample", "tokens") and rows(emsp, "pass", "answers", "locations")


def test_a_location_missing_a_field_and_with_a_wrong_type_is_named_by_path(hub, app, client, partners):
    cpo = _connect(hub, partners, CPO)
    bad = cpo.held["locations"]
    del bad[0]["address"]
    bad[1]["coordinates"]["latitude"] = 12.9716
    report = check(app, client, PartyName("IN", "ECP"), modules=["locations"])
    row = one_failure(report, "sample", "locations")
    assert "data[0].address: field required" in row["detail"]
    assert "data[1].coordinates.latitude" in row["detail"]
    assert not report.ok


def test_a_module_answering_html_404_and_one_answering_no_envelope(hub, app, client, partners):
    cpo = _connect(hub, partners, CPO)
    cpo.html_404 = ("tariffs",)
    report = check(app, client, PartyName("IN", "ECP"), modules=["tariffs"])
    row = one_failure(report, "answers", "tariffs")
    assert "HTTP 404 (text/html), not an OCPI envelope" in row["detail"]

    cpo.html_404, cpo.not_envelope = (), ("tokens",)  # the CPO's Tokens RECEIVER
    report = check(app, client, PartyName("IN", "ECP"), modules=["tokens"])
    row = one_failure(report, "answers", "tokens")
    assert row["interface"] == "RECEIVER" and "HTTP 200 (application/json), not an OCPI envelope" in row["detail"]


def test_wrong_total_count_and_missing_link_on_a_paged_sender(hub, app, client, partners):
    cpo = _connect(hub, partners, CPO)
    cpo.total_off = 3
    report = check(app, client, PartyName("IN", "ECP"), modules=["locations"])
    assert "X-Total-Count 8 but the pages hold 5 objects" in one_failure(report, "paging", "locations")["detail"]

    cpo.total_off, cpo.drop_link = 0, True
    report = check(app, client, PartyName("IN", "ECP"), modules=["locations"])
    detail = one_failure(report, "paging", "locations")["detail"]
    assert "Link missing: X-Total-Count 5, the first page holds 2" in detail


def test_interfaces_the_role_needs_or_does_not_offer(hub, app, client, partners):
    _connect(hub, partners, CPO, unpublish=(("locations", "SENDER"), ("tokens", "RECEIVER")),
             extra=(("tokens", "SENDER"),))
    report = check(app, client, PartyName("IN", "ECP"), modules=["credentials"])  # roles are always checked
    row = one_failure(report, "roles", "locations")
    assert row["interface"] == "SENDER" and row["detail"].startswith("missing, required of a party of role CPO")
    warned = {(r["module"], r["interface"]): r["detail"] for r in rows(report, "warn", "roles")}
    assert warned[("tokens", "RECEIVER")] == "missing: the hub delivers it there"
    assert "no role of this platform (CPO) offers tokens SENDER" in warned[("tokens", "SENDER")]
    assert not report.ok


@pytest.mark.parametrize("defect", ["versions", "details"])
def test_no_2_2_1_in_the_versions_or_the_details(hub, app, client, partners, defect):
    cpo = _connect(hub, partners, CPO)
    if defect == "versions":
        cpo.version_list = [{"version": "2.1.1", "url": f"{cpo.base}/ocpi/2.1.1"}]
    else:
        cpo.details_version = "2.2"
    report = check(app, client, PartyName("IN", "ECP"))
    assert not report.ok and report.rows[-1]["verdict"] == "fail"
    if defect == "versions":
        assert report.rows == [report.rows[-1]] and report.rows[0]["step"] == "versions"
        assert report.rows[0]["detail"] == "the versions list has no 2.2.1 (it lists 2.1.1)"
    else:
        assert [r["step"] for r in report.rows] == ["versions", "details"]
        assert "are for version '2.2', not 2.2.1" in report.rows[1]["detail"]


def test_malformed_details_are_named_field_by_field_not_a_crash(hub, app, client, partners):
    cpo = _connect(hub, partners, CPO)
    cpo.details_data = {"version": "2.2.1", "endpoints": [
        {"identifier": "locations", "role": "SENDER", "url": "not a url"},
        {"identifier": {"x": 1}, "role": "SENDER", "url": 5}, "junk"]}
    report = check(app, client, PartyName("IN", "ECP"))
    failed = {(r["step"], r["module"]): r["detail"] for r in rows(report, "fail")}
    assert "data.endpoints[1].identifier" in failed[("details", "versions")]
    assert "data.endpoints[2]" in failed[("details", "versions")]
    assert failed[("endpoints", None)] == "locations SENDER: url 'not a url' is not an absolute http(s) URL"
    assert failed[("answers", "locations")] == "not probed: its url 'not a url' is not a URL"
    assert failed[("roles", "tariffs")].startswith("missing, required")


def test_write_needs_a_test_party_and_names_a_receiver_that_refuses(hub, app, client, partners):
    emsp = _connect(hub, partners, EMSP)
    name = PartyName("IN", "EMP")
    with pytest.raises(OperatorError, match=r"not a test party.*hub parties test-mode IN/EMP/EMSP on"):
        check(app, client, name, write=True)
    assert not emsp.requests_to("/ocpi/2.2.1/locations/receiver", "PUT")  # nothing was sent

    set_testing(app, name, True)
    report = check(app, client, name, write=True)
    assert report.ok, rows(report, "fail")
    written = {r["module"] for r in rows(report, "pass", "write")}
    assert written == {"locations", "tariffs", "sessions", "cdrs"}
    assert {r["module"] for r in rows(report, "pass", "cleanup")} == {"locations", "tariffs", "sessions"}
    assert rows(report, "warn", "cleanup", "cdrs")  # a CDR cannot be withdrawn: said, not hidden
    (put,) = [r for r in emsp.requests_to("/ocpi/2.2.1/locations/receiver", "PUT")][:1]
    assert "/IN/CIH/CIH-CHECK-LOC-" in put.path and put.body["id"].startswith("CIH-CHECK-LOC-")
    location = emsp.objects[put.path]  # what stays at the partner: unpublished, EVSE REMOVED
    assert location["publish"] is False and location["evses"][0]["status"] == "REMOVED"
    assert not [p for p in emsp.objects if "/tariffs/" in p]  # the Tariff was deleted

    emsp.refuse_writes = ("sessions",)
    report = check(app, client, name, write=True, modules=["sessions"])
    row = one_failure(report, "write", "sessions")
    assert "refused a well-formed test object CIH-CHECK-SES-" in row["detail"] and "status 2001" in row["detail"]

    set_testing(app, name, False)
    with pytest.raises(OperatorError, match="not a test party"):
        check(app, client, name, write=True)


def test_what_cannot_be_checked_is_refused_with_the_fix(hub, app, client, partners):
    with pytest.raises(OperatorError, match=r"no party IN/NOP"):
        check(app, client, PartyName("IN", "NOP"))
    hub.onboard("CPO", "IN", "NEW")
    with pytest.raises(OperatorError, match=r"IN/NEW/CPO has not registered"):
        check(app, client, PartyName("IN", "NEW"))
    with pytest.raises(OperatorError, match=r"--module parking: must be one of"):
        check(app, client, PartyName("IN", "NEW"), modules=["parking"])
    with pytest.raises(OperatorError, match=r"no party IN/NEW/EMSP"):
        check(app, client, PartyName("IN", "NEW"), role="emsp")
    with pytest.raises(OperatorError, match=r"IN/NEW/CPO names the role CPO but --role says EMSP"):
        check(app, client, PartyName("IN", "NEW", "CPO"), role="EMSP")


def test_write_to_a_cpo_sends_a_test_token_and_makes_it_invalid(hub, app, client, partners):
    cpo = _connect(hub, partners, CPO)
    set_testing(app, PartyName("IN", "ECP", "CPO"), True)
    report = check(app, client, PartyName("IN", "ECP"), write=True, modules=["tokens"])
    assert report.ok and [(r["step"], r["verdict"]) for r in rows(report, module="tokens")
                          if r["step"] in ("write", "cleanup")] == [("write", "pass"), ("cleanup", "pass")]
    (put,) = cpo.requests_to("/ocpi/2.2.1/tokens/receiver/IN/CIH/CIH-CHECK-TOK-", "PUT")
    assert put.query == "type=RFID" and put.body["uid"] == put.path.rsplit("/", 1)[1]
    assert cpo.objects[put.path]["valid"] is False  # what stays at the CPO cannot authorize anything
