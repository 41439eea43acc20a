"""The ``hub`` command as an operator and a script use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg

from tests.cli import run_hub
from tests.conftest import ROOT
from tests.partner import role


def test_parties_add_list_show(settings):
    added = json.loads(run_hub(settings, "parties", "add", "in/abc/cpo", "--name", "ABC Charging",
                               "--json").stdout)
    assert {"party", "country_code", "party_id", "role", "token_a", "versions_url"} <= set(added)
    assert (added["party"], added["country_code"], added["party_id"], added["role"]) == (
        "IN/ABC/CPO", "IN", "ABC", "CPO")
    assert added["versions_url"] == settings.versions_url and len(added["token_a"]) >= 43
    assert added["state"] == "PLANNED"

    people = run_hub(settings, "parties", "add", "IN/EMP/EMSP", "--name", "EMP Mobility")
    assert "Token A" in people.stdout and settings.versions_url in people.stdout and not people.stderr

    table = run_hub(settings, "parties", "list").stdout.splitlines()
    assert table[0].split() == ["PARTY", "NAME", "STATE", "PLATFORM_ID", "LAST_SEEN_AT"]
    assert any(line.split()[:4] == ["IN/ABC/CPO", "ABC", "Charging", "PLANNED"] for line in table[1:])
    listed = json.loads(run_hub(settings, "parties", "list", "--json").stdout)
    assert {(p["party"], p["state"]) for p in listed} == {("IN/ABC/CPO", "PLANNED"), ("IN/EMP/EMSP", "PLANNED")}
    assert all("token" not in key for p in listed for key in p)
    # One vocabulary: no second status, connection, suspension flag or platform state beside it.
    assert not {"status", "connection", "suspended", "platform_state"} & set(listed[0])

    shown = json.loads(run_hub(settings, "parties", "show", "IN/ABC", "--json").stdout)
    assert shown["name"] == "ABC Charging" and shown["state"] == "PLANNED"
    assert shown["client_info_status"] == "PLANNED" and shown["endpoints"] == []

    again = run_hub(settings, "parties", "add", "IN/ABC/CPO", "--name", "Twice", ok=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    missing = run_hub(settings, "parties", "show", "IN/NOP", ok=False)
    assert missing.returncode == 1 and missing.stderr == "hub: no party IN/NOP (`hub parties list` shows every party)\n"
    roleless = run_hub(settings, "parties", "add", "IN/NEW", "--name", "New", ok=False)
    assert roleless.returncode == 2 and "IN/NEW/CPO" in roleless.stderr


def test_add_a_role_to_an_existing_platform(settings):
    first = json.loads(run_hub(settings, "parties", "add", "IN/MUL/CPO", "--name", "Multi", "--json").stdout)
    second = json.loads(run_hub(settings, "parties", "add", "IN/MUL/EMSP", "--name", "Multi", "--platform",
                                first["platform_id"], "--json").stdout)
    assert second["token_a"] is None and second["platform_id"] == first["platform_id"]
    ambiguous = run_hub(settings, "parties", "show", "IN/MUL", ok=False)
    assert ambiguous.returncode == 1 and "write it as IN/MUL/ROLE" in ambiguous.stderr
    assert json.loads(run_hub(settings, "parties", "show", "IN/MUL/EMSP", "--json").stdout)["role"] == "EMSP"


def test_suspend_and_resume(hub, settings):
    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        suspended = json.loads(run_hub(settings, "parties", "suspend", "IN/ECP", "--json").stdout)
        assert suspended["state"] == "SUSPENDED"
        refused = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token)
        assert refused.status_code == 401
        again = run_hub(settings, "parties", "suspend", "IN/ECP", ok=False)
        assert again.returncode == 1 and "already suspended" in again.stderr
        resumed = json.loads(run_hub(settings, "parties", "resume", "IN/ECP/CPO", "--json").stdout)
        assert resumed["state"] == "CONNECTED"
        assert hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token).status_code == 200
    finally:
        partner.stop()


def test_an_unregistered_party_is_unregistered_and_resume_says_to_re_onboard(hub, settings):
    """After the partner's credentials DELETE: UNREGISTERED (partners still see SUSPENDED), and
    `resume` names the way back."""
    partner = hub.connect_partner([role("EMSP", "IN", "GON", "Gone Mobility")])
    try:
        assert hub.call("DELETE", "/ocpi/2.2.1/credentials", partner.hub_token).status_code == 200
    finally:
        partner.stop()
    shown = json.loads(run_hub(settings, "parties", "show", "IN/GON", "--json").stdout)
    assert (shown["state"], shown["client_info_status"]) == ("UNREGISTERED", "SUSPENDED")
    assert "UNREGISTERED" in run_hub(settings, "parties", "list").stdout
    resume = run_hub(settings, "parties", "resume", "IN/GON", ok=False)
    assert resume.returncode == 1 and len(resume.stderr.splitlines()) == 1, resume.stderr
    assert "UNREGISTERED, not suspended" in resume.stderr
    assert 'hub parties add IN/GON/EMSP --name "Gone Mobility"' in resume.stderr
    again = json.loads(run_hub(settings, "parties", "add", "IN/GON/EMSP", "--name", "Gone Mobility",
                               "--json").stdout)
    assert again["state"] == "PLANNED" and again["token_a"]


def test_projection_status_and_rebuild_equal_live(hub, settings):
    hub.connect_partner([role("CPO", "IN", "ECP"), role("EMSP", "IN", "ECP")]).stop()
    hub.onboard("EMSP", "IN", "PLN")

    def snapshot():
        with psycopg.connect(settings.database_url) as conn:
            conn.execute(f'SET search_path TO "{settings.database_schema}"')
            return (
                conn.execute("SELECT * FROM view_parties ORDER BY country_code, party_id, role").fetchall(),
                conn.execute("SELECT platform_id, state, endpoints, roles, partner_token"
                             " FROM view_platforms ORDER BY platform_id").fetchall(),
                conn.execute("SELECT * FROM view_platform_tokens ORDER BY token_hash").fetchall(),
            )

    before = snapshot()
    status = json.loads(run_hub(settings, "projections", "status", "--json").stdout)
    parties = next(s for s in status if s["name"] == "parties")
    assert parties["lag"] == 0 and parties["position"] == parties["head"] > 0
    rebuilt = run_hub(settings, "projections", "rebuild", "parties", "--progress")
    assert "parties: rebuilt" in rebuilt.stdout and "100.0%" in rebuilt.stderr
    assert snapshot() == before


def test_parties_connect_starts_the_handshake(hub, settings):
    from tests.partner import Partner

    partner = Partner(roles=[role("EMSP", "IN", "OUT", "Outbound")]).start()
    try:
        done = json.loads(run_hub(settings, "parties", "connect", "--versions-url", partner.versions_url,
                                  "--token", "their-token-a", "--json").stdout)
        assert [(p["party"], p["state"]) for p in done] == [("IN/OUT/EMSP", "CONNECTED")]
        posted = partner.requests_to("/ocpi/2.2.1/credentials", "POST")[0]
        assert posted.token == "their-token-a" and posted.body["roles"][0]["party_id"] == "CIH"
        # The hub now calls the partner with the token the partner returned, and the
        # partner calls the hub with the token the hub sent.
        assert hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token).status_code == 200
        failed = run_hub(settings, "parties", "connect", "--versions-url", "http://127.0.0.1:9/ocpi/versions",
                         "--token", "x", ok=False)
        assert failed.returncode != 0 and "3001" in failed.stderr
    finally:
        partner.stop()


def test_audit_and_deliveries_commands_refuse_bad_input(hub, settings, tmp_path):
    """Bad input or an unreadable file: one `hub:` line and exit 2; under --json, JSON still."""
    hub.onboard("EMSP", "IN", "EMP")

    def refused(*args: str, says: str) -> subprocess.CompletedProcess:
        done = run_hub(settings, *args, ok=False)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("hub: ") and len(done.stderr.splitlines()) == 1, done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr
        if "--json" in args:
            answer = json.loads(done.stdout)
            assert answer["ok"] is False and says in answer["error"]
        return done

    missing = tmp_path / "missing.json"
    for extra in ((), ("--json",)):
        refused("audit", "verify", "--checkpoint", str(missing), *extra, says=f"cannot read checkpoint {missing}")
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"position": 3, "head": ')
    refused("audit", "verify", "--checkpoint", str(garbled), says="is unreadable: not JSON")
    garbled.write_text('{"position": 3, "head": "zz", "created_at": "2026-01-01T00:00:00Z", "signature": ""}')
    refused("audit", "verify", "--checkpoint", str(garbled), "--json", says="head: expected 64 lowercase hex")
    garbled.write_text("[1, 2]")
    refused("audit", "verify", "--checkpoint", str(garbled), says="not a checkpoint")
    garbled.write_text("hub.example/audit\n3\nnot-base64\n\n\u2014 hub.example/audit AAAA\n")
    refused("audit", "verify", "--checkpoint", str(garbled), says="root hash: expected base64 of 32 bytes")
    garbled.write_text("hub.example/audit\n3\n")
    refused("audit", "verify", "--checkpoint", str(garbled), says="not a signed note")

    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        (head,) = conn.execute("SELECT max(notification_id) FROM hub_events").fetchone()
    for extra in ((), ("--json",)):
        refused("audit", "verify", "--from", str(head + 100), *extra, says=f"past the log's head ({head})")
    refused("audit", "verify", "--from", "-1", says="--from -1")
    at_head = json.loads(run_hub(settings, "audit", "verify", "--from", str(head), "--json").stdout)
    assert at_head["ok"] and at_head["checked"] == 0 and at_head["head_position"] == head

    # A forged checkpoint: a verdict (exit 1), as JSON under --json.
    checkpoint = tmp_path / "checkpoint.note"
    run_hub(settings, "audit", "checkpoint", "--out", str(checkpoint))
    origin, size, root = checkpoint.read_text().split("\n")[:3]
    checkpoint.write_text(checkpoint.read_text().replace(f"\n{size}\n", f"\n{int(size) + 1}\n", 1))
    done = run_hub(settings, "audit", "verify", "--checkpoint", str(checkpoint), "--json", ok=False)
    answer = json.loads(done.stdout)
    assert done.returncode == 1 and answer["ok"] is False and "forged checkpoint" in answer["problem"]

    refused("deliveries", "replay", "IN/EMP", "--since", "yesterday", says="--since 'yesterday'")
    refused("deliveries", "replay", "EMP", says="'EMP': write a party as COUNTRY_CODE/PARTY_ID")
    refused("deliveries", "replay", "--party", "EMP", says="--party 'EMP'")
    typo = run_hub(settings, "audit", "export", "--module", "location", ok=False)
    assert typo.returncode == 2 and "invalid choice: 'location'" in typo.stderr and not typo.stdout
    assert run_hub(settings, "audit", "export", "--module", "credentials").returncode == 0


def test_parties_connect_takes_the_token_from_stdin_or_the_environment(hub, settings):
    """The partner's token need not be on the command line (ps, shell history)."""
    from tests.partner import Partner

    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    env.pop("HUB_PARTNER_TOKEN", None)
    by_stdin = Partner(roles=[role("EMSP", "IN", "STD")]).start()
    by_env = Partner(roles=[role("EMSP", "IN", "ENV")]).start()
    try:
        def connect(partner, extra_env: dict, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "hub", "parties", "connect", "--versions-url",
                                   partner.versions_url, *args, "--json"], cwd=ROOT, env={**env, **extra_env},
                                  input=stdin, capture_output=True, text=True, timeout=120)

        missing = connect(by_env, {})
        assert missing.returncode == 2 and "HUB_PARTNER_TOKEN" in missing.stderr
        assert not by_env.requests_to("/ocpi/")

        done = connect(by_stdin, {}, "--token", "-", stdin="token-from-stdin\n")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["state"] == "CONNECTED"
        assert by_stdin.requests_to("/ocpi/2.2.1/credentials", "POST")[0].token == "token-from-stdin"

        done = connect(by_env, {"HUB_PARTNER_TOKEN": "token-from-env"})
        assert done.returncode == 0, done.stderr
        assert by_env.requests_to("/ocpi/2.2.1/credentials", "POST")[0].token == "token-from-env"
        for output in (done.stdout, done.stderr):
            assert "token-from-env" not in output
    finally:
        by_stdin.stop()
        by_env.stop()
