"""Forwarding pushes: CPO objects to eMSPs, eMSP Tokens to CPOs; who receives each change, and how.

Who receives each change is decided by the recipient policy
(:meth:`hub.domain.recipients.Policy.forward`); DESIGN.md "Hub semantics":
- ``OCPI-to`` = the hub (broadcast) or no ``OCPI-to`` (open routing):
  Locations and Tariffs go to every eMSP-side party the routing rules allow,
  sent with FROM = hub (broadcast) or FROM = the CPO (open), TO = the recipient;
- ``OCPI-to`` = one party (directed): only that party, FROM = the CPO;
- Sessions and CDRs go only to the eMSP of ``cdr_token``, never broadcast;
- Tokens (pushed by eMSPs) go the other way: to every CPO the rules allow,
  or to the addressed CPO.
The URL keeps the owner's ``country_code/party_id``; the body is sent exactly
as the CPO pushed it; the original ``X-Correlation-ID`` travels along.

This follower reads the parties, rules and objects views, so the worker runs
it only up to their positions.
"""

from __future__ import annotations

from typing import Any

import psycopg

from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
from hub.domain import objects as o
from hub.domain.modules import CDR_TOKEN, MODULES
from hub.domain.parties import party_key
from hub.domain.recipients import HIDDEN, Policy
from hub.domain.routing import BROADCAST
from hub.infra.eventlog import Follower
from projections.objects import CHANGE_EVENTS, emsp_tokens, module_of, object_of
from projections.recipients import load_policy
from scheduler.outbox import NotCaughtUp, Outgoing, enqueue_many


class ForwardingDispatcher(Follower):
    name = "dispatch-objects"
    event_classes = CHANGE_EVENTS
    batch_size = 500

    def ddl(self) -> list[str]:
        # Who was sent each Location and still sees it (the recipient policy's ``audience``): a
        # party that stops seeing it gets the change that hid it once, then no more. Created once,
        # filled from the deliveries already queued, so Locations sent before it existed count.
        return ["""DO $$ BEGIN
            IF to_regclass('hub_location_audience') IS NULL THEN
                CREATE TABLE hub_location_audience (
                    object_key text NOT NULL,
                    recipient text NOT NULL,
                    PRIMARY KEY (object_key, recipient));
                IF to_regclass('hub_deliveries') IS NOT NULL THEN
                    INSERT INTO hub_location_audience
                    SELECT DISTINCT object_key, recipient FROM hub_deliveries
                    WHERE module = 'locations' AND recipient IS NOT NULL;
                END IF;
            END IF;
        END $$"""]

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        policy = load_policy(cur)
        outgoing: list[Outgoing] = []
        audience = _Audience(cur)
        for position, event in events:
            self._forward(cur, policy, position, event, outgoing, audience)
        enqueue_many(cur, outgoing)  # in event order: per recipient and object, ids keep the log's order
        audience.save()

    def _forward(self, cur, policy: Policy, position: int, event: Any, outgoing: list[Outgoing],
                 audience: _Audience) -> None:
        module = module_of(event)
        message = event.message
        found = object_of(cur, event.originator_id)
        if found is None:
            return
        cc, pid, oid, body = found
        owner = party_key(cc, pid, MODULES[module].owner)
        object_key = f"{module}/{cc}/{pid}/{oid}"
        verdicts = policy.forward(module, owner=owner, origin=message["from"], scenario=message["scenario"],
                                  to=message["to"], body=body, tokens=lambda key: emsp_tokens(cur, key),
                                  audience=lambda: audience.of(object_key))
        for verdict in verdicts:
            if not verdict.allowed:
                continue
            party = verdict.party
            hidden = verdict.decided_by == HIDDEN
            if module == "locations":
                audience.note(object_key, party.key, sees=not hidden)
            broadcast = message["scenario"] == BROADCAST and MODULES[module].routing != CDR_TOKEN
            from_cc, from_pid = (HUB_COUNTRY_CODE, HUB_PARTY_ID) if broadcast else message["from"].split("/")[:2]
            outgoing.append(Outgoing(
                platform_id=party.platform_id,
                recipient=party.key,
                module=module,
                interface="RECEIVER",
                object_key=object_key,
                # The last change to a party that no longer sees the Location is its current state
                # (a PUT rendered when sent): the view the policy judged may already be ahead of this
                # event, and the change that hid it must reach the party whichever event told it.
                method="PUT" if hidden else message["method"],
                path=f"/{cc}/{pid}/{oid}" if hidden else message["path"],
                body=None if hidden else _body_to_send(event),
                kind="current" if hidden else "exact",
                headers={
                    "OCPI-from-country-code": from_cc,
                    "OCPI-from-party-id": from_pid,
                    "OCPI-to-country-code": party.country_code,
                    "OCPI-to-party-id": party.party_id,
                },
                correlation_id=message["correlation_id"],
                position=position,
            ))


class _Audience:
    """``hub_location_audience`` within one batch: read once per Location, written at the end."""

    def __init__(self, cur: psycopg.Cursor) -> None:
        self.cur = cur
        self.known: dict[str, set[str]] = {}
        self.changes: dict[tuple[str, str], bool] = {}

    def of(self, object_key: str) -> set[str]:
        if object_key not in self.known:
            self.known[object_key] = {r for (r,) in self.cur.execute(
                "SELECT recipient FROM hub_location_audience WHERE object_key = %s", (object_key,))}
        return self.known[object_key]

    def note(self, object_key: str, recipient: str, *, sees: bool) -> None:
        members = self.known.get(object_key)  # loaded when the policy asked: update it for later events
        if members is not None:
            (members.add if sees else members.discard)(recipient)
        self.changes[(object_key, recipient)] = sees

    def save(self) -> None:
        joined = [key for key, sees in self.changes.items() if sees]
        left = [key for key, sees in self.changes.items() if not sees]
        if joined:
            self.cur.executemany("INSERT INTO hub_location_audience (object_key, recipient) VALUES (%s, %s)"
                                 " ON CONFLICT DO NOTHING", joined)
        if left:
            self.cur.executemany("DELETE FROM hub_location_audience WHERE object_key = %s AND recipient = %s",
                                 left)


def _body_to_send(event: Any) -> Any:
    if isinstance(event, o.Tariff.Deleted):
        return None
    return event.body


def render_current(app):
    """Current state of a Location/Tariff/Session/Token for a current-state send.

    Returns ``(method, path, body, position)``: ``position`` is the log position of
    the last change the state includes. Raises :class:`NotCaughtUp` while this
    dispatcher has not queued the deliveries of every change the view holds: a
    state sent then would include changes whose own deliveries come later (a
    Session's charging periods would then arrive twice).
    """

    def render(row: dict):
        module, cc, pid, oid = row["object_key"].split("/", 3)
        with app.pool.connection() as conn:
            found = conn.execute(
                "SELECT body, deleted, position, (SELECT position FROM hub_tracking WHERE name = %s)"
                " FROM view_objects WHERE module = %s AND country_code = %s AND party_id = %s AND object_id = %s",
                (ForwardingDispatcher.name, module, cc, pid, oid),
            ).fetchone()
        if found is None:
            return None
        body, deleted, position, dispatched = found
        if dispatched is None or position > dispatched:
            raise NotCaughtUp(f"{row['object_key']}: the view is at {position}, deliveries at {dispatched}")
        owner = f"/{body.get('country_code', cc)}/{body.get('party_id', pid)}/"
        if module == "tokens":
            path = owner + f"{body['uid']}?type={body['type']}"
        else:
            path = owner + str(body.get("id", oid))
        if deleted:
            return "DELETE", path, None, position
        return "PUT", path, body, position

    return render
