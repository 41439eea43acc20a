"""Store and forward: what eMSPs receive when a CPO pushes through the hub."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.partner import role

HUB = {"OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"}


def stamp(seconds: int) -> str:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return (base + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cpo:
    """A CPO pushing to the hub the way a real back office would."""

    def __init__(self, hub, partner, cc="IN", pid="ECP") -> None:
        self.hub, self.partner, self.cc, self.pid = hub, partner, cc, pid

    def push(self, method: str, path: str, body=None, to: tuple[str, str] | None = ("IN", "CIH"),
             correlation_id: str | None = None):
        headers = {"OCPI-from-country-code": self.cc, "OCPI-from-party-id": self.pid,
                   "X-Correlation-ID": correlation_id or str(uuid.uuid4())}
        if to:
            headers.update({"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]})
        answer = self.hub.call(method, f"/ocpi/2.2.1/{path}", self.partner.hub_token, json=body,
                               headers=headers)
        return answer


def received(partner, module: str, method: str | None = None) -> list:
    return partner.requests_to(f"/ocpi/2.2.1/{module}/receiver", method)


def test_broadcast_directed_rules_and_per_emsp(hub, worker, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    em3 = hub.connect_partner([role("EMSP", "IN", "EM3")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    run_hub(settings, "routing", "deny", "IN/ECP", "IN/EM3", "--module", "locations")
    try:
        location = ex.location(id="LOC1", last_updated=stamp(1))
        correlation = str(uuid.uuid4())
        answer = cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", location, correlation_id=correlation)
        assert answer.status_code == 201 and answer.json()["status_code"] == 1000
        for partner in (em1, em2):
            got = wait_until(lambda p=partner: received(p, "locations", "PUT"))
            assert got, f"{partner.roles[0]['party_id']} received no location"
            put = got[0]
            assert put.path == "/ocpi/2.2.1/locations/receiver/IN/ECP/LOC1"
            assert put.body == location
            assert put.header("OCPI-from-country-code") == "IN" and put.header("OCPI-from-party-id") == "CIH"
            assert put.header("OCPI-to-party-id") == partner.roles[0]["party_id"]
            assert put.header("X-Correlation-ID") == correlation
            assert put.header("X-Request-ID") not in (None, answer.headers["X-Request-ID"])
            assert put.token == partner.token_for_hub
        # EVSE status PATCHes arrive in order.
        for n, status in enumerate(["CHARGING", "AVAILABLE", "BLOCKED"], start=2):
            assert cpo.push("PATCH", "locations/receiver/IN/ECP/LOC1/EVSE-BLR-0001-1",
                            {"status": status, "last_updated": stamp(n)}).json()["status_code"] == 1000
        assert wait_until(lambda: len(received(em1, "locations", "PATCH")) == 3)
        assert [r.body["status"] for r in received(em1, "locations", "PATCH")] == ["CHARGING", "AVAILABLE", "BLOCKED"]
        # Tariffs are broadcast too; the rule denied only locations to EM3.
        tariff = ex.tariff(id="TRF1", last_updated=stamp(5))
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/TRF1", tariff).status_code == 201
        assert wait_until(lambda: received(em3, "tariffs", "PUT"))
        assert received(em3, "tariffs", "PUT")[0].body == tariff
        # Directed: only EM1, FROM the CPO.
        private = ex.location(id="LOC2", last_updated=stamp(6))
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC2", private, to=("IN", "EM1")).status_code == 201
        got = wait_until(lambda: [r for r in received(em1, "locations", "PUT") if r.path.endswith("/LOC2")])
        assert got and got[0].header("OCPI-from-party-id") == "ECP"
        # Sessions and CDRs: only the eMSP of cdr_token, open routing (no OCPI-to).
        session = ex.session(id="S1", cdr_token=ex.cdr_token(party_id="EM2"), last_updated=stamp(7))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S1", session, to=None).status_code == 201
        cdr = ex.cdr(id="CDR1", cdr_token=ex.cdr_token(party_id="EM2"), last_updated=stamp(8))
        posted = cpo.push("POST", "cdrs/receiver", cdr, to=None)
        assert posted.status_code == 201
        assert hub.call("GET", posted.headers["Location"], cpo_partner.hub_token,
                        headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP",
                                 **HUB}).json()["data"] == cdr
        assert wait_until(lambda: received(em2, "cdrs", "POST"))
        assert received(em2, "cdrs", "POST")[0].body == cdr
        assert received(em2, "cdrs", "POST")[0].path == "/ocpi/2.2.1/cdrs/receiver"  # the endpoint itself
        assert received(em2, "sessions", "PUT")[0].body == session
        assert received(em2, "sessions", "PUT")[0].header("OCPI-from-party-id") == "ECP"
        worker.follow_once()
        worker.deliver()
        # Nobody else got the session, the CDR, or EM3 a location; nothing went back to the CPO.
        for partner in (em1, em3):
            assert not received(partner, "sessions") and not received(partner, "cdrs")
        assert not received(em3, "locations")
        assert not [r for r in received(em2, "locations") if r.path.endswith("/LOC2")]
        assert not cpo_partner.requests_to("/ocpi/2.2.1/locations")
    finally:
        for partner in (em1, em2, em3, cpo_partner):
            partner.stop()


def test_stale_and_invalid_pushes_are_not_forwarded(hub, worker):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", ex.location(id="LOC1", last_updated=stamp(10))).status_code == 201
        older = cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", ex.location(id="LOC1", name="Old", last_updated=stamp(5)))
        assert older.json()["status_code"] == 1000 and "older" in older.json()["status_message"]
        bad = cpo.push("PUT", "locations/receiver/IN/ECP/LOC9", ex.location(id="LOC9", country="INDIA"))
        assert bad.json()["status_code"] == 2001 and "country" in bad.json()["status_message"]
        wait_until(lambda: received(em1, "locations", "PUT"))
        worker.follow_once()
        worker.deliver()
        puts = received(em1, "locations", "PUT")
        assert [r.path.rsplit("/", 1)[1] for r in puts] == ["LOC1"]
        assert puts[0].body["last_updated"] == stamp(10)
    finally:
        em1.stop()
        cpo_partner.stop()


def test_refused_delivery_is_parked_listed_and_retried(hub, worker, settings):
    import json

    from tests.partner import envelope

    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    original = em1.answer
    em1.answer = lambda record: (envelope(None, 2001, "we do not like this tariff")
                                 if "/tariffs/" in record.path else original(record))
    try:
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/T1", ex.tariff(id="T1")).status_code == 201

        def failed():
            rows = json.loads(run_hub(settings, "deliveries", "list", "--failed", "--party", "IN/EM1",
                                      "--json").stdout)
            return [r for r in rows if r["module"] == "tariffs"]

        rows = wait_until(failed, timeout=20)
        assert rows and rows[0]["last_status_code"] == 2001 and rows[0]["state"] == "FAILED"
        table = run_hub(settings, "deliveries", "list", "--failed").stdout
        assert "tariffs" in table and "FAILED" in table

        em1.answer = original
        retried = json.loads(run_hub(settings, "deliveries", "retry", "--party", "IN/EM1", "--json").stdout)
        assert retried["requeued"] == [rows[0]["id"]]
        worker.deliver_now.set()
        assert wait_until(lambda: len(received(em1, "tariffs", "PUT")) == 2, timeout=20)
        assert not failed()
    finally:
        em1.stop()
        cpo_partner.stop()


def test_two_workers_never_send_a_delivery_twice(hub, settings):
    from collections import Counter

    from scheduler.worker import Worker

    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    em1.delay = 0.01  # a slow partner widens the window for a double send
    workers = [Worker(settings, settings.database_url) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for n in range(60):
            assert cpo.push("PUT", f"locations/receiver/IN/ECP/W{n:02d}",
                            ex.location(id=f"W{n:02d}", last_updated=stamp(n))).status_code == 201
        assert wait_until(lambda: len(received(em1, "locations", "PUT")) >= 60, timeout=60)
        for w in workers:
            w.follow_once()
            w.deliver()
        counts = Counter(r.header("X-Correlation-ID") for r in received(em1, "locations", "PUT"))
        assert len(counts) == 60 and set(counts.values()) == {1}
    finally:
        for w in workers:
            w.stop()
        em1.stop()
        cpo_partner.stop()


def test_unpublished_locations_reach_only_holders_of_a_listed_token(hub, worker):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    try:
        token = ex.token(party_id="EM1", uid="FLEET-7")
        headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "EM1", **HUB}
        assert hub.call("PUT", "/ocpi/2.2.1/tokens/receiver/IN/EM1/FLEET-7", em1.hub_token, json=token,
                        headers=headers).status_code == 201
        worker.follow_once()
        private = ex.location(id="DEPOT", publish=False, publish_allowed_to=[{"uid": "FLEET-7"}],
                              last_updated=stamp(1))
        public = ex.location(id="PUBLIC", last_updated=stamp(2))
        assert cpo.push("PUT", "locations/receiver/IN/ECP/DEPOT", private).status_code == 201
        assert cpo.push("PUT", "locations/receiver/IN/ECP/PUBLIC", public).status_code == 201
        assert wait_until(lambda: [r for r in received(em2, "locations") if r.path.endswith("/PUBLIC")])
        assert wait_until(lambda: [r for r in received(em1, "locations") if r.path.endswith("/DEPOT")])
        worker.follow_once()
        worker.deliver()
        assert not [r for r in received(em2, "locations") if r.path.endswith("/DEPOT")]

        def pulled(partner, pid):
            answer = hub.call("GET", "/ocpi/2.2.1/locations/sender", partner.hub_token,
                              headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": pid, **HUB})
            return sorted(loc["id"] for loc in answer.json()["data"])

        assert pulled(em1, "EM1") == ["DEPOT", "PUBLIC"]
        assert pulled(em2, "EM2") == ["PUBLIC"]
        single = hub.call("GET", "/ocpi/2.2.1/locations/sender/DEPOT", em2.hub_token,
                          headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "EM2", **HUB})
        assert single.status_code == 404
    finally:
        for partner in (em1, em2, cpo_partner):
            partner.stop()


def test_replay_resends_the_current_state_and_every_cdr(hub, worker, settings):
    import json

    from tests.integration.test_observability import scrape

    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/L1", ex.location(id="L1", last_updated=stamp(1))).status_code == 201
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/L1/EVSE-BLR-0001-1",
                        {"status": "CHARGING", "last_updated": stamp(2)}).json()["status_code"] == 1000
        for n in (1, 2):
            cdr = ex.cdr(id=f"C{n}", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(n))
            assert cpo.push("POST", "cdrs/receiver", cdr, to=None).status_code == 201
        assert wait_until(lambda: len(received(em1, "cdrs")) == 2 and received(em1, "locations", "PATCH"))
        worker.follow_once()
        worker.deliver()
        before = {"locations": len(received(em1, "locations")), "cdrs": len(received(em1, "cdrs"))}
        # /metrics counts what the hub sent, per party and module: EM1's two CDRs so far.
        sent = wait_until(lambda: (lambda m: m if m.value("hub_delivery_delivered_total", party="IN/EM1/EMSP",
                                                            module="cdrs") == 2 else None)(scrape(hub.url)))
        assert sent, scrape(hub.url).text
        counters = ("hub_delivery_attempts_total", "hub_delivery_delivered_total", "hub_delivery_failed_total")

        def traffic(m, party: str) -> dict:
            return {(name, s.labels["module"]): s.value for name in counters for s in m.matching(name, party=party)}

        em1_before, em2_before = traffic(sent, "IN/EM1/EMSP"), traffic(sent, "IN/EM2/EMSP")
        assert em1_before[("hub_delivery_attempts_total", "cdrs")] == 2
        assert em1_before[("hub_delivery_failed_total", "cdrs")] == 0
        assert em1_before[("hub_delivery_delivered_total", "locations")] == before["locations"]

        # EM1 lost its data: the operator replays everything to it.
        done = json.loads(run_hub(settings, "deliveries", "replay", "--party", "IN/EM1", "--json").stdout)
        assert done["queued"]["IN/EM1/EMSP"]["locations"] == 1 and done["queued"]["IN/EM1/EMSP"]["cdrs"] == 2
        worker.deliver_now.set()
        assert wait_until(lambda: len(received(em1, "cdrs")) == 4 and len(received(em1, "locations")) > before["locations"])
        # The replayed deliveries show up in /metrics for EM1, and only for EM1.
        replayed = wait_until(lambda: (lambda m: m if traffic(m, "IN/EM1/EMSP").get(
            ("hub_delivery_delivered_total", "cdrs")) == 4 else None)(scrape(hub.url)))
        assert replayed, scrape(hub.url).text
        em1_after = traffic(replayed, "IN/EM1/EMSP")
        grown = {key: em1_after[key] - em1_before.get(key, 0) for key in em1_after}
        assert grown[("hub_delivery_attempts_total", "cdrs")] == 2
        assert grown[("hub_delivery_delivered_total", "cdrs")] == 2
        assert grown[("hub_delivery_attempts_total", "locations")] == 1
        assert grown[("hub_delivery_delivered_total", "locations")] == 1
        assert grown[("hub_delivery_failed_total", "cdrs")] == grown[("hub_delivery_failed_total", "locations")] == 0
        assert traffic(replayed, "IN/EM2/EMSP") == em2_before
        # The trace of the replay shows the operator's action beside what it sent.
        steps = json.loads(run_hub(settings, "audit", "trace", done["correlation_id"], "--json").stdout)
        action = [s for s in steps if s["step"] == "operator action"]
        assert len(action) == 1 and "deliveries replay --party IN/EM1" in action[0]["what"]
        assert action[0]["who"].startswith("operator ")
        delivered = [s for s in steps if s["step"] == "delivered"]
        assert len(delivered) == 3 and all(s["who"] == "hub -> IN/EM1/EMSP" for s in delivered)
        resent = received(em1, "locations")[-1]
        assert resent.method == "PUT" and resent.path.endswith("/IN/ECP/L1")
        assert resent.body["evses"][0]["status"] == "CHARGING" and resent.body["last_updated"] == stamp(2)
        assert resent.header("X-Correlation-ID") == done["correlation_id"]
        assert sorted(r.body["id"] for r in received(em1, "cdrs")) == ["C1", "C1", "C2", "C2"]
        # Nothing went to EM2 beyond its own broadcast copy; stats show the traffic per party.
        assert len(received(em2, "locations")) == 2 and not received(em2, "cdrs")
        rows = {r["party"]: r for r in json.loads(run_hub(settings, "deliveries", "stats", "--json").stdout)}
        assert rows["IN/EM1/EMSP"]["pending"] == 0 and rows["IN/EM1/EMSP"]["delivered"] >= 6
        assert rows["IN/EM1/EMSP"]["failed"] == 0 and rows["IN/EM1/EMSP"]["failure_rate"] == 0
    finally:
        for partner in (em1, em2, cpo_partner):
            partner.stop()


def test_stats_show_queue_depth_age_and_failure_rate_per_party(hub, worker, settings):
    """`hub deliveries stats` for an eMSP that is down and one that refuses, keyed as /metrics keys parties."""
    import json

    from tests.integration.test_observability import scrape
    from tests.partner import envelope

    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    refusing = hub.connect_partner([role("EMSP", "IN", "EMR")])
    original = refusing.answer
    refusing.answer = lambda record: (envelope(None, 2001, "not this tariff")
                                      if "/tariffs/" in record.path else original(record))
    down = hub.connect_partner([role("EMSP", "IN", "EMD")])
    down.stop()  # registered, then gone: what the hub owes it waits and is retried
    try:
        cpo = Cpo(hub, cpo_partner)
        for n in (1, 2):
            assert cpo.push("PUT", f"tariffs/receiver/IN/ECP/T{n}", ex.tariff(id=f"T{n}")).status_code == 201

        def settled():
            rows = {r["party"]: r for r in json.loads(run_hub(settings, "deliveries", "stats", "--json").stdout)}
            emr, emd = rows.get("IN/EMR/EMSP"), rows.get("IN/EMD/EMSP")
            done = (emr and emr["failed"] == 2 and emr["pending"] == 0 and emd and emd["pending"] >= 2)
            # EMD was tried (then found unreachable: OFFLINE, its rows wait for the still-alive check).
            return rows if done and any(r["attempts"] for r in json.loads(run_hub(
                settings, "deliveries", "list", "--party", "IN/EMD", "--json").stdout)) else None

        rows = wait_until(settled, timeout=40, interval=0.5)
        assert rows, run_hub(settings, "deliveries", "stats", "--json").stdout
        # One key per party, always CC/PID/ROLE (platform-wide HubClientInfo rows included).
        assert set(rows) == {"IN/ECP/CPO", "IN/EMR/EMSP", "IN/EMD/EMSP"}
        # Down: both tariffs (and ClientInfo) wait, the oldest for a while, nothing parked yet.
        emd = rows["IN/EMD/EMSP"]
        assert emd["pending"] >= 2 and emd["oldest_pending_s"] > 0
        assert emd["failed"] == 0 and emd["failure_rate"] == 0
        # Refusing: both tariffs parked, its other deliveries went through.
        emr = rows["IN/EMR/EMSP"]
        assert emr["failed"] == 2 and emr["delivered"] >= 1 and emr["oldest_pending_s"] == 0
        assert emr["failure_rate"] == round(2 / (emr["delivered"] + 2), 4) > 0
        assert rows["IN/ECP/CPO"]["failed"] == 0 and rows["IN/ECP/CPO"]["failure_rate"] == 0
        # The same parties, keyed the same way, as /metrics shows them.
        m = scrape(hub.url)
        assert {s.labels["party"] for s in m.matching("hub_deliveries_pending")} == set(rows)
        assert m.value("hub_deliveries_failed", party="IN/EMR/EMSP") == 2
        table = run_hub(settings, "deliveries", "stats").stdout.splitlines()
        assert table[0].split() == ["PARTY", "PENDING", "OLDEST_PENDING_S", "RETRIES", "DELIVERED", "FAILED",
                                    "FAILURE_RATE"]
        assert sorted(line.split()[0] for line in table[1:]) == sorted(rows)
    finally:
        cpo_partner.stop()
        refusing.stop()
