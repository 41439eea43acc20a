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


# Checkpoints by push (witnesses: docs/audit.md "Checkpoints by push") -------------------
def subscription(app, platform_id) -> dict | None:
    """The platform's checkpoint subscription (``url``, ``party``), or None."""
    from eventsourcing.application import AggregateNotFoundError

    from hub.domain.witnesses import CheckpointSubscription

    try:
        found = app.repository.get(CheckpointSubscription.create_id(platform_id))
    except AggregateNotFoundError:
        return None
    return {"url": found.url, "party": found.party} if found.url else None


def subscribe(app, guard, platform_id, party: str, url: str, by: str) -> dict:
    """Push every new checkpoint to ``url`` (checked by the outbound guard now, and at each call)."""
    from eventsourcing.application import AggregateNotFoundError

    from hub.domain.witnesses import CheckpointSubscription, url_problem
    from hub.infra.outbound import OutboundRefused

    problem = url_problem(url)
    if problem:
        raise BadInput(problem)
    try:
        guard.check_url(url)
    except OutboundRefused as exc:
        raise BadInput(f"url: {exc}") from None
    try:
        found = app.repository.get(CheckpointSubscription.create_id(platform_id))
    except AggregateNotFoundError:
        found = CheckpointSubscription(platform_id)
    if found.url != url or found.party != party:
        found.subscribe(url=url, party=party, by=by)
        app.save(found)
    return {"url": url, "party": party}


def unsubscribe(app, platform_id, by: str) -> bool:
    """No more pushes (those still queued are dropped); False if it was not subscribed."""
    from hub.domain.witnesses import CheckpointSubscription

    if subscription(app, platform_id) is None:
        return False
    found = app.repository.get(CheckpointSubscription.create_id(platform_id))
    found.unsubscribe(by=by)
    app.save(found)
    return True


def platform_of(app, name) -> tuple[str, str]:
    """The platform id of the party ``name`` (``CC/PID[/ROLE]``) and its ``CC/PID/ROLE`` key."""
    from hub.services.operators.parties import find

    parties = find(app, name)
    if not parties:
        raise OperatorError(f"no party {name} (`hub parties list` shows every party)")
    platforms = {str(p.platform_id) for p in parties}
    if len(platforms) > 1:
        raise OperatorError(f"{name} has roles on several platforms: write it as {name}/ROLE")
    party = parties[0]
    return platforms.pop(), f"{party.country_code}/{party.party_id}/{party.role}"


def subscriptions(app) -> list[dict]:
    """Every subscribed platform: its party, URL, and how its pushes stand in the delivery queue."""
    with app.pool.connection() as conn:
        rows = conn.execute(
            "SELECT s.party, s.url, s.platform_id,"
            " count(d.id) FILTER (WHERE d.state = 'DELIVERED'),"
            " count(d.id) FILTER (WHERE d.state = 'PENDING'),"
            " count(d.id) FILTER (WHERE d.state = 'FAILED'),"
            " max(d.position) FILTER (WHERE d.state = 'DELIVERED')"
            " FROM hub_audit_subscriptions s LEFT JOIN hub_deliveries d"
            "  ON d.platform_id = s.platform_id AND d.module = 'checkpoints'"
            " WHERE s.url IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1").fetchall()
    return [{"party": party, "url": url, "platform_id": str(platform), "delivered": delivered,
             "pending": pending, "failed": failed, "last_size_delivered": last}
            for party, url, platform, delivered, pending, failed, last in rows]
