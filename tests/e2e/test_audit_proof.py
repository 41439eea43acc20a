"""``hub audit proof cdrs`` and ``hub audit verify --proof``: a CDR dispute bundle.

A CPO posts a CDR through the hub over real HTTP, the real worker delivers it
to the eMSP's test server (after one refused attempt), the bundle is made with
the real ``hub`` command and checked by it with no database reachable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hub.infra.notes import Signer
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import ROOT, wait_until
from tests.integration.test_forwarding import Cpo, received, stamp
from tests.partner import envelope, free_port, role


def offline_env(settings, **changes: str | None) -> dict:
    """The hub's environment with its database out of reach: a closed port."""
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    env["HUB_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def verify_proof(env: dict, path: Path, *extra: str) -> tuple[int, dict, str]:
    done = subprocess.run([sys.executable, "-m", "hub", "audit", "verify", "--proof", str(path), "--json", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout), done.stderr


def failed(result: dict) -> dict[str, str]:
    return {c["check"]: c["detail"] for c in result["checks"] if not c["ok"]}


@pytest.fixture
def delivered_cdr(hub, worker, settings):
    """A CDR of IN/ECP for IN/EM2, refused once by EM2 and then delivered; other traffic around it."""
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    refused = []

    def busy_once(record):
        if record.path == "/ocpi/2.2.1/cdrs/receiver" and not refused:
            refused.append(record)
            return 503, envelope(None, 3000, "busy, try later")
        return envelope()

    em2.answer = busy_once
    try:
        correlation = str(uuid.uuid4())
        cdr = ex.cdr(id="CDR1", cdr_token=ex.cdr_token(party_id="EM2"), last_updated=stamp(1))
        posted = cpo.push("POST", "cdrs/receiver", cdr, to=None, correlation_id=correlation)
        assert posted.status_code == 201 and posted.json()["status_code"] == 1000
        # Another partner's traffic after the CDR: it must not show in EM2's dispute bundle.
        private = ex.session(id="S-EM1-PRIVATE", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(2))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S-EM1-PRIVATE", private, to=None).status_code == 201
        assert wait_until(lambda: received(em1, "sessions", "PUT"))
        assert wait_until(lambda: len(received(em2, "cdrs", "POST")) == 2, timeout=30, interval=0.2)
        worker.follow_once()
        yield {"cdr": cdr, "posted": posted, "correlation": correlation, "em1": em1, "em2": em2,
               "cpo": cpo_partner, "attempts": received(em2, "cdrs", "POST")}
    finally:
        for partner in (em1, em2, cpo_partner):
            partner.stop()


def test_a_cdr_proof_verifies_offline_and_fails_once_altered(delivered_cdr, settings, tmp_path):
    cdr, attempts = delivered_cdr["cdr"], delivered_cdr["attempts"]
    out = tmp_path / "cdr1-proof.json"
    summary = json.loads(run_hub(settings, "audit", "proof", "cdrs", "in", "ecp", "CDR1", "--out", str(out),
                                 "--json").stdout)
    assert summary["cdr"] == "IN/ECP/CDR1" and summary["new_checkpoint"] is True  # no checkpoint covered it yet
    text = out.read_text()
    bundle = json.loads(text)

    # The CDR exactly as posted, with its event and its place in the tree.
    assert bundle["cdr"]["body"] == cdr and list(bundle["cdr"]["body"]) == list(cdr)
    event = bundle["event"]
    assert event["position"] == summary["position"] and event["topic"].endswith(":Cdr.Posted")
    assert event["version"] == 1 and bundle["format"] == "chargeindia-hub/cdr-proof/2"
    assert json.loads(event["state"])["body"] == cdr
    received = bundle["received"]
    assert received["correlation_id"] == delivered_cdr["correlation"]
    assert received["request_id"] == delivered_cdr["posted"].headers["X-Request-ID"]
    assert (received["from"], received["http_status"], received["status_code"]) == ("IN/ECP/CPO", 201, 1000)
    # Each attempt, as EM2 saw it: the refusal, then the delivery.
    receipts = bundle["receipts"]
    assert [(r["http_status"], r["status_code"]) for r in receipts] == [(503, 3000), (200, 1000)]
    assert [r["request_id"] for r in receipts] == [a.header("X-Request-ID") for a in attempts]
    assert {r["recipient"] for r in receipts} == {"IN/EM2/EMSP"}
    assert [r["attempt"] for r in receipts] == [1, 2] and len({r["delivery_id"] for r in receipts}) == 1
    assert all(r["sent_at"] and r["correlation_id"] == delivered_cdr["correlation"] for r in receipts)
    size = int(bundle["checkpoint"].split("\n")[1])
    proved = {int(p): entry["leaf_index"] for p, entry in bundle["inclusion"].items()}
    assert set(proved) == {event["position"], received["position"], *(r["position"] for r in receipts)}
    assert size > max(proved.values()) and summary["checkpoint_size"] == size
    assert summary["bytes"] == len(out.read_bytes()) < 16000  # a few kilobytes: log-size proofs
    # Nothing of the other partner's traffic, and no secret of anyone.
    em1, em2, cpo = delivered_cdr["em1"], delivered_cdr["em2"], delivered_cdr["cpo"]
    for private in ("S-EM1-PRIVATE", em1.base, em1.token_for_hub, em1.hub_token, em2.token_for_hub,
                    em2.hub_token, cpo.token_for_hub, cpo.hub_token, "Authorization", "token_hash"):
        assert private not in text, private

    # Offline: the database port is closed, and the command never needs it.
    env = offline_env(settings)
    code, result, stderr = verify_proof(env, out)
    assert code == 0 and result["ok"] and not result["failed"], result
    assert {c["check"] for c in result["checks"]} >= {"cdr event", "cdr body", "received", "receipt 1",
                                                      "receipt 2", "inclusion", "checkpoint signature"}
    assert result["cdr"] == {"country_code": "IN", "party_id": "ECP", "id": "CDR1"}
    people = subprocess.run([sys.executable, "-m", "hub", "audit", "verify", "--proof", str(out)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert people.returncode == 0 and "OK: the proof holds" in people.stdout
    assert people.stdout.splitlines()[0].split() == ["CHECK", "RESULT", "DETAIL"]
    # Not even an embedded database is started when no URL is set; the auditor has only the public key.
    data_dir = tmp_path / "auditor"
    vkey = run_hub(settings, "audit", "public-key").stdout.strip()
    auditor = offline_env(settings, HUB_DATABASE_URL=None, HUB_DATA_DIR=str(data_dir))
    code, result, _ = verify_proof(auditor, out, "--key", vkey)
    assert code == 0 and result["ok"] and not data_dir.exists()
    code, result, _ = verify_proof(auditor, out)  # no key at all: nothing vouches for the checkpoint
    assert code == 1 and set(failed(result)) == {"inclusion", "checkpoint signature"}

    def altered(change) -> tuple[int, dict, str]:
        copy = json.loads(text)
        change(copy)
        path = tmp_path / f"altered-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(copy))
        return verify_proof(env, path)

    # The disputed amount changed in the bundle: the CDR no longer matches its stored event.
    code, result, stderr = altered(lambda b: b["cdr"]["body"]["total_cost"].update(excl_vat=1.0))
    assert code == 1 and not result["ok"] and set(failed(result)) == {"cdr body"}
    assert "IN/ECP/CDR1" in failed(result)["cdr body"] and "total_cost" in failed(result)["cdr body"]

    # Changed in the stored event too: the event is no longer the leaf the signed tree holds.
    def cdr_and_event(b):
        b["cdr"]["body"]["total_cost"]["excl_vat"] = 1.0
        state = json.loads(b["event"]["state"])
        state["body"]["total_cost"]["excl_vat"] = 1.0
        b["event"]["state"] = json.dumps(state, separators=(",", ":"))

    code, result, _ = altered(cdr_and_event)
    assert code == 1 and set(failed(result)) == {"inclusion"}
    assert f"the CDR (position {event['position']}) is not in the signed tree" in failed(result)["inclusion"]

    # A hash of a proof changed: that event no longer reaches the signed root.
    def path_hash(b):
        entry = b["inclusion"][str(received["position"])]
        entry["path"][0] = ("A" if entry["path"][0][0] != "A" else "B") + entry["path"][0][1:]

    code, result, _ = altered(path_hash)
    assert code == 1 and set(failed(result)) == {"inclusion"} and "request" in failed(result)["inclusion"]

    # A delivery receipt rewritten to look successful from the start.
    code, result, _ = altered(lambda b: b["receipts"][0].update(http_status=200, status_code=1000))
    assert code == 1 and set(failed(result)) == {"receipt 1"} and "http_status" in failed(result)["receipt 1"]

    # The checkpoint's signature, or the key it is checked with.
    def forged(b):
        origin, size_line, rest = b["checkpoint"].split("\n", 2)
        b["checkpoint"] = "\n".join([origin, str(int(size_line) + 1), rest])

    code, result, _ = altered(forged)
    assert code == 1 and "checkpoint signature" in failed(result) and "forged" in failed(result)["checkpoint signature"]
    other = Signer.generate("elsewhere.example/audit").verifier.vkey
    code, result, _ = verify_proof(env, out, "--key", other)
    assert code == 1 and set(failed(result)) == {"inclusion", "checkpoint signature"}

    # Not a bundle at all.
    junk = tmp_path / "junk.json"
    junk.write_text("{\"cdr\": 1}")
    code, result, _ = verify_proof(env, junk)
    assert code == 1 and set(failed(result)) == {"bundle"}


def test_the_earliest_covering_checkpoint_is_reused(hub, delivered_cdr, settings, tmp_path):
    first = json.loads(run_hub(settings, "audit", "proof", "cdrs", "IN", "ECP", "CDR1").stdout)
    # More traffic and a later checkpoint: the bundle keeps using the earliest one that covers the CDR.
    assert hub.call("GET", "/ocpi/2.2.1/hubclientinfo", delivered_cdr["em1"].hub_token).status_code == 200
    later = json.loads(run_hub(settings, "audit", "checkpoint", "--json").stdout)
    assert later["size"] > int(first["checkpoint"].split("\n")[1])
    again = run_hub(settings, "audit", "proof", "cdrs", "IN", "ECP", "CDR1", "--out", str(tmp_path / "p.json"))
    assert "checkpoint_size" in again.stdout.splitlines()[0].lower()
    second = json.loads((tmp_path / "p.json").read_text())
    assert second["checkpoint"] == first["checkpoint"]
    assert second["inclusion"] == first["inclusion"] and second["event"] == first["event"]
    assert verify_proof(offline_env(settings), tmp_path / "p.json")[0] == 0


def test_unknown_cdr_is_refused(hub, settings, tmp_path):
    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    partner.stop()
    out = tmp_path / "never.json"
    done = run_hub(settings, "audit", "proof", "cdrs", "IN", "ECP", "NOPE", "--out", str(out), ok=False)
    assert done.returncode == 1 and "no CDR IN/ECP/NOPE" in done.stderr and done.stdout == ""
    assert not out.exists()
