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
from hub.domain.recipients import Policy
from hub.domain.routing import BROADCAST
from hub.infra.eventlog import Follower
from projections.objects import CHANGE_EVENTS, emsp_tokens, module_of, object_of
from projections.recipients import load_policy
from scheduler.outbox import NotCaughtUp, Outgoing, enqueue_many


class ForwardingDispatcher(Follower):
    name = "dispatch-objects"
    event_classes = CHANGE_EVENTS
    batch_size = 500

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        policy = load_policy(cur)
        outgoing: list[Outgoing] = []
        for position, event in events:
            self._forward(cur, policy, position, event, outgoing)
        enqueue_many(cur, outgoing)  # in event order: per recipient and object, ids keep the log's order

    def _forward(self, cur, policy: Policy, position: int, event: Any, outgoing: list[Outgoing]) -> None:
        module = module_of(event)
        message = event.message
        found = object_of(cur, event.originator_id)
        if found is None:
            return
        cc, pid, oid, body = found
        owner = party_key(cc, pid, MODULES[module].owner)
        verdicts = policy.forward(module, owner=owner, origin=message["from"], scenario=message["scenario"],
                                  to=message["to"], body=body, tokens=lambda key: emsp_tokens(cur, key))
        for verdict in verdicts:
            if not verdict.allowed:
                continue
            party = verdict.party
            broadcast = message["scenario"] == BROADCAST and MODULES[module].routing != CDR_TOKEN
            from_cc, from_pid = (HUB_COUNTRY_CODE, HUB_PARTY_ID) if broadcast else message["from"].split("/")[:2]
            outgoing.append(Outgoing(
                platform_id=party.platform_id,
                recipient=party.key,
                module=module,
                interface="RECEIVER",
                object_key=f"{module}/{cc}/{pid}/{oid}",
                method=message["method"],
                path=message["path"],
                body=_body_to_send(event),
                headers={
                    "OCPI-from-country-code": from_cc,
                    "OCPI-from-party-id": from_pid,
                    "OCPI-to-country-code": party.country_code,
                    "OCPI-to-party-id": party.party_id,
                },
                correlation_id=message["correlation_id"],
                position=position,
            ))


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
