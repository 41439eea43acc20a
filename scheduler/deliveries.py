"""Replaying a party's current state (``hub deliveries replay``).

The outbox is ``scheduler/outbox.py``, the sender ``scheduler/sender.py``, the
outcome of a call ``scheduler/outcomes.py``.
"""

from __future__ import annotations

from scheduler.outbox import Outgoing, enqueue


def replay(pool, party: dict, *, modules: list[str], since=None, correlation_id: str) -> dict[str, int]:
    """Queue the current state of everything ``party`` may receive (and every CDR of it).

    ``party``: a ``view_parties`` row. Returns how many objects were queued per module.
    Current-state rows merge with any already waiting for the same object.
    """
    from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
    from hub.domain.ruleset import publish_visible
    from projections.objects import emsp_tokens
    from projections.rules import load_rules_from

    key = f"{party['country_code']}/{party['party_id']}/{party['role']}"
    counts: dict[str, int] = {}
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        rules = load_rules_from(cur)
        endpoints = cur.execute("SELECT endpoints FROM view_platforms WHERE platform_id = %s",
                                (party["platform_id"],)).fetchone()[0] or []
        statuses = dict(cur.execute("SELECT country_code || '/' || party_id || '/' || role, status"
                                    " FROM view_parties").fetchall())
        tokens = emsp_tokens(cur, key) if party["role"] != "CPO" else []
        for module in modules:
            if not any(e.get("identifier") == module and e.get("role") == "RECEIVER" for e in endpoints):
                continue
            owned_by_emsp = module == "tokens"
            if owned_by_emsp != (party["role"] == "CPO"):
                continue  # tokens go to CPOs; everything else to eMSP-side parties
            query = ("SELECT country_code, party_id, object_id, body, audience, emsp_country_code,"
                     " emsp_party_id FROM view_objects WHERE module = %s AND NOT deleted")
            params: list = [module]
            if since is not None:
                query += " AND last_updated >= %s"
                params.append(since)
            if module in ("sessions", "cdrs"):
                query += " AND emsp_country_code = %s AND emsp_party_id = %s"
                params += [party["country_code"], party["party_id"]]
            count = 0
            for cc, pid, oid, body, audience, _, _ in cur.execute(query + " ORDER BY seq", params).fetchall():
                owner = f"{cc}/{pid}/{'EMSP' if owned_by_emsp else 'CPO'}"
                cpo, emsp = (key, owner) if owned_by_emsp else (owner, key)
                if not rules.decide(cpo, emsp, module, sender_status=statuses.get(owner)).allowed:
                    continue
                if audience is not None and key not in audience:
                    continue
                if module == "locations" and body.get("publish") is False and not publish_visible(body, tokens):
                    continue
                per_emsp = module in ("sessions", "cdrs")
                sender = (cc, pid) if per_emsp else (HUB_COUNTRY_CODE, HUB_PARTY_ID)
                headers = {"OCPI-from-country-code": sender[0], "OCPI-from-party-id": sender[1],
                           "OCPI-to-country-code": party["country_code"],
                           "OCPI-to-party-id": party["party_id"]}
                common = dict(platform_id=party["platform_id"], recipient=key, module=module,
                              interface="RECEIVER", object_key=f"{module}/{cc}/{pid}/{oid}",
                              correlation_id=correlation_id, position=0, headers=headers)
                if module == "cdrs":  # CDRs are never merged: each one again, as received
                    enqueue(cur, Outgoing(method="POST", path="", body=body, **common))
                else:
                    enqueue(cur, Outgoing(method="PUT", path="", kind="current", **common))
                count += 1
            counts[module] = count
    return counts
