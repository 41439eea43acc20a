"""The transparency log as auditors and partners check it: tree verification, proofs, offline checks.

- :func:`hub.infra.tlogcheck.verify_log` (re-exported) recomputes the chain *and* the
  Merkle tree from the events in one pass and holds them against every signed checkpoint;
- :func:`inclusion_bundle` / :func:`consistency_bundle` build proofs as JSON bundles;
- :func:`check_bundle` checks a bundle with nothing but verifier keys (no database).

Problems are named as an auditor names them: ``forged checkpoint``, ``rewritten``,
``truncated``, ``fork``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import psycopg

from hub.audit.records import redact
from hub.infra import tlog
from hub.infra.chain import event_digest
from hub.infra.merkle import leaf_hash, leaf_input, root_from_inclusion, verify_consistency
from hub.infra.notes import NoteError, Verifier, open_checkpoint
from hub.infra.tlogcheck import LogVerdict, b64, verify_log

__all__ = ["LogVerdict", "verify_log", "inclusion_bundle", "consistency_bundle", "check_bundle"]

INCLUSION = "chargeindia-hub/inclusion-proof/1"
CONSISTENCY = "chargeindia-hub/consistency-proof/1"


class ProofUnavailable(LookupError):
    """No proof can be made as asked; the message says what to do."""


# Proofs ---------------------------------------------------------------------------
def _event(conn: psycopg.Connection, position: int) -> dict:
    row = conn.execute("SELECT originator_id, originator_version, topic, state FROM hub_events"
                       " WHERE notification_id = %s", (position,)).fetchone()
    if row is None:
        raise ProofUnavailable(f"no event at position {position}; hub audit export shows the positions")
    event = {"position": position, "originator_id": str(row[0]), "version": row[1], "topic": row[2]}
    state = bytes(row[3]).decode("utf-8")
    try:
        import orjson

        if redact(orjson.loads(state)) != orjson.loads(state):  # never let a secret out in a proof
            event["digest"] = event_digest(row[0], row[1], row[2], bytes(row[3])).hex()
            return event
    except ValueError:
        pass
    event["state"] = state
    return event


def _checkpoint_of(conn: psycopg.Connection, size: int) -> str | None:
    row = conn.execute("SELECT note FROM hub_audit_tree_heads WHERE size = %s ORDER BY id DESC LIMIT 1",
                       (size,)).fetchone()
    return row[0] if row else None


def inclusion_bundle(conn: psycopg.Connection, position: int, size: int | None = None) -> dict:
    leaf = tlog.leaf_at(conn, position)
    if leaf is None:
        _event(conn, position)
        raise ProofUnavailable(f"event {position} is not in the Merkle tree yet: run hub audit checkpoint")
    index, hash_ = leaf
    if size is None:
        row = conn.execute("SELECT size, note FROM hub_audit_tree_heads WHERE size > %s ORDER BY id DESC"
                           " LIMIT 1", (index,)).fetchone()
        if row is None:
            raise ProofUnavailable(f"no checkpoint covers position {position} yet: run hub audit checkpoint")
        size, note = row
    else:
        if size <= index or size > tlog.tree_size(conn):
            raise ProofUnavailable(f"--size {size}: the event is leaf {index}, the tree holds"
                                   f" {tlog.tree_size(conn)}; expected a size from {index + 1} to that")
        note = _checkpoint_of(conn, size)
    tree = tlog.stored_tree(conn)
    return {"format": INCLUSION, "event": _event(conn, position), "leaf_index": index, "tree_size": size,
            "leaf_hash": b64(hash_), "root": b64(tree.root(size)),
            "inclusion": [b64(h) for h in tree.inclusion(index, size)], "checkpoint": note}


def consistency_bundle(conn: psycopg.Connection, old: int, new: int) -> dict:
    size = tlog.tree_size(conn)
    if not 0 < old <= new <= size:
        raise ProofUnavailable(f"sizes {old} and {new}: expected 1 <= OLD <= NEW <= {size} (the tree's size)")
    tree = tlog.stored_tree(conn)
    return {"format": CONSISTENCY, "old_size": old, "new_size": new, "old_root": b64(tree.root(old)),
            "new_root": b64(tree.root(new)), "consistency": [b64(h) for h in tree.consistency(old, new)],
            "old_checkpoint": _checkpoint_of(conn, old), "new_checkpoint": _checkpoint_of(conn, new)}


# Checking a bundle with the public key alone --------------------------------------
@dataclass
class Check:
    check: str
    ok: bool
    detail: str


def _signed(label: str, note: str | None, size: int, root: bytes, verifiers: list[Verifier]) -> Check:
    if not note:
        return Check(label, False, f"no signed checkpoint of size {size} in the bundle: ask for a proof to a"
                                   " checkpointed size")
    try:
        head, signers = open_checkpoint(note, verifiers)
    except NoteError as exc:
        return Check(label, False, f"forged checkpoint: {exc}")
    if head.size != size or head.root != root:
        return Check(label, False, f"the checkpoint signs size {head.size}, root {b64(head.root)}; the proof"
                                   f" leads to size {size}, root {b64(root)}")
    names = ", ".join(f"{v.name}+{v.id.hex()}" for v in signers)
    return Check(label, True, f"{head.origin} size {size} signed by {names}")


def check_bundle(bundle: Any, verifiers: list[Verifier]) -> list[Check]:
    """Every check of an inclusion or consistency bundle, in order; it holds when all are ok."""
    try:
        kind = bundle["format"]
        if kind == INCLUSION:
            event, index, size = bundle["event"], int(bundle["leaf_index"]), int(bundle["tree_size"])
            path = [base64.b64decode(h) for h in bundle["inclusion"]]
            position = int(event["position"])
            if "state" in event:
                digest = event_digest(event["originator_id"], int(event["version"]), event["topic"],
                                      event["state"].encode("utf-8"))
            else:
                digest = bytes.fromhex(event["digest"])
        elif kind == CONSISTENCY:
            old, new = int(bundle["old_size"]), int(bundle["new_size"])
            old_root, new_root = base64.b64decode(bundle["old_root"]), base64.b64decode(bundle["new_root"])
            path = [base64.b64decode(h) for h in bundle["consistency"]]
        else:
            raise ValueError(f"format {kind!r} is neither {INCLUSION} nor {CONSISTENCY}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [Check("bundle", False, f"not a readable proof bundle ({type(exc).__name__}: {exc})")]
    if kind == INCLUSION:
        leaf = leaf_hash(leaf_input(position, digest))
        root = root_from_inclusion(index, size, leaf, path)
        checks = [Check("leaf", True, f"event {position} ({event['topic']}) is leaf {index}: {b64(leaf)}")]
        if root is None:
            return [*checks, Check("inclusion", False, f"the proof does not fit leaf {index} of a tree of {size}")]
        checks.append(Check("inclusion", True, f"{len(path)} hashes lead to root {b64(root)}"))
        return [*checks, _signed("checkpoint", bundle.get("checkpoint"), size, root, verifiers)]
    ok = verify_consistency(old, new, old_root, new_root, path)
    checks = [Check("consistency", ok, f"the tree of size {new} extends the tree of size {old}" if ok else
                    f"the proof does not lead from root {b64(old_root)} to root {b64(new_root)}: the history"
                    f" of the first {old} events was rewritten, or the proof is wrong")]
    checks.append(_signed("old checkpoint", bundle.get("old_checkpoint"), old, old_root, verifiers))
    checks.append(_signed("new checkpoint", bundle.get("new_checkpoint"), new, new_root, verifiers))
    return checks


# What a partner may see -----------------------------------------------------------
def concerns_partner(conn: psycopg.Connection, position: int, platform_id: str, parties: set[str]) -> bool:
    """The event at ``position`` is one the partner sent or that was delivered to it.

    Its own requests' records and the calls the hub made to it (``platform_id``), and
    the pushes it sent (``message.from``, one of its parties as ``CC/PID/ROLE``).
    """
    import orjson

    row = conn.execute("SELECT state FROM hub_events WHERE notification_id = %s", (position,)).fetchone()
    if row is None:
        return False
    try:
        state = orjson.loads(bytes(row[0]))
    except ValueError:
        return False
    if not isinstance(state, dict):
        return False
    if str(state.get("platform_id")) == platform_id:
        return True
    message = state.get("message")
    return isinstance(message, dict) and str(message.get("from", "")).upper() in parties
