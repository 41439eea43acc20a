"""The transparency log as operators run it: signed checkpoints, keys and verification.

Reads of the history (export, trace, history, state, proofs) are :mod:`hub.audit`'s;
these write the tree and its checkpoints, or check the whole log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from hub.infra import tlog
from hub.infra.chain import Checkpoint, checkpoint_valid, stored_checkpoints
from hub.infra.config import Settings
from hub.infra.database import connect
from hub.infra.notes import TreeHead, Verifier
from hub.infra.tlogcheck import LogVerdict, verify_log
from hub.ocpi.envelope import format_datetime
from hub.services.operators import OperatorError


class BadInput(OperatorError):
    """The command's input cannot be used (exit 2, not a verdict)."""


def checkpoint(settings: Settings, database_url: str) -> tuple[TreeHead, str]:
    """Catch the tree up with the log as it stands, sign its head and keep it; (head, note)."""
    signer = settings.audit_signer()
    with connect(database_url, settings.database_schema) as conn, conn.transaction():
        if not conn.execute("SELECT 1 FROM hub_events LIMIT 1").fetchone():
            raise OperatorError("the log is empty: nothing to sign yet")
        return tlog.sign_checkpoint(conn, signer, settings.log_origin, format_datetime(datetime.now(UTC)))


def public_keys(settings: Settings, database_url: str | None) -> list[dict]:
    """The key signing now, then every older key the hub signed with (kept for old checkpoints)."""
    current = settings.audit_signer().verifier
    rows = [{"vkey": current.vkey, "status": "current", "first_used_at": None}]
    if database_url:
        with connect(database_url, settings.database_schema) as conn:
            for verifier, first in tlog.known_keys(conn):
                if verifier == current:
                    rows[0]["first_used_at"] = first
                else:
                    rows.append({"vkey": verifier.vkey, "status": "retired", "first_used_at": first})
    return rows


def verify_chain(settings: Settings, database_url: str, start: int, hmac_files: list[Checkpoint],
                 note_files: list[tuple[str, str]], trusted: list[Verifier] | None = None,
                 progress: Callable[[int], None] | None = None) -> LogVerdict:
    """The chain and the Merkle tree after ``start``, against every checkpoint.

    ``trusted``: the only keys to accept (an auditor's own copy); None: the hub's current
    key and every key listed in ``hub_audit_keys``. HMAC checkpoints of older databases
    are checked with the HMAC key as before.
    """
    if start < 0:
        raise BadInput(f"--from {start}: expected a position, 0 or more")
    with connect(database_url, settings.database_schema) as conn:
        (head,) = conn.execute("SELECT greatest((SELECT max(notification_id) FROM hub_events),"
                               " (SELECT max(notification_id) FROM hub_audit_chain))").fetchone()
        if start > (head or 0):
            raise BadInput(f"--from {start} is past the log's head ({head or 0})")
        if trusted is None:
            trusted = [settings.audit_signer().verifier, *(v for v, _ in tlog.known_keys(conn))]
        legacy = stored_checkpoints(conn) + hmac_files
        if legacy:
            key = settings.checkpoint_key()
            forged = next((c for c in legacy if not checkpoint_valid(key, c)), None)
            if forged is not None:
                return LogVerdict(False, 0, None, None, None, f"forged checkpoint: HMAC checkpoint at"
                                  f" {forged.position} has an invalid signature (another key, or forged)",
                                  len(legacy))
        return verify_log(conn, trusted, note_files, legacy, start=start, progress=progress)
