"""Forwarding pushes: CPO objects to eMSPs, eMSP Tokens to CPOs; who receives each change, and how.

DESIGN.md "Hub semantics":
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
from hub.domain.routing import BROADCAST, DIRECTED, EMSP_LIKE
from hub.domain.ruleset import publish_visible
from hub.infra.eventlog import Follower
from projections.objects import CHANGE_EVENTS, emsp_tokens, module_of
from projections.rules import load_rules_from
from scheduler.outbox import NotCaughtUp, Outgoing, enqueue

PER_EMSP = frozenset({"sessions", "cdrs"})
BROADCAST_RECEIVERS = ("EMSP", "NSP", "OTHER")


class ForwardingDispatcher(Follower):
    name = "dispatch-objects"
    event_classes = CHANGE_EVENTS
    batch_size = 500

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        rules = load_rules_from(cur)
        parties = _parties(cur)
        for position, event in events:
            self._forward(cur, rules, parties, position, event)

    def _forward(self, cur, rules, parties: dict, position: int, event: Any) -> None:
        module = module_of(event)
        message = event.message
        aggregate_ids = cur.execute(
            "SELECT country_code, party_id, object_id, body FROM view_objects WHERE object_uuid = %s",
            (event.originator_id,),
        ).fetchone()
        if aggregate_ids is None:
            return
        cc, pid, oid, body = aggregate_ids
        tokens = module == "tokens"  # the one module eMSPs own: it flows to CPOs
        owner = f"{cc}/{pid}/{'EMSP' if tokens else 'CPO'}"
        sender = parties.get(message["from"]) or parties.get(owner)
        if module in PER_EMSP:
            token = (body or {}).get("cdr_token") or {}
            emsp_cc, emsp_pid = str(token.get("country_code", "")).upper(), str(token.get("party_id", "")).upper()
            candidates = [p for p in parties.values() if p["country_code"] == emsp_cc
                          and p["party_id"] == emsp_pid and p["role"] in EMSP_LIKE]
        elif message["scenario"] == DIRECTED:
            candidates = [parties[message["to"]]] if message["to"] in parties else []
        else:
            receivers = ("CPO",) if tokens else BROADCAST_RECEIVERS
            candidates = [p for p in parties.values() if p["role"] in receivers]
        for party in candidates:
            if sender is not None and party["platform_id"] == sender["platform_id"]:
                continue  # never back to the platform it came from
            if party["status"] not in ("CONNECTED", "OFFLINE"):
                continue  # PLANNED: no endpoints yet; SUSPENDED: receives nothing
            cpo, emsp = (party["key"], owner) if tokens else (owner, party["key"])
            decision = rules.decide(cpo, emsp, module, receiver_status=party["status"],
                                    sender_status=(sender or {}).get("status"))
            if not decision.allowed:
                continue
            if not _has_receiver(party["endpoints"], module):
                continue
            if (module == "locations" and body.get("publish") is False
                    and not publish_visible(body, emsp_tokens(cur, party["key"]))):
                continue  # publish: false, and this eMSP holds no token publish_allowed_to names
            broadcast = message["scenario"] == BROADCAST and module not in PER_EMSP
            from_cc, from_pid = (HUB_COUNTRY_CODE, HUB_PARTY_ID) if broadcast else message["from"].split("/")[:2]
            enqueue(cur, Outgoing(
                platform_id=party["platform_id"],
                recipient=party["key"],
                module=module,
                interface="RECEIVER",
                object_key=f"{module}/{cc}/{pid}/{oid}",
                method=message["method"],
                path=message["path"],
                body=_body_to_send(event),
                headers={
                    "OCPI-from-country-code": from_cc,
                    "OCPI-from-party-id": from_pid,
                    "OCPI-to-country-code": party["country_code"],
                    "OCPI-to-party-id": party["party_id"],
                },
                correlation_id=message["correlation_id"],
                position=position,
            ))


def _body_to_send(event: Any) -> Any:
    if isinstance(event, o.Tariff.Deleted):
        return None
    return event.body


def _has_receiver(endpoints: list, module: str) -> bool:
    return any(e.get("identifier") == module and e.get("role") == "RECEIVER" for e in endpoints or [])


def _parties(cur: psycopg.Cursor) -> dict[str, dict]:
    rows = cur.execute(
        "SELECT v.country_code, v.party_id, v.role, v.status, v.platform_id, p.endpoints"
        " FROM view_parties v JOIN view_platforms p USING (platform_id)"
    ).fetchall()
    return {
        f"{cc}/{pid}/{role}": {"key": f"{cc}/{pid}/{role}", "country_code": cc, "party_id": pid,
                               "role": role, "status": status, "platform_id": platform_id,
                               "endpoints": endpoints}
        for cc, pid, role, status, platform_id, endpoints in rows
    }


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
