"""Checkpoints pushed to the partners that witness the transparency log.

- :class:`CheckpointSubscriptions` follows the subscription events
  (:mod:`hub.domain.witnesses`) into ``hub_audit_subscriptions``: which platform
  wants checkpoints, at which URL.
- :func:`queue_checkpoints` (a worker job, and right after the worker signs one)
  queues one delivery per new signed checkpoint (``hub_audit_tree_heads``) and per
  subscribed platform that has a party CONNECTED or OFFLINE (as stored-and-forwarded
  messages are), in the transaction that moves ``hub_audit_push_position`` past it:
  nothing is queued twice or lost. The sender POSTs it like every other delivery
  (leases, retries with backoff, OFFLINE after calls that find no answer, parking,
  a ``Call.Made`` per attempt), one checkpoint after another per platform (one
  object, ``checkpoint``), so a witness receives them in the order they were signed.
- The body is small JSON: ``origin``, ``size``, ``root`` (base64), ``created_at`` and
  ``note``, the C2SP signed note that alone is evidence (docs/audit.md).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from hub.domain.witnesses import CheckpointSubscription
from hub.infra.eventlog import Follower
from hub.infra.notes import split_note
from scheduler.outbox import Outgoing, enqueue_many

MODULE = "checkpoints"  # the delivery rows' module (not an OCPI module)
OBJECT_KEY = "checkpoint"  # one object per platform: its checkpoints go out in order
PUSH_LOCK = 0x5457_4954  # "TWIT": one queuer at a time


class CheckpointSubscriptions(Follower):
    """``hub_audit_subscriptions``: the platforms that subscribed to checkpoints, and where."""

    name = "audit-subscriptions"
    event_classes = (CheckpointSubscription.Created, CheckpointSubscription.Subscribed,
                     CheckpointSubscription.Unsubscribed)

    def ddl(self) -> list[str]:
        return ["""CREATE TABLE IF NOT EXISTS hub_audit_subscriptions (
                    subscription_id uuid PRIMARY KEY,
                    platform_id uuid NOT NULL,
                    party text,
                    url text,
                    since_position bigint
                )"""]

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        for position, event in events:
            if isinstance(event, CheckpointSubscription.Created):
                cur.execute("INSERT INTO hub_audit_subscriptions (subscription_id, platform_id)"
                            " VALUES (%s, %s) ON CONFLICT DO NOTHING", (event.originator_id, event.platform_id))
            elif isinstance(event, CheckpointSubscription.Subscribed):
                cur.execute("UPDATE hub_audit_subscriptions SET url = %s, party = %s, since_position = %s"
                            " WHERE subscription_id = %s", (event.url, event.party, position, event.originator_id))
            else:  # Unsubscribed: what is still queued is not sent
                row = cur.execute("UPDATE hub_audit_subscriptions SET url = NULL WHERE subscription_id = %s"
                                  " RETURNING platform_id", (event.originator_id,)).fetchone()
                if row is not None:
                    cur.execute("UPDATE hub_deliveries SET state = 'FAILED', lease_until = NULL, leased_by = NULL,"
                                " note = 'not sent: the partner unsubscribed from checkpoints'"
                                " WHERE platform_id = %s AND module = %s AND state = 'PENDING'",
                                (row[0], MODULE))


def body_of(note: str, created_at: str) -> dict:
    """What a push carries: the note, and its head's fields for convenience."""
    text, _ = split_note(note)
    origin, size, root = text.split("\n")[:3]
    return {"origin": origin, "size": int(size), "root": root, "created_at": created_at, "note": note}


def queue_checkpoints(conn: psycopg.Connection) -> int:
    """Queue the checkpoints signed since the last call for every subscriber; how many rows.

    Run inside a transaction (its own, or the one that signed the checkpoint).
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUSH_LOCK,))
    row = conn.execute("SELECT head_id FROM hub_audit_push_position WHERE id = 1").fetchone()
    after = row[0] if row else 0
    heads = conn.execute("SELECT id, size, created_at, note FROM hub_audit_tree_heads WHERE id > %s"
                         " ORDER BY id", (after,)).fetchall()
    if not heads:
        return 0
    subscribers = conn.execute(
        "SELECT s.platform_id, s.party, s.url FROM hub_audit_subscriptions s WHERE s.url IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM view_parties v WHERE v.platform_id = s.platform_id"
        "             AND v.status IN ('CONNECTED', 'OFFLINE'))"
        " ORDER BY s.platform_id").fetchall()
    items = [Outgoing(platform_id=platform_id, module=MODULE, interface="RECEIVER", object_key=OBJECT_KEY,
                      method="POST", path=url, correlation_id=str(uuid.uuid4()), position=size,
                      recipient=party, body=body_of(note, created_at))
             for _head_id, size, created_at, note in heads for platform_id, party, url in subscribers]
    with conn.cursor() as cur:
        enqueue_many(cur, items)
    conn.execute("INSERT INTO hub_audit_push_position (id, head_id) VALUES (1, %s)"
                 " ON CONFLICT (id) DO UPDATE SET head_id = excluded.head_id", (heads[-1][0],))
    return len(items)
