"""Dispute bundles: ``hub audit proof cdrs`` and ``hub audit verify --proof``.

A bundle proves what the hub holds about one CDR, to someone who has the
bundle and the checkpoint key but no access to the hub's database:

- ``cdr``: the CDR as the CPO posted it, and ``event``: the ``Cdr.Posted``
  event that stores it, verbatim (position, originator id, version, topic,
  state as stored) with its chain hash;
- ``received``: the CPO's request (request and correlation ids, sender,
  time) and the hub's answer, with that answer's ``Request.Answered`` event;
- ``receipts``: every delivery attempt of the CDR (recipient, request id,
  HTTP status, OCPI ``status_code``, time), each with its ``Call.Made``
  event;
- ``inclusion``: for each of these events an RFC 9162 inclusion proof, and
  ``checkpoint``: the earliest Ed25519 checkpoint (C2SP note) covering them all
  (signed on the spot when none does yet): :mod:`hub.audit.cdrtree`.

:func:`verify_cdr_proof` recomputes everything from the bundle alone: the
facts shown against the events carried, each event's digest, its inclusion in
the signed tree, and the checkpoint's signature, with the verifier key only.
Bundles of format 1 (a run of chain digests up to an HMAC checkpoint) still
verify, with the HMAC key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.utils import get_topic

from hub.audit.cdrtree import TreeProofError, check_tree_part, tree_part
from hub.domain import objects as o
from hub.domain.audit import Call, Request
from hub.infra.chain import Checkpoint, chain_link, checkpoint_valid, event_digest

FORMAT_V1 = "chargeindia-hub/cdr-proof/1"  # chain links and an HMAC checkpoint
FORMAT = "chargeindia-hub/cdr-proof/2"
CDR_TOPIC = get_topic(o.Cdr.Posted)
REQUEST_TOPIC = get_topic(Request.Answered)
CALL_TOPIC = get_topic(Call.Made)
# The facts each part of a bundle shows, all read from the events it carries.
RECEIVED_FIELDS = ("request_id", "correlation_id", "from", "to", "scenario", "received_at")
ANSWER_FIELDS = ("http_status", "status_code", "status_message")
RECEIPT_FIELDS = ("sent_at", "request_id", "correlation_id", "method", "url", "http_status", "status_code",
                  "error", "duration_ms", "delivery_id", "attempt")
NEAR = 50  # how far from the CDR event its request's record may be (same transaction)


class ProofError(Exception):
    """The hub cannot make the bundle (the message says why)."""


# Making a bundle (reads the database) --------------------------------------------
def _stored(row: tuple) -> dict:
    """A stored event as a bundle carries it: verbatim (its state as the stored JSON text)."""
    position, originator_id, version, topic, state = row
    try:
        text = bytes(state).decode("utf-8")
    except UnicodeDecodeError:
        raise ProofError(f"event {position} is not stored as plain JSON (compressed or encrypted log)") from None
    return {"position": position, "originator_id": str(originator_id), "version": version, "topic": topic,
            "state": text}


def _state(event: dict) -> dict:
    return orjson.loads(event["state"].encode("utf-8"))


def _recorded_at(state: dict) -> str | None:
    """The event's timestamp as the transcoder stored it, as an OCPI DateTime with microseconds."""
    from hub.audit.records import timestamp_text

    value = state.get("timestamp")
    if isinstance(value, dict):
        value = value.get("_data_")
    try:
        return timestamp_text(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def make_cdr_proof(app, signer, origin: str, country_code: str, party_id: str, cdr_id: str, *,
                   now: str) -> tuple[dict, bool]:
    """The bundle of one CDR and whether a new checkpoint was taken for it.

    Raises :class:`LookupError` for an unknown CDR and :class:`ProofError`
    when the stored chain does not hold (``hub audit verify`` says where).
    """
    from hub.audit.events import EventReader

    audit = EventReader(app)
    name = f"{country_code.upper()}/{party_id.upper()}/{cdr_id}"
    with audit.connect() as conn:
        row = conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
            " WHERE originator_id = %s AND originator_version = 1",
            (o.object_uuid("cdrs", country_code, party_id, cdr_id),)).fetchone()
        if row is None or row[3] != CDR_TOPIC:
            raise LookupError(f"the log holds no CDR {name}")
        event = _stored(row)
        state = _state(event)
        message = state.get("message") or {}
        received = {field: message.get(field) for field in RECEIVED_FIELDS}
        received.update({field: None for field in ANSWER_FIELDS}, position=None, event=None)
        request = _request_record(conn, event["position"], message.get("request_id"))
        if request is not None:
            answer = _state(request)
            received.update({field: answer.get(field) for field in ANSWER_FIELDS},
                             position=request["position"], event=request)
        receipts = _receipts(audit, conn, event, state)
        carried = [event["position"]] + [r["position"] for r in receipts]
        if request is not None:
            carried.append(request["position"])
        try:
            tree, taken = tree_part(conn, carried, signer, origin, now)
        except TreeProofError as exc:
            raise ProofError(str(exc)) from None
    bundle = {
        "format": FORMAT,
        "made_at": now,
        "cdr": {"country_code": state.get("country_code"), "party_id": state.get("party_id"),
                "id": state.get("object_id"), "body": state.get("body")},
        "event": {**event, "recorded_at": _recorded_at(state)},
        "received": received,
        "receipts": receipts,
        **tree,
    }
    return bundle, taken


def _request_record(conn, position: int, request_id: str | None) -> dict | None:
    """The ``Request.Answered`` of the CDR's POST (recorded in the same transaction)."""
    if not request_id:
        return None
    rows = conn.execute(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
        " WHERE notification_id BETWEEN %s AND %s AND topic = %s ORDER BY notification_id",
        (position - NEAR, position + NEAR, REQUEST_TOPIC)).fetchall()
    for row in rows:
        stored = _stored(row)
        if _state(stored).get("request_id") == request_id:
            return stored
    return None


def _receipts(audit, conn, event: dict, state: dict) -> list[dict]:
    """Every delivery attempt of this CDR, in log order, each with its ``Call.Made`` event."""
    import psycopg

    from hub.audit.records import redact

    correlation = (state.get("message") or {}).get("correlation_id")
    key = o.object_key("cdrs", state["country_code"], state["party_id"], state["object_id"])
    outbox: dict[int, str | None] | None
    try:
        rows = conn.execute("SELECT id, recipient, correlation_id FROM hub_deliveries"
                            " WHERE module = 'cdrs' AND upper(object_key) = %s", (key.upper(),)).fetchall()
        outbox = {row[0]: row[1] for row in rows}
        needles = {row[2] for row in rows} | {correlation}
    except psycopg.errors.UndefinedTable:  # a log restored without the outbox: correlation ids only
        outbox, needles = None, {correlation}
    positions = []
    for batch in audit.scan(conn, after=event["position"], topics=[CALL_TOPIC], needles=needles - {None}):
        for position, _, call in batch:
            if call.purpose != "delivery" or call.module != "cdrs":
                continue
            ours = call.delivery_id in outbox if outbox is not None else call.correlation_id == correlation
            if ours:
                positions.append(position)
    if not positions:
        return []
    rows = conn.execute(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM hub_events"
        " WHERE notification_id = ANY(%s) ORDER BY notification_id", (positions,)).fetchall()
    receipts = []
    for row in rows:
        stored = _stored(row)
        call = _state(stored)
        receipt = {"position": stored["position"],
                   "recipient": (outbox or {}).get(call.get("delivery_id")),
                   **{field: call.get(field) for field in RECEIPT_FIELDS}}
        if redact(call) != call:  # never in practice for a CDR; never let a secret out if it happens
            receipt = redact(receipt)
            stored = {k: v for k, v in stored.items() if k != "state"}
            stored["digest"] = event_digest(row[1], row[2], row[3], bytes(row[4])).hex()
        receipts.append({**receipt, "event": stored})
    return receipts


# Checking a bundle (no database) -------------------------------------------------
@dataclass
class Check:
    check: str
    ok: bool
    detail: str


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _differences(shown: Any, stored: Any) -> list[str]:
    """The top-level fields in which two bodies differ."""
    if isinstance(shown, dict) and isinstance(stored, dict):
        keys = list(dict.fromkeys([*stored, *shown]))
        changed = [k for k in keys if k not in shown or k not in stored or _text(shown[k]) != _text(stored[k])]
        return changed or ["the order of its fields"]
    return ["the whole body"]


def _digest_of(event: dict) -> bytes:
    return event_digest(event["originator_id"], int(event["version"]), event["topic"],
                        event["state"].encode("utf-8"))


def verify_cdr_proof(bundle: Any, key: bytes | None, verifiers=()) -> list[Check]:
    """Every check of one bundle, in order; the bundle holds when all are ok.

    ``verifiers``: the Ed25519 keys of format 2; ``key``: the HMAC key of format 1.
    """
    try:
        cdr, event, received = bundle["cdr"], bundle["event"], bundle["received"]
        receipts = bundle["receipts"]
        name = f"{cdr['country_code']}/{cdr['party_id']}/{cdr['id']}"
        position = int(event["position"])
        state = _state(event)
        v1 = bundle.get("format") == FORMAT_V1
        if v1:
            chain, checkpoint = bundle["chain"], bundle["checkpoint"]
            signed = Checkpoint(int(checkpoint["position"]), str(checkpoint["head"]),
                                str(checkpoint["created_at"]), str(checkpoint["signature"]))
            previous = bytes.fromhex(chain["previous"])
            links = [(int(p), bytes.fromhex(d)) for p, d in chain["links"]]
            covered = f"checkpoint at {signed.position}"
        elif bundle.get("format") == FORMAT:
            covered = f"checkpoint of size {str(bundle['checkpoint']).split(chr(10))[1]}"
        else:
            raise ValueError(f"format {bundle.get('format')!r} is not {FORMAT}")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return [Check("bundle", False, f"not a readable CDR proof bundle ({type(exc).__name__}: {exc})")]
    checks = [Check("bundle", True, f"CDR {name}: event {position}, {len(receipts)} delivery receipt(s),"
                                    f" {covered}")]

    # The CDR and its event.
    expected_id = str(o.object_uuid("cdrs", cdr["country_code"], cdr["party_id"], cdr["id"]))
    problems = []
    if event["topic"] != CDR_TOPIC or int(event["version"]) != 1:
        problems.append(f"it is {event['topic']} version {event['version']}, not the Cdr.Posted that creates it")
    if event["originator_id"] != expected_id:
        problems.append(f"its aggregate {event['originator_id']} is not the CDR {name}'s ({expected_id})")
    if [str(state.get(k) or "").upper() for k in ("country_code", "party_id", "object_id")] != \
            [str(cdr[k]).upper() for k in ("country_code", "party_id", "id")]:
        problems.append("it stores another CDR's ids")
    checks.append(Check("cdr event", not problems, "; ".join(problems) if problems else
                        f"position {position} is the Cdr.Posted event (version 1) of {name},"
                        f" recorded at {_recorded_at(state)}"))
    same_body = _text(cdr["body"]) == _text(state.get("body"))
    checks.append(Check("cdr body", same_body,
                        f"the CDR {name} equals the body stored at position {position}" if same_body else
                        f"the CDR {name} in the bundle differs from the one stored at position {position}:"
                        f" {', '.join(_differences(cdr['body'], state.get('body')))}"))

    # What was received and answered, and every delivery attempt.
    carried: dict[int, tuple[str, bytes | None]] = {position: ("the CDR", _digest_of(event))}
    checks.append(_guarded("received", _check_received, received, state.get("message") or {}, carried))
    emsp = (cdr["body"].get("cdr_token") or {}) if isinstance(cdr["body"], dict) else {}
    for number, receipt in enumerate(receipts, start=1):
        checks.append(_guarded(f"receipt {number}", _check_receipt, number, receipt, emsp, carried))

    if not v1:  # every carried event in the signed tree
        withheld = {int(r["event"]["position"]): bytes.fromhex(r["event"]["digest"])
                    for r in receipts if isinstance(r.get("event"), dict) and "digest" in r["event"]}
        return checks + [Check(*c) for c in check_tree_part(bundle, carried, withheld, list(verifiers))]
    # Format 1: the chain from ``previous`` through every carried event to the checkpoint.
    checks += _check_chain(previous, links, carried, position, event.get("hash"), signed)
    if key is None:
        checks.append(Check("checkpoint signature", False,
                            "no key to check it: set HUB_AUDIT_KEY (or HUB_SECRET_KEY) as the hub has it"))
    else:
        valid = checkpoint_valid(key, signed)
        checks.append(Check("checkpoint signature", valid,
                            f"the checkpoint at {signed.position} ({signed.created_at}) is signed with this key"
                            if valid else f"the checkpoint at {signed.position} has an invalid signature"))
    return checks


def _guarded(label: str, check, *args) -> Check:
    """A check of one part; a part too malformed to read fails that check, not the command."""
    try:
        return check(*args)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Check(label, False, f"unreadable ({type(exc).__name__}: {exc})")


def _compare(shown: dict, stored: dict, fields: Iterable[str], source: dict | None = None) -> list[str]:
    source = shown if source is None else source
    return [field for field in fields if _text(source.get(field)) != _text(stored.get(field))]


def _check_received(received: dict, message: dict, carried: dict) -> Check:
    wrong = _compare(received, message, RECEIVED_FIELDS)
    request = received.get("event")
    if request is None:
        answer = "the hub's answer is not in the bundle"
    else:
        answer_state = _state(request)
        if request.get("topic") != REQUEST_TOPIC or answer_state.get("request_id") != message.get("request_id"):
            wrong.append("event (not the record of this CDR's request)")
        wrong += _compare(received, answer_state, ANSWER_FIELDS)
        if int(request["position"]) != received.get("position"):
            wrong.append("position")
        carried[int(request["position"])] = ("the CPO's request", _digest_of(request))
        answer = (f"answered HTTP {received.get('http_status')}, status {received.get('status_code')}"
                  f" (position {request['position']})")
    if wrong:
        return Check("received", False, f"differs from the stored events: {', '.join(wrong)}")
    return Check("received", True, f"request {received.get('request_id')} from {received.get('from')}"
                                   f" at {received.get('received_at')}, {answer}")


def _check_receipt(number: int, receipt: dict, emsp: dict, carried: dict) -> Check:
    label = f"receipt {number}"
    stored = receipt.get("event") or {}
    try:
        at = int(stored["position"])
    except (KeyError, TypeError, ValueError):
        return Check(label, False, "no event position")
    wrong = []
    if at != receipt.get("position"):
        wrong.append("position")
    if "state" not in stored:
        carried[at] = (f"delivery receipt {number}", None)
        detail = "content withheld (it holds a secret): only its place in the chain is checked"
    else:
        call = _state(stored)
        carried[at] = (f"delivery receipt {number}", _digest_of(stored))
        if stored.get("topic") != CALL_TOPIC or call.get("purpose") != "delivery" or call.get("module") != "cdrs":
            wrong.append("event (not a delivery of a CDR)")
        wrong += _compare(receipt, call, RECEIPT_FIELDS)
        detail = (f"{receipt.get('method')} at {receipt.get('sent_at')}, request {receipt.get('request_id')}:"
                  f" HTTP {receipt.get('http_status')}, status {receipt.get('status_code')}"
                  + (f" ({receipt['error']})" if receipt.get("error") else ""))
    recipient = str(receipt.get("recipient") or "")
    if recipient:
        owner = "/".join(str(emsp.get(k, "")).upper() for k in ("country_code", "party_id"))
        if not recipient.upper().startswith(owner + "/"):
            wrong.append(f"recipient ({recipient} is not the CDR's eMSP {owner})")
    if wrong:
        return Check(label, False, f"at position {at} differs from its stored event: {', '.join(wrong)}")
    return Check(label, True, f"to {recipient or 'the eMSP'}: {detail} (position {at})")


def _check_chain(previous: bytes, links: list[tuple[int, bytes]], carried: dict, position: int,
                 stated_hash: str | None, signed: Checkpoint) -> list[Check]:
    checks = []
    content = []
    cdr_hash = None
    last = None
    order_ok = True
    for at, digest in links:
        if last is not None and at <= last:
            order_ok = False
        last = at
        if at in carried:
            what, computed = carried[at]
            if computed is not None and computed != digest:
                content.append(f"{what} (position {at})")
                digest = computed
        previous = chain_link(previous, at, digest)
        if at == position:
            cdr_hash = previous
    listed = {at for at, _ in links}
    missing = [f"{what} (position {at})" for at, (what, _) in sorted(carried.items()) if at not in listed]
    problems = []
    if not links:
        problems.append("it has no links")
    if not order_ok:
        problems.append("positions are not in increasing order")
    if content:
        problems.append("the content of " + ", ".join(content) + " does not match its digest in the chain")
    if missing:
        problems.append("the chain skips " + ", ".join(missing))
    if last != signed.position:
        problems.append(f"it ends at {last}, not at the checkpoint's position {signed.position}")
    checks.append(Check("chain", not problems, "; ".join(problems) if problems else
                        f"{len(links)} links recomputed from position {links[0][0] if links else '-'} to {last},"
                        f" through {len(carried)} carried event(s)"))
    if cdr_hash is not None and stated_hash is not None:
        same = cdr_hash.hex() == stated_hash
        checks.append(Check("cdr hash", same, f"the chain hash at {position} is {stated_hash}" if same else
                            f"the chain hash at {position} recomputes to {cdr_hash.hex()}, the bundle says"
                            f" {stated_hash}"))
    head = previous.hex()
    checks.append(Check("checkpoint head", head == signed.head,
                        f"the chain at {last} ends in the head the checkpoint signs ({signed.head[:16]}…)"
                        if head == signed.head else
                        f"the chain recomputed to {last} ends in {head[:16]}…, the checkpoint signs"
                        f" {signed.head[:16]}…"))
    return checks
