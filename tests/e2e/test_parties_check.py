"""``hub parties check`` as an operator and a script run it: a child process against partner
servers on 127.0.0.1 that registered with the hub."""

from __future__ import annotations

import json

import pytest

from tests.cli import run_hub
from tests.conformance_partners import connect, role


@pytest.fixture
def partners():
    started = []
    yield started
    for partner in started:
        partner.stop()


def test_a_conforming_partner_passes_exit_0_and_json_lists_every_module(hub, settings, partners):
    cpo = connect(hub, [role("CPO", "IN", "ECP")])
    partners.append(cpo)
    done = run_hub(settings, "parties", "check", "IN/ECP", "--json")
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["party"] == "IN/ECP/CPO" and report["counts"]["fail"] == 0
    assert {(r["module"], r["interface"]) for r in report["rows"] if r["step"] == "answers"} == set(cpo.published())
    assert all(set(r) == {"step", "module", "interface", "verdict", "detail", "ms"} for r in report["rows"])
    assert "answers locations SENDER: pass" in done.stderr  # progress for people, on stderr
    # The run is the operator's action in the audit trail, with each call it made to the partner.
    trace = json.loads(run_hub(settings, "audit", "trace", report["correlation_id"], "--json").stdout)
    steps = [s["step"] for s in trace]
    calls = [r for r in cpo.received if r.header("X-Correlation-ID") == report["correlation_id"]]
    checks = [s for s in steps if s.startswith("check")]  # "check (failed)": a 2003 for the unknown object
    assert steps.count("operator action") == 1 and len(checks) == len(calls) > 10, trace

    table = run_hub(settings, "parties", "check", "IN/ECP/CPO", "--quiet")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["STEP", "MODULE", "INTERFACE", "VERDICT", "MS", "DETAIL"]
    assert any(line.split()[:4] == ["sample", "locations", "SENDER", "pass"] for line in lines)
    assert "IN/ECP/CPO: conforms" in table.stdout and table.stderr == ""


def test_a_defect_is_named_and_exits_1(hub, settings, partners):
    cpo = connect(hub, [role("CPO", "IN", "ECP")])
    partners.append(cpo)
    del cpo.held["locations"][2]["time_zone"]
    done = run_hub(settings, "parties", "check", "IN/ECP", "--module", "locations", "--json", ok=False)
    assert done.returncode == 1, done.stderr
    failed = [r for r in json.loads(done.stdout)["rows"] if r["verdict"] == "fail"]
    assert [(r["step"], r["module"], r["detail"]) for r in failed] == [
        ("sample", "locations", "page 2 data[0].time_zone: field required")]  # found on the page Link led to


def test_write_is_refused_until_test_mode_is_on(hub, settings, partners):
    emsp = connect(hub, [role("EMSP", "IN", "EMP")])
    partners.append(emsp)
    refused = run_hub(settings, "parties", "check", "IN/EMP", "--write", ok=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("hub: IN/EMP/EMSP is not a test party") and refused.stderr.count("\n") == 1
    assert "`hub parties test-mode IN/EMP/EMSP on`" in refused.stderr
    assert not emsp.requests_to("/ocpi/2.2.1/locations/receiver", "PUT")

    on = json.loads(run_hub(settings, "parties", "test-mode", "IN/EMP", "on", "--json").stdout)
    assert on["testing"] is True
    assert json.loads(run_hub(settings, "parties", "show", "IN/EMP", "--json").stdout)["testing"] is True
    done = run_hub(settings, "parties", "check", "IN/EMP", "--write", "--json")
    writes = [r for r in json.loads(done.stdout)["rows"] if r["step"] == "write"]
    assert {r["module"] for r in writes if r["verdict"] == "pass"} == {"locations", "tariffs", "sessions", "cdrs"}
    assert emsp.requests_to("/ocpi/2.2.1/locations/receiver/IN/CIH/CIH-CHECK-LOC-", "PUT")

    run_hub(settings, "parties", "test-mode", "IN/EMP", "off")
    assert run_hub(settings, "parties", "check", "IN/EMP", "--write", ok=False).returncode == 1


def test_add_test_and_what_cannot_run(settings):
    added = json.loads(run_hub(settings, "parties", "add", "IN/TST/EMSP", "--name", "Test", "--test",
                               "--json").stdout)
    assert added["testing"] is True
    assert "testing" in run_hub(settings, "parties", "show", "IN/TST").stdout
    plain = json.loads(run_hub(settings, "parties", "add", "IN/PRD/CPO", "--name", "Live", "--json").stdout)
    assert plain["testing"] is False
    unknown = run_hub(settings, "parties", "check", "IN/NOP", ok=False)
    assert unknown.returncode == 1 and unknown.stderr == "hub: no party IN/NOP (`hub parties list` shows every party)\n"
    planned = run_hub(settings, "parties", "check", "IN/TST", ok=False)
    assert planned.returncode == 1 and "IN/TST/EMSP has not registered" in planned.stderr
    usage = run_hub(settings, "parties", "check", "INTST", ok=False)
    assert usage.returncode == 2 and usage.stderr.startswith("hub: ")
