"""Checkpoints pushed to witnesses: subscribed partners receive each signed checkpoint durably."""

from __future__ import annotations

import base64
import json

from hub.infra.merkle import verify_consistency
from hub.infra.notes import Verifier, open_checkpoint
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.partner import role

WITNESS_PATH = "/witness/checkpoints"


def pushes(partner) -> list:
    return [r for r in partner.requests_to(WITNESS_PATH, "POST")]


def sizes(partner) -> list[int]:
    return [r.body["size"] for r in pushes(partner) if r.body]


def checkpoint(settings) -> int:
    return json.loads(run_hub(settings, "audit", "checkpoint", "--json").stdout)["size"]


def test_witnesses_receive_checkpoints_by_push(hub, worker, settings):
    witness = hub.connect_partner([role("EMSP", "IN", "WIT")])
    other = hub.connect_partner([role("CPO", "IN", "OTH")])
    try:
        url = witness.base + WITNESS_PATH
        # Self-service: the witness names its URL; bad URLs are refused naming the field.
        assert hub.call("PUT", "/audit/subscription", json={"url": url}).status_code == 401
        bad = hub.call("PUT", "/audit/subscription", witness.hub_token, json={"url": "ftp://x.example/c"})
        assert bad.status_code == 400 and bad.json()["status_code"] == 2001
        assert bad.json()["status_message"].startswith("url:")
        guarded = hub.call("PUT", "/audit/subscription", witness.hub_token,
                           json={"url": "http://169.254.169.254/latest"})
        assert guarded.status_code == 400 and "outbound guard" in guarded.json()["status_message"]
        for body in ({"uri": url}, {"url": 5}, [url], "not json"):
            kwargs = {"data": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, str) \
                else {"json": body}
            odd = hub.call("PUT", "/audit/subscription", witness.hub_token, **kwargs)
            assert odd.status_code == 400 and odd.json()["status_code"] == 2001, (body, odd.text)
            assert odd.json()["status_message"].startswith(("url:", "body:")), odd.text
        done = hub.call("PUT", "/audit/subscription", witness.hub_token, json={"url": url})
        assert done.status_code == 200 and done.json()["data"] == {"url": url, "party": "IN/WIT/EMSP"}
        assert hub.call("GET", "/audit/subscription", witness.hub_token).json()["data"]["url"] == url
        # An operator subscribes the other partner, then unsubscribes it: it gets nothing.
        refused = run_hub(settings, "audit", "subscribe", "IN/OTH", "http://169.254.169.254/x", ok=False)
        assert refused.returncode != 0 and refused.stderr.startswith("hub: url: "), refused.stderr
        unknown = run_hub(settings, "audit", "subscribe", "IN/NONE", other.base + WITNESS_PATH, ok=False)
        assert unknown.returncode != 0 and "no party IN/NONE" in unknown.stderr
        run_hub(settings, "audit", "subscribe", "IN/OTH", other.base + WITNESS_PATH)
        listed = json.loads(run_hub(settings, "audit", "subscriptions", "--json").stdout)
        assert sorted(r["party"] for r in listed) == ["IN/OTH/CPO", "IN/WIT/EMSP"]
        wait_until(lambda: worker.follow_once() == 0 and _subscribed(worker) == 2)
        run_hub(settings, "audit", "unsubscribe", "IN/OTH")
        wait_until(lambda: worker.follow_once() == 0 and _subscribed(worker) == 1)

        first = checkpoint(settings)
        worker.push_checkpoints()
        assert wait_until(lambda: sizes(witness) == [first], timeout=15), sizes(witness)
        received = pushes(witness)[0]
        assert received.token == witness.token_for_hub  # the hub calls with the partner's own token
        vkey = Verifier.parse(run_hub(settings, "audit", "public-key").stdout.strip())
        old_head, _ = open_checkpoint(received.body["note"], [vkey])  # the public key alone
        assert (old_head.size, base64.b64encode(old_head.root).decode()) == (first, received.body["root"])

        # The witness is down when the next checkpoint is signed: it gets it once it is back.
        hub.onboard("CPO", "IN", "LAT", "Later")
        witness.fail_with = 503
        second = checkpoint(settings)
        worker.push_checkpoints()
        assert wait_until(lambda: sizes(witness)[1:2] == [second], timeout=15)
        witness.fail_with = None
        assert wait_until(lambda: len(sizes(witness)) >= 3, timeout=20), sizes(witness)
        assert sizes(witness)[-1] == second
        new_head, _ = open_checkpoint(pushes(witness)[-1].body["note"], [vkey])
        # It checks the new checkpoint extends the one it kept, with the hub's consistency proof.
        proof = hub.call("GET", "/audit/consistency", witness.hub_token,
                         params={"old": first, "new": second}).json()
        assert verify_consistency(first, second, old_head.root, new_head.root,
                                  [base64.b64decode(h) for h in proof["consistency"]])
        # Every push is a delivery like any other (retried, recorded, listed per partner).
        state = json.loads(run_hub(settings, "audit", "subscriptions", "--json").stdout)
        assert state == [{"party": "IN/WIT/EMSP", "url": url, "platform_id": state[0]["platform_id"],
                          "delivered": 2, "pending": 0, "failed": 0, "last_size_delivered": second}], state
        assert pushes(other) == []
        # Unsubscribed by itself: no more pushes.
        assert hub.call("DELETE", "/audit/subscription", witness.hub_token).json()["status_code"] == 1000
        wait_until(lambda: worker.follow_once() == 0 and _subscribed(worker) == 0)
        hub.onboard("CPO", "IN", "LT2", "Later 2")
        checkpoint(settings)
        assert worker.push_checkpoints() == 0
        assert hub.call("GET", "/audit/subscription", witness.hub_token).json().get("data") is None
    finally:
        witness.stop()
        other.stop()


def _subscribed(worker) -> int:
    with worker.app.pool.connection() as conn:
        return conn.execute("SELECT count(*) FROM hub_audit_subscriptions WHERE url IS NOT NULL").fetchone()[0]
