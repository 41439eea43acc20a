"""Footprint: what one message of each kind leaves in the database, for sizing storage.

Hub: one CPO and ``emsps`` eMSPs connected; then, each kind in turn, with the hub's
processes following the log and delivering as in production:

- broadcast EVSE status PATCHes (forwarded to every eMSP);
- Session PATCHes (forwarded to the Session's eMSP only);
- real-time token authorizations relayed to the eMSP.

For each kind: log rows (events, request records, delivery outcomes) per message, the
bytes the log and its audit chain grow by per message (tables and indexes, from
``pg_total_relation_size`` after a ``VACUUM``), and the bytes of the views, snapshots
and delivery queue. Baseline, same run: the bytes of the OCPI request bodies themselves,
so the ratio says how many bytes the hub keeps per byte a partner sent.
Not a speed figure: it fixes the storage terms of the sizing guide in
docs/performance.md.
"""

from __future__ import annotations

import json
import uuid

from ops.bench.common import Http, Result, Row, cpo, emsp, log, push_headers, stamp
from ops.bench.processes import HubProcesses
from tests import ocpi_examples as ex

SIZES = {
    "smoke": {"emsps": 2, "locations": 10, "messages": 100},
    "full": {"emsps": 5, "locations": 100, "messages": 2_000},
}
CPO = "FPC"
LOG_TABLES = ("hub_events", "hub_audit_chain")
OTHER_TABLES = ("hub_snapshots", "hub_deliveries", "view_objects")


def _sizes(hub: HubProcesses) -> dict[str, int]:
    with hub.connect_db() as conn:
        conn.execute("VACUUM ANALYZE")
        sizes = {}
        for table in (*LOG_TABLES, *OTHER_TABLES):
            row = conn.execute("SELECT pg_total_relation_size(to_regclass(%s))", (table,)).fetchone()
            sizes[table] = row[0] or 0
        sizes["rows"] = conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()[0]
        return sizes


def _topics(hub: HubProcesses, after: int) -> str:
    with hub.connect_db() as conn:
        rows = conn.execute("SELECT split_part(topic, ':', 2), count(*) FROM hub_events"
                            " WHERE notification_id > %s GROUP BY 1 ORDER BY 2 DESC", (after,)).fetchall()
    return ", ".join(f"{topic} {count}" for topic, count in rows)


def run(db, size: str) -> Result:
    cfg = SIZES[size]
    result = Result("footprint", "log rows and stored bytes per message, vs the bytes partners sent", size)
    hub = HubProcesses(db.url, "footprint")
    try:
        hub.migrate()
        hub.start_web()
        hub.start_worker()
        from ops.bench.authorize import answering_emsp

        (cpo_partner,) = hub.connect_partners([cpo(CPO)])
        emsps = hub.connect_partners([emsp(f"FE{i}") for i in range(cfg["emsps"])], factory=answering_emsp)
        client = Http(hub.url, cpo_partner.hub_token)
        for n in range(cfg["locations"]):
            body = ex.location(party_id=CPO, id=f"L{n:04d}", last_updated=stamp(1))
            status, _, answer = client.request("PUT", f"/ocpi/2.2.1/locations/receiver/IN/{CPO}/L{n:04d}",
                                               body, push_headers(CPO))
            assert status == 201, (status, answer[:300])
            body = ex.session(party_id=CPO, id=f"S{n:04d}", last_updated=stamp(1), cdr_token=ex.cdr_token(
                party_id=emsps[0].roles[0]["party_id"]))
            status, _, answer = client.request("PUT", f"/ocpi/2.2.1/sessions/receiver/IN/{CPO}/S{n:04d}",
                                               body, push_headers(CPO, to=None))
            assert status == 201, (status, answer[:300])
        hub.wait_quiet()
        emsp_party = emsps[0].roles[0]["party_id"]

        def evse(n: int):
            body = {"status": ("CHARGING", "AVAILABLE")[n % 2], "last_updated": stamp(10 + n)}
            return ("PATCH", f"/ocpi/2.2.1/locations/receiver/IN/{CPO}/L{n % cfg['locations']:04d}/"
                    "EVSE-BLR-0001-1", body, push_headers(CPO))

        def session(n: int):
            body = {"kwh": round(0.5 * n, 2), "last_updated": stamp(10 + n)}
            return ("PATCH", f"/ocpi/2.2.1/sessions/receiver/IN/{CPO}/S{n % cfg['locations']:04d}",
                    body, push_headers(CPO, to=None))

        def authorize(n: int):
            headers = {**push_headers(CPO, to=None), "OCPI-to-country-code": "IN", "OCPI-to-party-id": emsp_party}
            return ("POST", f"/ocpi/2.2.1/tokens/sender/RFID{n % 50:04d}/authorize?type=RFID",
                    {"location_id": "L0000", "evse_uids": ["EVSE-BLR-0001-1"]}, headers)

        kinds = (("broadcast EVSE PATCH", evse, f"forwarded to {cfg['emsps']} eMSPs"),
                 ("Session PATCH", session, "forwarded to 1 eMSP"),
                 ("authorization", authorize, "relayed to 1 eMSP"))
        for name, make, how in kinds:
            before = _sizes(hub)
            sent = 0
            for n in range(cfg["messages"]):
                method, path, body, headers = make(n)
                headers = {**headers, "X-Request-ID": str(uuid.uuid4())}
                status, _, answer = client.request(method, path, body, headers)
                assert status == 200 and json.loads(answer)["status_code"] == 1000, (name, status, answer[:300])
                sent += len(json.dumps(body, separators=(",", ":")))
            hub.wait_quiet()
            after = _sizes(hub)
            count = cfg["messages"]
            grew = sum(after[t] - before[t] for t in LOG_TABLES)
            other = sum(after[t] - before[t] for t in OTHER_TABLES)
            result.add(
                Row(f"{name}: log rows per message", (after["rows"] - before["rows"]) / count, unit=""),
                Row(f"{name}: log + audit chain bytes per message (vs the body's bytes)", grew / count,
                    sent / count, "B"),
                Row(f"{name}: views, snapshots and queue bytes per message", other / count, unit="B"),
            )
            result.note(f"{name} ({how}): {count} messages; rows by kind: {_topics(hub, before['rows'])}")
            log(f"footprint: {name} done")
        client.close()
        result.note("bytes from pg_total_relation_size after VACUUM ANALYZE (tables, TOAST and indexes); "
                    "a request record keeps the request's body and headers, its answer, and who sent it")
        return result
    finally:
        hub.close()
