"""The tamper-evident chain as operators check it: signed checkpoints and verification.

Reads of the history (export, trace, history, state, proof) are
:mod:`hub.audit`'s; these two write or check the chain itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.infra.chain import Checkpoint, checkpoint_valid, stored_checkpoints, take_checkpoint, verify
from hub.infra.config import Settings
from hub.infra.database import connect
from hub.ocpi.envelope import format_datetime
from hub.services.operators import OperatorError


class BadInput(OperatorError):
    """The command's input cannot be used (exit 2, not a verdict)."""


def checkpoint(settings: Settings, database_url: str) -> Checkpoint:
    """Sign the chain head now (kept in the database; the caller may also write it out)."""
    with connect(database_url, settings.database_schema) as conn, conn.transaction():
        taken = take_checkpoint(conn, settings.checkpoint_key(), format_datetime(datetime.now(UTC)))
    if taken is None:
        raise OperatorError("the log is empty: nothing to sign yet")
    return taken


@dataclass
class Verdict:
    ok: bool
    checked: int
    head_position: int | None
    head: str | None
    break_position: int | None
    problem: str | None
    checkpoints: int

    def as_dict(self) -> dict:
        return dict(vars(self))


def verify_chain(settings: Settings, database_url: str, start: int, files: list[Checkpoint],
                 progress: Callable[[int], None] | None = None) -> Verdict:
    """Recompute the hash chain after ``start`` against the stored checkpoints and ``files``."""
    if start < 0:
        raise BadInput(f"--from {start}: expected a position, 0 or more")
    key = settings.checkpoint_key()
    with connect(database_url, settings.database_schema) as conn:
        (head,) = conn.execute("SELECT greatest((SELECT max(notification_id) FROM hub_events),"
                               " (SELECT max(notification_id) FROM hub_audit_chain))").fetchone()
        if start > (head or 0):
            raise BadInput(f"--from {start} is past the log's head ({head or 0})")
        checkpoints = stored_checkpoints(conn) + files
        forged = next((c for c in checkpoints if not checkpoint_valid(key, c)), None)
        if forged is not None:
            return Verdict(False, 0, None, None, None,
                           f"checkpoint at {forged.position} has an invalid signature (another key, or forged)",
                           len(checkpoints))
        result = verify(conn, start=start, checkpoints=checkpoints, progress=progress)
    return Verdict(result.ok, result.checked, result.head_position, result.head.hex(), result.break_position,
                   result.problem, len(checkpoints))
