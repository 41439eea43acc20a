"""Naming a party on every command: CC/PID or CC/PID/ROLE; the old forms still work for one
release with a one-line deprecation note. And a command run where no hub database exists."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.cli import run_hub
from tests.partner import role


def deprecation(done: subprocess.CompletedProcess, new: str) -> None:
    """Exactly one note on stderr, naming the new form."""
    notes = [line for line in done.stderr.splitlines() if "deprecated" in line]
    assert len(notes) == 1 and new in notes[0], done.stderr
    assert notes[0].startswith("hub: deprecated: ")


def test_parties_old_and_new_forms(hub, settings):
    old = run_hub(settings, "parties", "add", "--role", "CPO", "--country-code", "in", "--party-id", "abc",
                  "--name", "ABC", "--json")
    deprecation(old, "hub parties add IN/ABC/CPO")
    assert json.loads(old.stdout)["party"] == "IN/ABC/CPO"
    new = run_hub(settings, "parties", "add", "IN/ABC/EMSP", "--name", "ABC", "--json")
    assert not new.stderr and json.loads(new.stdout)["party"] == "IN/ABC/EMSP"

    shown_old = run_hub(settings, "parties", "show", "IN", "ABC", "--role", "CPO", "--json")
    deprecation(shown_old, "hub parties show IN/ABC/CPO")
    shown_new = run_hub(settings, "parties", "show", "IN/ABC/CPO", "--json")
    assert not shown_new.stderr and json.loads(shown_old.stdout) == json.loads(shown_new.stdout)
    role_option = run_hub(settings, "parties", "show", "IN/ABC", "--role", "EMSP", "--json")
    deprecation(role_option, "hub parties show IN/ABC/EMSP")
    assert json.loads(role_option.stdout)["role"] == "EMSP"

    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        suspended = run_hub(settings, "parties", "suspend", "IN", "ECP", "--json")
        deprecation(suspended, "hub parties suspend IN/ECP")
        assert json.loads(suspended.stdout)["state"] == "SUSPENDED"
        resumed = run_hub(settings, "parties", "resume", "in", "ecp", "--json")
        deprecation(resumed, "hub parties resume IN/ECP")
        assert json.loads(resumed.stdout)["state"] == "CONNECTED"
        assert json.loads(run_hub(settings, "parties", "suspend", "IN/ECP/CPO", "--json").stdout)["state"] == (
            "SUSPENDED")
        resumed = run_hub(settings, "parties", "resume", "IN/ECP", "--json")
        assert not resumed.stderr and json.loads(resumed.stdout)["state"] == "CONNECTED"
    finally:
        partner.stop()

    for args in (("parties", "show", "ABC"), ("parties", "show", "IN", "ABC", "X"),
                 ("parties", "suspend", "IN/ABC/BOSS")):
        done = run_hub(settings, *args, ok=False)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_deliveries_old_and_new_forms(hub, settings):
    partner = hub.connect_partner([role("EMSP", "IN", "EMP"), role("NSP", "IN", "EMP")])
    try:
        new = json.loads(run_hub(settings, "deliveries", "replay", "IN/EMP", "--json").stdout)
        assert set(new["queued"]) == {"IN/EMP/EMSP", "IN/EMP/NSP"}
        old = run_hub(settings, "deliveries", "replay", "--party", "IN/EMP", "--json")
        deprecation(old, "hub deliveries replay IN/EMP")
        assert set(json.loads(old.stdout)["queued"]) == {"IN/EMP/EMSP", "IN/EMP/NSP"}
        one_role = json.loads(run_hub(settings, "deliveries", "replay", "IN/EMP/NSP", "--json").stdout)
        assert set(one_role["queued"]) == {"IN/EMP/NSP"}
        old_role = run_hub(settings, "deliveries", "replay", "--party", "IN/EMP", "--role", "nsp", "--json")
        assert "IN/EMP/NSP" in old_role.stderr
        assert set(json.loads(old_role.stdout)["queued"]) == {"IN/EMP/NSP"}
        unknown = run_hub(settings, "deliveries", "replay", "IN/NOP", ok=False)
        assert unknown.returncode == 1 and "no registered party IN/NOP" in unknown.stderr

        for party in ("IN/EMP", "IN/EMP/EMSP"):
            listed = run_hub(settings, "deliveries", "list", "--party", party, "--json")
            assert not listed.stderr and isinstance(json.loads(listed.stdout), list)
            retried = run_hub(settings, "deliveries", "retry", "--party", party, "--json")
            assert json.loads(retried.stdout) == {"requeued": []}
        bad = run_hub(settings, "deliveries", "list", "--party", "EMP", ok=False)
        assert bad.returncode == 2 and "--party 'EMP'" in bad.stderr
    finally:
        partner.stop()


def test_routing_and_audit_forms(settings, hub):
    hub.onboard("CPO", "IN", "ABC")
    hub.onboard("EMSP", "IN", "EMP")
    for cpo, emsp in (("IN/ABC", "IN/EMP"), ("IN/ABC/CPO", "in/emp/emsp")):
        made = json.loads(run_hub(settings, "routing", "deny", cpo, emsp, "--json").stdout)
        assert (made["cpo"], made["emsp"]) == ("IN/ABC/CPO", "IN/EMP/EMSP")
        explained = json.loads(run_hub(settings, "routing", "explain", emsp, cpo, "--module", "tokens",
                                       "--json").stdout)
        assert explained["delivered"] is False and explained["receiver_state"] == "PLANNED"
        assert run_hub(settings, "routing", "remove", cpo, emsp).returncode == 0
        run_hub(settings, "routing", "allow", cpo, emsp)

    new = run_hub(settings, "audit", "history", "sessions", "IN/ABC", "S1", ok=False)
    old = run_hub(settings, "audit", "history", "sessions", "IN", "ABC", "S1", ok=False)
    assert new.returncode == old.returncode == 1 and "no sessions object" in new.stderr
    deprecation(old, "hub audit history sessions IN/ABC S1")
    assert new.stderr.splitlines()[-1] == old.stderr.splitlines()[-1]
    old_state = run_hub(settings, "audit", "state", "sessions", "IN", "ABC", "S1", ok=False)
    deprecation(old_state, "hub audit state sessions IN/ABC S1")
    proof_new = run_hub(settings, "audit", "proof", "cdrs", "IN/ABC", "NOPE", ok=False)
    proof_old = run_hub(settings, "audit", "proof", "cdrs", "IN", "ABC", "NOPE", ok=False)
    assert proof_new.returncode == proof_old.returncode == 1 and "no CDR IN/ABC/NOPE" in proof_new.stderr
    deprecation(proof_old, "hub audit proof cdrs IN/ABC NOPE")
    assert proof_new.stderr.splitlines()[-1] == proof_old.stderr.splitlines()[-1]
    exported = run_hub(settings, "audit", "export", "--party", "IN/EMP/EMSP")
    assert exported.stdout and all(json.loads(line) for line in exported.stdout.splitlines())
    bad = run_hub(settings, "audit", "export", "--party", "EMP", ok=False)
    assert bad.returncode == 2 and "--party 'EMP'" in bad.stderr


def _bare_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "XDG_RUNTIME_DIR"}
    env.update(extra)
    return env


COMMANDS = [("parties", "list"), ("parties", "show", "IN/ABC"), ("routing", "list"),
            ("deliveries", "stats"), ("projections", "status"), ("audit", "verify"),
            ("audit", "checkpoint"), ("routing", "deny", "IN/ABC", "IN/EMP")]


def test_a_command_where_no_hub_database_exists(tmp_path):
    """Nothing is created; one line says where the command looked and what to set or run."""
    for args in COMMANDS:
        done = subprocess.run([sys.executable, "-m", "hub", *args], cwd=tmp_path, env=_bare_env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.splitlines() == [
            f"hub: no hub database in {tmp_path / 'var'} (HUB_DATA_DIR, default ./var of the current"
            " directory): run this in the hub's directory, set HUB_DATA_DIR (or HUB_DATABASE_URL) to the"
            " hub's, or create a hub here with `hub migrate`"], (args, done.stderr)
        assert done.stdout == ""
        assert list(tmp_path.iterdir()) == [], args  # no database directory, no secret key


def test_a_command_against_a_database_without_the_hub_schema(database_url, schema, tmp_path):
    env = _bare_env(HUB_DATABASE_URL=database_url, HUB_DATABASE_SCHEMA=schema,
                    HUB_DATA_DIR=str(tmp_path / "var"))
    for args in COMMANDS[:4]:
        done = subprocess.run([sys.executable, "-m", "hub", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.splitlines() == [
            f"hub: HUB_DATABASE_URL has no hub schema '{schema}' (HUB_DATABASE_SCHEMA): run `hub migrate`"
            " with these settings, or set HUB_DATABASE_URL/HUB_DATABASE_SCHEMA to the hub's"], done.stderr
        assert not (tmp_path / "var").exists()


def test_a_migrated_database_without_the_key_says_which_key(settings, tmp_path):
    env = _bare_env(HUB_DATABASE_URL=settings.database_url, HUB_DATABASE_SCHEMA=settings.database_schema)
    done = subprocess.run([sys.executable, "-m", "hub", "parties", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "no secret key" in done.stderr and "HUB_SECRET_KEY" in done.stderr
    assert not (tmp_path / "var").exists()


def test_migrate_creates_the_embedded_database_and_the_others_then_find_it(tmp_path):
    env = _bare_env()
    done = subprocess.run([sys.executable, "-m", "hub", "migrate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and "schema is up to date" in done.stdout, done.stderr
    assert (tmp_path / "var" / "secret_key").exists() and (tmp_path / "var" / "pgdata").is_dir()
    # Quiet: no initdb chatter, no platformdirs warning.
    assert done.stderr == "", done.stderr
    listed = subprocess.run([sys.executable, "-m", "hub", "parties", "list", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and json.loads(listed.stdout) == [] and listed.stderr == "", listed.stderr
    shutil.rmtree(tmp_path / "var")  # stopped with the last command; 100+ MB not to leave behind
