"""The ``hub`` command as an operator and a script use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg

from tests.conftest import ROOT
from tests.partner import role


def run_hub(settings, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    done = subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_parties_add_list_show(settings):
    added = json.loads(run_hub(settings, "parties", "add", "--role", "CPO", "--country-code", "in",
                               "--party-id", "abc", "--name", "ABC Charging", "--json").stdout)
    assert {"country_code", "party_id", "role", "token_a", "versions_url"} <= set(added)
    assert (added["country_code"], added["party_id"], added["role"]) == ("IN", "ABC", "CPO")
    assert added["versions_url"] == settings.versions_url and len(added["token_a"]) >= 43
    assert added["status"] == "PLANNED"

    people = run_hub(settings, "parties", "add", "--role", "EMSP", "--country-code", "IN",
                     "--party-id", "EMP", "--name", "EMP Mobility").stdout
    assert "Token A" in people and settings.versions_url in people

    table = run_hub(settings, "parties", "list").stdout.splitlines()
    assert table[0].split()[:5] == ["COUNTRY_CODE", "PARTY_ID", "ROLE", "NAME", "STATUS"]
    assert any(line.split()[:3] == ["IN", "ABC", "CPO"] for line in table[1:])
    listed = json.loads(run_hub(settings, "parties", "list", "--json").stdout)
    assert {(p["party_id"], p["status"]) for p in listed} == {("ABC", "PLANNED"), ("EMP", "PLANNED")}
    assert all("token" not in key for p in listed for key in p)

    shown = json.loads(run_hub(settings, "parties", "show", "IN", "ABC", "--json").stdout)
    assert shown["name"] == "ABC Charging" and shown["platform_state"] == "INVITED"

    again = run_hub(settings, "parties", "add", "--role", "CPO", "--country-code", "IN",
                    "--party-id", "ABC", "--name", "Twice", ok=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    missing = run_hub(settings, "parties", "show", "IN", "NOP", ok=False)
    assert missing.returncode != 0


def test_add_a_role_to_an_existing_platform(settings):
    first = json.loads(run_hub(settings, "parties", "add", "--role", "CPO", "--country-code", "IN",
                               "--party-id", "MUL", "--name", "Multi", "--json").stdout)
    second = json.loads(run_hub(settings, "parties", "add", "--role", "EMSP", "--country-code", "IN",
                                "--party-id", "MUL", "--name", "Multi", "--platform",
                                first["platform_id"], "--json").stdout)
    assert second["token_a"] is None and second["platform_id"] == first["platform_id"]


def test_suspend_and_resume(hub, settings):
    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        suspended = json.loads(run_hub(settings, "parties", "suspend", "IN", "ECP", "--json").stdout)
        assert suspended["status"] == "SUSPENDED"
        refused = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token)
        assert refused.status_code == 401
        assert run_hub(settings, "parties", "suspend", "IN", "ECP", ok=False).returncode != 0
        resumed = json.loads(run_hub(settings, "parties", "resume", "IN", "ECP", "--json").stdout)
        assert resumed["status"] == "CONNECTED"
        assert hub.call("GET", "/ocpi/2.2.1/hubclientinfo", partner.hub_token).status_code == 200
    finally:
        partner.stop()


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
        assert [(p["party_id"], p["role"], p["status"]) for p in done] == [("OUT", "EMSP", "CONNECTED")]
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
