"""Verifying the whole transparency log: the chain and the Merkle tree against every checkpoint.

Problems are named as an auditor names them: ``forged checkpoint``, ``rewritten``,
``truncated``, ``fork``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg

from hub.infra import chain, tlog
from hub.infra.merkle import Accumulator, leaf_hash, leaf_input
from hub.infra.notes import NoteError, TreeHead, Verifier, open_checkpoint


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass
class LogVerdict:
    ok: bool
    checked: int
    head_position: int | None
    head: str | None
    break_position: int | None
    problem: str | None
    checkpoints: int
    tree_size: int = 0
    signed_sizes: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(vars(self))


def open_heads(notes: Iterable[tuple[str, str]], verifiers: list[Verifier]) -> tuple[list[TreeHead], str | None]:
    """Open every ``(label, note)``; the heads, or the first problem (forged or unreadable)."""
    heads = []
    for label, note in notes:
        try:
            head, _ = open_checkpoint(note, verifiers)
        except NoteError as exc:
            return heads, f"forged checkpoint: {label}: {exc}"
        heads.append(head)
    return heads, None


def find_fork(heads: list[TreeHead]) -> str | None:
    roots: dict[int, bytes] = {}
    for head in heads:
        if roots.setdefault(head.size, head.root) != head.root:
            return (f"fork: two checkpoints of size {head.size} sign different roots"
                    f" ({b64(roots[head.size])} and {b64(head.root)})")
    return None


def verify_log(conn: psycopg.Connection, verifiers: list[Verifier], files: list[tuple[str, str]],
               hmac_checkpoints: list[chain.Checkpoint], *, start: int = 0,
               progress: Callable[[int], None] | None = None) -> LogVerdict:
    """The chain, then the tree recomputed from the events against every checkpoint (start 0 only)."""
    stored = [(f"stored checkpoint of size {size} ({created})", note) for size, created, note in tlog.tree_heads(conn)]
    heads, problem = open_heads([*stored, *files], verifiers)
    count = len(heads) + len(hmac_checkpoints)

    def failed(message: str, at: int | None = None, checked: int = 0) -> LogVerdict:
        return LogVerdict(False, checked, None, None, at, message, count)

    if problem:
        return failed(problem)
    problem = find_fork(heads)
    if problem:
        return failed(problem)
    stored_size = tlog.tree_size(conn)
    wanted = {h.size: h.root for h in heads}
    accumulator = Accumulator()
    roots: dict[int, bytes] = {}
    mismatch: list[str] = []

    def on_event(position: int, digest: bytes) -> None:
        accumulator.append(leaf_hash(leaf_input(position, digest)))
        size = accumulator.size
        if size in wanted or size == stored_size:
            roots[size] = accumulator.root()
            if size in wanted and roots[size] != wanted[size] and not mismatch:
                mismatch.append(f"rewritten: the log's first {size} events (up to position {position})"
                                " no longer hash to the root the checkpoint of that size signs")

    result = chain.verify(conn, start=start, checkpoints=hmac_checkpoints, progress=progress,
                          on_event=on_event if start == 0 else None)
    verdict = LogVerdict(result.ok, result.checked, result.head_position, result.head.hex(),
                         result.break_position, result.problem, count, accumulator.size, sorted(wanted))
    if not result.ok:
        if result.problem and "differs from the signed checkpoint" in result.problem:
            verdict.problem = "rewritten: " + result.problem
        return verdict
    if start:
        return verdict
    if mismatch:
        verdict.ok, verdict.problem = False, mismatch[0]
        return verdict
    longer = [size for size in wanted if size > accumulator.size]
    if longer:
        verdict.ok = False
        verdict.problem = (f"truncated: the log holds {accumulator.size} events, the checkpoint of size"
                           f" {max(longer)} signed more")
        return verdict
    if stored_size and stored_size <= accumulator.size and \
            tlog.stored_tree(conn).root(stored_size) != roots.get(stored_size):
        verdict.ok = False
        verdict.problem = f"the stored Merkle tree (size {stored_size}) differs from the events"
    return verdict
