"""The Merkle part of a CDR dispute bundle (format 2): inclusion proofs instead of a run of digests.

Every event a bundle carries (the CDR, its request's record, each delivery attempt)
gets an RFC 9162 inclusion proof to one signed checkpoint: O(log n) hashes each, so
a bundle stays a few kilobytes at any log size and shows nothing of anyone else's
traffic. :func:`check_tree_part` checks them with the verifier key alone.
"""

from __future__ import annotations

import base64

from hub.infra import tlog
from hub.infra.merkle import leaf_hash, leaf_input, root_from_inclusion
from hub.infra.notes import NoteError, Signer, Verifier, open_checkpoint


class TreeProofError(Exception):
    """The tree cannot prove what the bundle carries (the message says why)."""


def tree_part(conn, positions: list[int], signer: Signer, origin: str, now: str) -> tuple[dict, bool]:
    """``{"checkpoint": note, "inclusion": {position: {leaf_index, path}}}`` and whether a checkpoint was signed.

    Uses the earliest stored checkpoint that covers every carried event; signs one now if none does.
    """
    def covering() -> tuple[dict, str | None]:
        leaves = {p: tlog.leaf_at(conn, p) for p in positions}
        if any(leaf is None for leaf in leaves.values()):
            return leaves, None
        need = max(index for index, _ in leaves.values()) + 1
        row = conn.execute("SELECT note FROM hub_audit_tree_heads WHERE size >= %s ORDER BY size, id LIMIT 1",
                           (need,)).fetchone()
        return leaves, row[0] if row else None

    leaves, note = covering()
    taken = note is None
    if taken:
        with conn.transaction():
            tlog.sign_checkpoint(conn, signer, origin, now)
        leaves, note = covering()
        if note is None:
            raise TreeProofError("the Merkle tree does not reach the bundle's events; run hub audit verify")
    size = int(note.split("\n")[1])
    tree = tlog.stored_tree(conn)
    inclusion = {str(p): {"leaf_index": index,
                          "path": [base64.b64encode(h).decode() for h in tree.inclusion(index, size)]}
                 for p, (index, _) in sorted(leaves.items())}
    return {"checkpoint": note, "inclusion": inclusion}, taken


def check_tree_part(bundle: dict, carried: dict[int, tuple[str, bytes | None]], withheld: dict[int, bytes],
                    verifiers: list[Verifier]):
    """The checks of the tree part: (``inclusion``, ``checkpoint signature``) as (name, ok, detail)."""
    try:
        head, signers = open_checkpoint(bundle["checkpoint"], verifiers)
    except (KeyError, TypeError, NoteError) as exc:
        root, signed = None, ("checkpoint signature", False, f"forged checkpoint: {exc}")
    else:
        root = head.root
        signed = ("checkpoint signature", True,
                  f"{head.origin} size {head.size} signed by " + ", ".join(f"{v.name}+{v.id.hex()}" for v in signers))
    problems = []
    proofs = bundle.get("inclusion") or {}
    size = head.size if root is not None else None
    for position, (what, digest) in sorted(carried.items()):
        digest = digest if digest is not None else withheld.get(position)
        entry = proofs.get(str(position))
        if entry is None or digest is None:
            problems.append(f"{what} (position {position}) has no inclusion proof")
            continue
        try:
            path = [base64.b64decode(h) for h in entry["path"]]
            leaf = leaf_hash(leaf_input(position, digest))
            reached = root_from_inclusion(int(entry["leaf_index"]), size or 0, leaf, path)
        except (KeyError, TypeError, ValueError):
            reached = None
        if root is not None and reached != root:
            problems.append(f"{what} (position {position}) is not in the signed tree of size {size}")
    inclusion = ("inclusion", not problems and root is not None,
                 "; ".join(problems) if problems else
                 f"{len(carried)} event(s) proved in the tree of size {size}" if root is not None else
                 "no signed tree to prove the events in")
    return [inclusion, signed]
