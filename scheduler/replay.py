"""Replay: queue again the current state of everything a party may receive.

An operator replays after a partner lost data (``hub deliveries replay``). What
the party gets is decided by the recipient policy exactly as for forwarding
(:meth:`hub.domain.recipients.Policy.delivery`): the module's receiving roles,
CONNECTED or OFFLINE (never SUSPENDED), the routing rules, the module's
RECEIVER endpoint, the audience of directed pushes, ``publish_allowed_to``,
and never objects that came from the party's own platform.
"""

from __future__ import annotations

from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
from hub.domain.modules import CDR_TOKEN, MODULES
from hub.domain.parties import party_key
from hub.domain.recipients import Party
from projections.objects import emsp_tokens
from projections.recipients import load_policy
from scheduler.outbox import Outgoing, enqueue


def replay(pool, party: dict, *, modules: list[str], since=None, correlation_id: str) -> dict[str, int]:
    """Queue the current state of everything ``party`` may receive (and every CDR of it).

    ``party``: a ``view_parties`` row. Returns how many objects were queued per module
    (modules the party does not receive are left out). Current-state rows merge with any
    already waiting for the same object.
    """
    key = party_key(party["country_code"], party["party_id"], party["role"])
    counts: dict[str, int] = {}
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        policy = load_policy(cur)
        recipient = policy.party(key) or Party(party["country_code"], party["party_id"], party["role"],
                                               party["status"], party["platform_id"])
        tokens: list[dict] | None = None

        def tokens_of(_key: str) -> list[dict]:
            nonlocal tokens
            if tokens is None:
                tokens = emsp_tokens(cur, key)
            return tokens

        for module in modules:
            if not policy.replay(recipient, module):
                continue  # not a module this party receives: not counted
            counts[module] = 0
            mod = MODULES[module]
            query = ("SELECT country_code, party_id, object_id, body, audience FROM view_objects"
                     " WHERE module = %s AND NOT deleted")
            params: list = [module]
            if since is not None:
                query += " AND last_updated >= %s"
                params.append(since)
            if mod.routing == CDR_TOKEN:
                query += " AND emsp_country_code = %s AND emsp_party_id = %s"
                params += [recipient.country_code, recipient.party_id]
            for cc, pid, oid, body, audience in cur.execute(query + " ORDER BY seq", params).fetchall():
                verdict = policy.delivery(module, recipient, owner=party_key(cc, pid, mod.owner), body=body,
                                          audience=audience, tokens=tokens_of)
                if not verdict.allowed:
                    continue
                sender = (cc, pid) if mod.routing == CDR_TOKEN else (HUB_COUNTRY_CODE, HUB_PARTY_ID)
                headers = {"OCPI-from-country-code": sender[0], "OCPI-from-party-id": sender[1],
                           "OCPI-to-country-code": recipient.country_code,
                           "OCPI-to-party-id": recipient.party_id}
                common = dict(platform_id=recipient.platform_id, recipient=key, module=module,
                              interface="RECEIVER", object_key=f"{module}/{cc}/{pid}/{oid}",
                              correlation_id=correlation_id, position=0, headers=headers)
                if not mod.collapsible:  # CDRs are never merged: each one again, as received
                    enqueue(cur, Outgoing(method="POST", path="", body=body, **common))
                else:
                    enqueue(cur, Outgoing(method="PUT", path="", kind="current", **common))
                counts[module] += 1
    return counts
