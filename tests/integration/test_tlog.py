"""The transparency log: proofs checked with the public key alone, key rotation, HMAC migration."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import replace

import psycopg

from hub.infra.chain import checkpoint_key, take_checkpoint
from hub.infra.notes import Signer
from tests.cli import run_hub
from tests.conftest import ROOT
from tests.integration.test_audit_chain import admin, history, rechain, verify  # noqa: F401 (fixture)


def with_env(settings, **env):
    return replace(settings, extra={**settings.extra, **env})


def public_key(settings) -> str:
    return run_hub(settings, "audit", "public-key").stdout.strip()


def check(settings, path, *keys) -> tuple[int, dict]:
    args = [arg for key in keys for arg in ("--key", key)]
    done = run_hub(settings, "audit", "verify", "--proof", str(path), "--json", *args, ok=False)
    return done.returncode, json.loads(done.stdout)


def test_an_inclusion_proof_verifies_with_the_public_key_alone(history, settings, tmp_path):  # noqa: F811
    run_hub(settings, "audit", "checkpoint")
    vkey = public_key(settings)
    assert vkey.count("+") >= 2 and vkey.split("+")[0].endswith("/audit")
    bundle = tmp_path / "proof.json"
    run_hub(settings, "audit", "prove", str(history[4]), "--out", str(bundle))
    proof = json.loads(bundle.read_text())
    assert proof["event"]["position"] == history[4] and proof["tree_size"] == len(history)
    assert proof["checkpoint"].split("\n")[1] == str(len(history))
    # Checked from the file and the key alone: another HUB_DATA_DIR, no database.
    offline = replace(settings, extra={"HUB_DATA_DIR": str(tmp_path / "elsewhere")})
    code, result = check(offline, bundle, vkey)
    assert code == 0 and result["ok"], result
    # The independent script of docs/audit.md agrees, and refuses an altered event.
    script = [sys.executable, str(ROOT / "ops" / "audit" / "check_proof.py"), str(bundle), vkey]
    done = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(f"OK: event {history[4]} "), done.stderr
    # Another key does not vouch for it.
    code, result = check(offline, bundle, Signer.generate("someone.example/log").verifier.vkey)
    assert code == 1 and result["failed"] == ["checkpoint"]
    # An altered event, or an altered proof, fails.
    altered = dict(proof, event=dict(proof["event"], state=proof["event"]["state"].replace('"', "'", 1)))
    bundle.write_text(json.dumps(altered))
    code, result = check(offline, bundle, vkey)
    assert code == 1 and "checkpoint" in result["failed"]
    done = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "is not in the signed tree" in done.stderr
    broken = dict(proof, inclusion=[base64.b64encode(bytes(32)).decode(), *proof["inclusion"][1:]])
    bundle.write_text(json.dumps(broken))
    assert check(offline, bundle, vkey)[0] == 1
    # A size that no checkpoint signed: the proof is made, and says it is unsigned.
    done = run_hub(settings, "audit", "prove", str(history[0]), "--size", "3", "--out", str(bundle))
    assert "unsigned" in done.stdout
    code, result = check(offline, bundle, vkey)
    assert code == 1 and result["failed"] == ["checkpoint"]
    refused = run_hub(settings, "audit", "prove", str(history[-1] + 1000), ok=False)
    assert refused.returncode == 1 and "no event at position" in refused.stderr


def test_a_consistency_proof_between_two_checkpoints(history, hub, settings, tmp_path):  # noqa: F811
    run_hub(settings, "audit", "checkpoint")
    hub.onboard("EMSP", "IN", "LAT", "Later")
    done = run_hub(settings, "audit", "checkpoint", "--json")
    new = json.loads(done.stdout)["size"]
    assert new > len(history)
    bundle = tmp_path / "consistency.json"
    run_hub(settings, "audit", "consistency", str(len(history)), str(new), "--out", str(bundle))
    code, result = check(settings, bundle, public_key(settings))
    assert code == 0 and result["ok"], result
    proof = json.loads(bundle.read_text())
    proof["old_root"] = base64.b64encode(bytes(32)).decode()  # a history that is not the signed one
    bundle.write_text(json.dumps(proof))
    code, result = check(settings, bundle, public_key(settings))
    assert code == 1 and result["failed"][0] == "consistency"


def test_key_rotation_keeps_old_checkpoints_verifiable(history, hub, settings, tmp_path):  # noqa: F811
    first, second = Signer.generate("hub.example/audit"), Signer.generate("hub.example/audit")
    old = with_env(settings, HUB_AUDIT_SIGNING_KEY=first.skey)
    new = with_env(settings, HUB_AUDIT_SIGNING_KEY=second.skey)
    run_hub(old, "audit", "checkpoint")
    hub.onboard("EMSP", "IN", "ROT", "Rotated")
    run_hub(new, "audit", "checkpoint")
    keys = json.loads(run_hub(new, "audit", "public-key", "--all", "--json").stdout)
    assert [(k["status"], k["vkey"]) for k in keys] == [("current", second.verifier.vkey),
                                                        ("retired", first.verifier.vkey)]
    code, result = verify(new)
    assert code == 0 and result["checkpoints"] == 2
    # An auditor who trusts only the new key cannot accept the old checkpoint; with both, all hold.
    code, result = verify(new, "--key", second.verifier.vkey)
    assert code == 1 and result["problem"].startswith("forged checkpoint: stored checkpoint of size")
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text(first.verifier.vkey + "\n" + second.verifier.vkey + "\n")
    assert verify(new, "--key", str(keyfile))[0] == 0
    # A proof of an old event against the old checkpoint still verifies with the old key.
    bundle = tmp_path / "proof.json"
    run_hub(new, "audit", "prove", str(history[1]), "--size", str(len(history)), "--out", str(bundle))
    assert check(new, bundle, first.verifier.vkey)[0] == 0


def test_a_database_with_hmac_checkpoints_still_verifies(history, hub, settings):  # noqa: F811
    """An older hub signed HMAC checkpoints; after the upgrade they are checked as before,
    the tree covers the old events, and new checkpoints are Ed25519."""
    key = checkpoint_key(settings.audit_key or "from-secret-key:" + settings.resolved_secret_key())
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        legacy = take_checkpoint(conn, key, "2026-01-01T00:00:00Z")
    assert legacy.position == history[-1]
    code, result = verify(settings)
    assert code == 0 and result["checkpoints"] == 1 and result["tree_size"] == len(history)
    hub.onboard("EMSP", "IN", "MIG", "Migrated")
    run_hub(settings, "audit", "checkpoint")
    code, result = verify(settings)
    assert code == 0 and result["checkpoints"] == 2 and result["tree_size"] > len(history)
    # The old checkpoint still catches a rewrite of what it signed.
    with admin(settings) as conn:
        conn.execute("UPDATE hub_events SET state = state || '\\x20'::bytea WHERE notification_id = %s",
                     (history[2],))
        rechain(conn)
    code, result = verify(settings)
    assert code == 1 and result["problem"].startswith("rewritten: ")


def test_a_push_carries_a_receipt_that_verifies_with_the_public_key_alone(hub, settings, tmp_path):
    from tests import ocpi_examples as ex
    from tests.integration.test_forwarding import Cpo
    from tests.partner import role

    cpo = Cpo(hub, hub.connect_partner([role("CPO", "IN", "ECP")]))
    try:
        location = ex.location(country_code="IN", party_id="ECP", id="LOC-R1")
        answer = cpo.push("PUT", "locations/receiver/IN/ECP/LOC-R1", location)
        assert answer.json()["status_code"] == 1000
        refused = cpo.push("PUT", "locations/receiver/IN/ECP/LOC-R2", {"id": "LOC-R2"})
        reads = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", cpo.partner.hub_token)
    finally:
        cpo.partner.stop()
    assert refused.json()["status_code"] != 1000 and "Hub-Receipt" not in refused.headers
    assert "Hub-Receipt" not in reads.headers
    value = answer.headers["Hub-Receipt"]
    vkey = public_key(settings)
    offline = replace(settings, extra={"HUB_DATA_DIR": str(tmp_path / "elsewhere")})
    done = run_hub(offline, "audit", "verify", "--receipt", value, "--key", vkey, "--json")
    receipt = json.loads(done.stdout)
    assert receipt["ok"] and receipt["origin"] == settings.log_origin
    # The promise holds: the record at that position is a Request.Answered in the signed tree,
    # with the leaf hash the receipt names.
    run_hub(settings, "audit", "checkpoint")
    proof = json.loads(run_hub(settings, "audit", "prove", str(receipt["position"])).stdout)
    assert proof["event"]["topic"].endswith(":Request.Answered") and proof["leaf_hash"] == receipt["leaf_hash"]
    assert json.loads(proof["event"]["state"])["request_id"] == answer.headers["X-Request-ID"]
    # An altered receipt (another position), or another key, does not verify.
    note = base64.b64decode(value).decode()
    forged = base64.b64encode(note.replace(f"\n{receipt['position']}\n", f"\n{receipt['position'] + 1}\n")
                              .encode()).decode()
    done = run_hub(offline, "audit", "verify", "--receipt", forged, "--key", vkey, ok=False)
    assert done.returncode == 1 and "does not verify" in done.stderr
    other = Signer.generate("someone.example/log").verifier.vkey
    done = run_hub(offline, "audit", "verify", "--receipt", value, "--key", other, ok=False)
    assert done.returncode == 1 and "no signature from a known key" in done.stderr


def test_partners_fetch_checkpoints_and_proofs_of_their_own_events_only(hub, settings):
    from hub.infra.merkle import verify_consistency
    from hub.infra.notes import Verifier, open_checkpoint
    from tests import ocpi_examples as ex
    from tests.integration.test_forwarding import Cpo
    from tests.partner import role

    cpo = Cpo(hub, hub.connect_partner([role("CPO", "IN", "ECP")]))
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        pushed = cpo.push("PUT", "locations/receiver/IN/ECP/LOC-W1",
                          ex.location(country_code="IN", party_id="ECP", id="LOC-W1"))
        assert pushed.json()["status_code"] == 1000
        first = json.loads(run_hub(settings, "audit", "checkpoint", "--json").stdout)["size"]
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC-W2",
                        ex.location(country_code="IN", party_id="ECP", id="LOC-W2")).json()["status_code"] == 1000
        run_hub(settings, "audit", "checkpoint")
    finally:
        cpo.partner.stop()
        emsp.stop()
    vkey = Verifier.parse(public_key(settings))
    position = int(base64.b64decode(pushed.headers["Hub-Receipt"]).decode().split("\n")[2])

    assert hub.call("GET", "/audit/checkpoint").status_code == 401
    answer = hub.call("GET", "/audit/checkpoint", cpo.partner.hub_token)
    head, _ = open_checkpoint(answer.text, [vkey])
    assert answer.status_code == 200 and head.size > first
    # The CPO gets the proof of its own push's record; the eMSP does not, nor of a position that is no one's.
    mine = hub.call("GET", f"/audit/inclusion/{position}", cpo.partner.hub_token)
    assert mine.status_code == 200 and mine.json()["event"]["position"] == position
    assert mine.json()["checkpoint"] == answer.text
    theirs = hub.call("GET", f"/audit/inclusion/{position}", emsp.hub_token)
    assert theirs.status_code == 404 and "event" not in theirs.text
    # A witness checks that the latest checkpoint extends the one it kept.
    proof = hub.call("GET", "/audit/consistency", emsp.hub_token, params={"old": first, "new": head.size}).json()
    old_head, _ = open_checkpoint(proof["old_checkpoint"], [vkey])
    assert verify_consistency(first, head.size, old_head.root, head.root,
                              [base64.b64decode(h) for h in proof["consistency"]])
    assert hub.call("GET", "/audit/consistency", emsp.hub_token, params={"old": "x", "new": 2}).status_code == 400
