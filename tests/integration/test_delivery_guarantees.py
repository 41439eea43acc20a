"""What the dispatcher guarantees recipients and operators, under the conditions that break naive senders:
leases that run out mid-batch, slow and failing partners, answers that are not OCPI, operator retries,
views that run ahead of the dispatcher, outages, suspensions and routing rules."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from dataclasses import replace

import psycopg

from scheduler.worker import Worker
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.e2e.test_resilience import replay
from tests.integration.test_forwarding import Cpo, received, stamp
from tests.partner import envelope, role


def sql(settings, query: str, params=()) -> list[tuple] | None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def due_now(settings) -> None:
    """Skip the backoff pauses (the test drives the worker by hand)."""
    sql(settings, "UPDATE hub_deliveries SET next_attempt_at = now() WHERE state = 'PENDING'")


def deliveries_of(settings, party: str) -> dict[str, list[dict]]:
    """``hub deliveries list --party`` as an operator reads it: rows per object id, oldest first."""
    rows = json.loads(run_hub(settings, "deliveries", "list", "--party", party, "--json").stdout)
    found: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        found.setdefault(row["object_key"].rsplit("/", 1)[1], []).append(row)
    return found


def trace(settings, correlation_id: str) -> list[dict]:
    return json.loads(run_hub(settings, "audit", "trace", correlation_id, "--json").stdout)


def status_of(hub, viewer, party_id: str) -> str:
    listed = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", viewer.hub_token).json()["data"]
    return next(c["status"] for c in listed if c["party_id"] == party_id)


def test_two_workers_send_each_delivery_once_when_a_batch_outlasts_its_lease(hub, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    for n in range(16):
        assert cpo.push("PUT", f"locations/receiver/IN/ECP/W{n:02d}",
                        ex.location(id=f"W{n:02d}", last_updated=stamp(n))).status_code == 201
    # Sending the batch one by one to a partner that takes 0.4 s per answer outlasts a 4 s lease.
    em1.delay = 0.4
    workers = [Worker(replace(settings, lease_seconds=4), settings.database_url) for _ in range(2)]
    try:
        for w in workers:
            w.start()
        assert wait_until(lambda: len({r.path for r in received(em1, "locations", "PUT")}) == 16, timeout=60)
        for w in workers:  # whatever either worker still held is finished
            w.follow_once()
            w.deliver()
        counts = Counter(r.path.rsplit("/", 1)[1] for r in received(em1, "locations", "PUT"))
        assert len(counts) == 16 and set(counts.values()) == {1}, counts
    finally:
        for w in workers:
            w.stop()
        em1.stop()
        cpo_partner.stop()


def test_a_slow_partner_holds_up_only_its_own_deliveries(hub, settings):
    slow = hub.connect_partner([role("EMSP", "IN", "SLO")])
    fast = hub.connect_partner([role("EMSP", "IN", "FST")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    gate = threading.Event()
    original = slow.answer

    def hanging(record):  # the slow partner's back office hangs until the test lets it go
        if "/locations/" in record.path:
            gate.wait(60)
        return original(record)

    slow.answer = hanging
    worker = Worker(replace(settings, forward_timeout=30.0), settings.database_url)
    worker.start()
    try:
        for n in range(3):
            assert cpo.push("PUT", f"locations/receiver/IN/ECP/S{n}", ex.location(id=f"S{n}", last_updated=stamp(n)),
                            to=("IN", "SLO")).status_code == 201
        assert wait_until(lambda: received(slow, "locations"), timeout=20), "the hub never called the slow partner"
        assert cpo.push("PUT", "locations/receiver/IN/ECP/F1", ex.location(id="F1"), to=("IN", "FST")).status_code == 201
        got = wait_until(lambda: received(fast, "locations", "PUT"), timeout=20)
        # The fast partner got its Location while the hub still waits for the slow one's first answer.
        assert got and got[0].path.endswith("/IN/ECP/F1")
        assert len(received(slow, "locations")) == 1 and not gate.is_set()
        gate.set()
        assert wait_until(lambda: len(received(slow, "locations", "PUT")) == 3, timeout=30)
        assert [r.path.rsplit("/", 1)[1] for r in received(slow, "locations", "PUT")] == ["S0", "S1", "S2"]
    finally:
        gate.set()
        worker.stop()
        for partner in (slow, fast, cpo_partner):
            partner.stop()


def test_an_operator_retry_sends_the_current_state_and_cdrs_as_they_were(hub, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    original = em1.answer
    refusing = threading.Event()
    refusing.set()
    em1.answer = lambda record: (envelope(None, 2001, "not now") if refusing.is_set() and (
        "/tariffs/" in record.path or "/cdrs/" in record.path) else original(record))
    worker = Worker(settings, settings.database_url)
    try:
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/T1",
                        ex.tariff(id="T1", currency="EUR", last_updated=stamp(1))).status_code == 201
        cdr = ex.cdr(id="CDR1", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(2))
        assert cpo.push("POST", "cdrs/receiver", cdr, to=None).status_code == 201
        worker.follow_once()
        worker.deliver()
        parked = {row["module"]: row["id"] for row in json.loads(run_hub(
            settings, "deliveries", "list", "--failed", "--party", "IN/EM1", "--json").stdout)}
        assert set(parked) == {"tariffs", "cdrs"}

        refusing.clear()  # EM1 takes data again; the CPO's next version of the Tariff goes through
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/T1",
                        ex.tariff(id="T1", currency="INR", last_updated=stamp(3))).status_code == 200
        worker.follow_once()
        worker.deliver()
        retried = json.loads(run_hub(settings, "deliveries", "retry", "--party", "IN/EM1", "--json").stdout)
        assert sorted(retried["requeued"]) == sorted(parked.values())
        worker.deliver()

        # The retried Tariff delivery sent the Tariff as the hub holds it, never the parked EUR version.
        puts = received(em1, "tariffs", "PUT")
        assert [p.body["currency"] for p in puts] == ["EUR", "INR", "INR"]
        assert puts[-1].body == ex.tariff(id="T1", currency="INR", last_updated=stamp(3))
        # The CDR was sent again exactly as posted: CDRs are never replaced by anything.
        assert [p.body for p in received(em1, "cdrs", "POST")] == [cdr, cdr]
        assert not json.loads(run_hub(settings, "deliveries", "list", "--failed", "--party", "IN/EM1",
                                      "--json").stdout)
    finally:
        worker.stop()
        em1.stop()
        cpo_partner.stop()


def test_a_current_state_never_doubles_session_charging_periods(hub, settings):
    """The views may hold a change whose delivery the dispatcher has not queued yet: a current state
    sent then would include it, and its own PATCH would follow (charging periods twice)."""
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    worker = Worker(settings, settings.database_url)  # driven step by step

    def patch(n: int) -> str:
        correlation = str(uuid.uuid4())
        period = {"start_date_time": stamp(n), "dimensions": [{"type": "ENERGY", "volume": n}]}
        answer = cpo.push("PATCH", "sessions/receiver/IN/ECP/S1",
                          {"charging_periods": [period], "last_updated": stamp(n)}, to=None,
                          correlation_id=correlation)
        assert answer.json()["status_code"] == 1000, answer.text
        return correlation

    def periods() -> list[int]:
        state = replay(received(emsp, "sessions"))["IN/ECP/S1"]
        return [p["dimensions"][0]["volume"] for p in state["charging_periods"]]

    try:
        session = ex.session(id="S1", charging_periods=[], last_updated=stamp(0))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S1", session, to=None).status_code == 201
        worker.follow_once()
        worker.deliver()
        assert len(received(emsp, "sessions")) == 1

        emsp.stop()
        patch(1)
        worker.follow_once()
        worker.deliver()  # no answer: EMP falls behind on S1
        emsp.start()
        second = patch(2)
        worker.follow_once()  # queued behind the first
        patch(3)
        for projection in worker.projections:  # the views apply the third PATCH; the dispatcher has not yet
            worker.log.try_catch_up(projection)
        due_now(settings)
        worker.deliver()
        assert len(received(emsp, "sessions")) == 1, "a current state went out before its PATCHes were queued"

        worker.follow_once()  # the third PATCH is queued now
        assert wait_until(lambda: (due_now(settings), worker.deliver(), len(received(emsp, "sessions")) > 1)[-1])
        worker.follow_once()
        worker.deliver()
        later = received(emsp, "sessions")[1:]
        assert [m.method for m in later] == ["PUT"]  # one current state, nothing after it
        assert periods() == [1, 2, 3]
        # The PATCHes it replaced are in the audit trail as collapsed into that PUT.
        steps = [s for s in trace(settings, second) if s["step"] == "collapsed"]
        assert len(steps) == 1 and steps[0]["who"] == "hub -> IN/EMP/EMSP"
        assert "current state sent by delivery" in steps[0]["outcome"]
    finally:
        worker.stop()
        emsp.stop()
        cpo_partner.stop()


def test_an_object_answered_500_waits_alone_and_the_recipient_stays_connected(hub, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    handle = em1._handle

    def failing_for_two(req, resp, path):  # EM1's back office fails on two Locations only
        handle(req, resp, path)
        if req.path.endswith(("/BAD", "/LATER")):
            resp.status = 500
            resp.data = json.dumps(envelope(None, 3000, "bug on our side for this one")).encode()
        if req.path.endswith("/LATER"):
            resp.set_header("Retry-After", "200")

    em1._handle = failing_for_two
    worker = Worker(replace(settings, still_alive_after=1.0), settings.database_url)  # probes every second
    worker.start()
    try:
        for n, lid in enumerate(("BAD", "LATER")):
            assert cpo.push("PUT", f"locations/receiver/IN/ECP/{lid}",
                            ex.location(id=lid, last_updated=stamp(n))).status_code == 201
        assert cpo.push("PATCH", "locations/receiver/IN/ECP/BAD/EVSE-BLR-0001-1",
                        {"status": "CHARGING", "last_updated": stamp(5)}).json()["status_code"] == 1000
        for n in range(5):
            assert cpo.push("PUT", f"locations/receiver/IN/ECP/G{n}",
                            ex.location(id=f"G{n}", last_updated=stamp(n))).status_code == 201
        # The other Locations are not held up by the two that fail.
        assert wait_until(lambda: {f"G{n}" for n in range(5)} <= {
            r.path.rsplit("/", 1)[1] for r in received(em1, "locations", "PUT")}, timeout=20)

        # BAD is retried with its own backoff; answers, even errors, never make EM1 OFFLINE.
        assert wait_until(lambda: deliveries_of(settings, "IN/EM1")["BAD"][0]["attempts"] >= 4,
                          timeout=60, interval=0.5)
        assert status_of(hub, cpo_partner, "EM1") == "CONNECTED"
        about_em1 = [r.body["status"] for r in cpo_partner.requests_to("/ocpi/2.2.1/hubclientinfo")
                     if r.path.endswith("/IN/EM1")]
        assert "OFFLINE" not in about_em1, about_em1
        rows = deliveries_of(settings, "IN/EM1")
        bad, patch = rows["BAD"]
        assert bad["state"] == "PENDING" and bad["last_http_status"] == 500 and bad["last_status_code"] == 3000
        assert patch["method"] == "PATCH" and patch["state"] == "PENDING" and patch["attempts"] == 0
        (later,) = rows["LATER"]
        assert later["attempts"] == 1 and later["state"] == "PENDING"
        waits = sql(settings, "SELECT extract(epoch FROM next_attempt_at - last_attempt_at) FROM hub_deliveries"
                    " WHERE id = %s", (later["id"],))[0][0]
        assert waits >= 150  # Retry-After: 200 on the 500 answer

        # EM1 goes away: three calls without an answer make it OFFLINE; back, only what waited for it
        # is sent at once. LATER keeps the pause EM1 asked for.
        em1.stop()
        for n in range(5, 8):
            assert cpo.push("PUT", f"locations/receiver/IN/ECP/G{n}",
                            ex.location(id=f"G{n}", last_updated=stamp(n))).status_code == 201
        assert wait_until(lambda: status_of(hub, cpo_partner, "EM1") == "OFFLINE", timeout=30)
        em1.start()
        assert wait_until(lambda: {f"G{n}" for n in range(8)} <= {
            r.path.rsplit("/", 1)[1] for r in received(em1, "locations", "PUT")}, timeout=30)
        assert status_of(hub, cpo_partner, "EM1") == "CONNECTED"
        assert deliveries_of(settings, "IN/EM1")["LATER"][0]["attempts"] == 1
        assert len([r for r in received(em1, "locations") if r.path.endswith("/LATER")]) == 1
    finally:
        worker.stop()
        em1.stop()
        cpo_partner.stop()


def _html_pages(partner, pages: dict[str, tuple[int, dict]], healed: threading.Event) -> None:
    """``pages``: Location id -> (HTTP status, extra headers) of an HTML page answered instead of OCPI."""
    handle = partner._handle

    def html(req, resp, path):
        handle(req, resp, path)
        page = pages.get(req.path.rsplit("/", 1)[-1])
        if page and "/locations/" in req.path and not healed.is_set():
            resp.status, headers = page
            resp.content_type = "text/html"
            resp.data = b"<html><body>502 Bad Gateway</body></html>"
            for name, value in headers.items():
                resp.set_header(name, value)

    partner._handle = html


def test_answers_that_are_not_ocpi_are_retried_and_retry_after_is_honoured(hub, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    healed = threading.Event()
    _html_pages(em1, {"H200": (200, {}), "H404": (404, {})}, healed)
    handle = em1._handle

    def busy(req, resp, path):  # an OCPI 429 asking for 200 s
        handle(req, resp, path)
        if req.path.endswith("/J429"):
            resp.status = 429
            resp.data = json.dumps(envelope(None, 2000, "slow down")).encode()
            resp.set_header("Retry-After", "200")

    em1._handle = busy
    worker = Worker(settings, settings.database_url)
    try:
        for lid in ("H200", "H404", "J429"):
            assert cpo.push("PUT", f"locations/receiver/IN/ECP/{lid}", ex.location(id=lid)).status_code == 201
        worker.follow_once()
        worker.deliver()
        rows = {lid: found[0] for lid, found in deliveries_of(settings, "IN/EM1").items()}
        # A page that is not OCPI (a proxy's, say) is retried, whatever its HTTP status: not parked.
        for lid, status in (("H200", 200), ("H404", 404)):
            assert (rows[lid]["state"], rows[lid]["attempts"], rows[lid]["last_http_status"]) == (
                "PENDING", 1, status), rows[lid]
        assert (rows["J429"]["state"], rows["J429"]["last_http_status"]) == ("PENDING", 429)
        waits = sql(settings, "SELECT extract(epoch FROM next_attempt_at - last_attempt_at) FROM hub_deliveries"
                    " WHERE id = %s", (rows["J429"]["id"],))[0][0]
        assert waits >= 150  # Retry-After: 200
        assert sql(settings, "SELECT status FROM view_parties WHERE party_id = 'EM1'") == [("CONNECTED",)]

        healed.set()  # the proxy is fixed: the retries go through

        def delivered() -> set[str]:
            worker.deliver()
            return {key.rsplit("/", 1)[1] for (key,) in sql(
                settings, "SELECT object_key FROM hub_deliveries WHERE module = 'locations' AND state = 'DELIVERED'")}

        assert wait_until(lambda: delivered() == {"H200", "H404"}, timeout=20)
        assert len([r for r in received(em1, "locations", "PUT") if r.path.endswith("/H200")]) == 2
    finally:
        worker.stop()
        em1.stop()
        cpo_partner.stop()


def test_retry_after_on_a_page_that_is_not_ocpi_is_honoured(hub, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    _html_pages(em1, {"H429": (429, {"Retry-After": "200"})}, threading.Event())
    worker = Worker(settings, settings.database_url)
    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/H429", ex.location(id="H429")).status_code == 201
        worker.follow_once()
        worker.deliver()
        waits = sql(settings, "SELECT extract(epoch FROM next_attempt_at - last_attempt_at) FROM hub_deliveries"
                    " WHERE module = 'locations'")
        assert waits[0][0] >= 150
    finally:
        worker.stop()
        em1.stop()
        cpo_partner.stop()


def test_parking_and_giving_up_are_events_the_trace_shows(hub, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    original = em1.answer
    em1.answer = lambda record: (envelope(None, 2001, "we do not take this tariff")
                                 if "/tariffs/" in record.path else original(record))
    worker = Worker(replace(settings, delivery_give_up_after=1.0), settings.database_url)
    try:
        refused = str(uuid.uuid4())
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/T1", ex.tariff(id="T1"),
                        correlation_id=refused).status_code == 201
        worker.follow_once()
        worker.deliver()
        (parked,) = [s for s in trace(settings, refused) if s["step"] == "parked"]
        assert parked["who"] == "hub -> IN/EM1/EMSP" and "tariffs/IN/ECP/T1" in parked["what"]
        assert "2001" in parked["outcome"] and "we do not take this tariff" in parked["outcome"]

        # EM1 is gone; the give-up sweep parks what could not be delivered within the give-up age.
        em1.stop()
        lost = str(uuid.uuid4())
        assert cpo.push("PUT", "locations/receiver/IN/ECP/L1", ex.location(id="L1"),
                        correlation_id=lost).status_code == 201
        worker.follow_once()
        worker.deliver()

        def swept():
            worker.sweep()
            return [r for r in json.loads(run_hub(settings, "deliveries", "list", "--failed", "--party", "IN/EM1",
                                                  "--json").stdout) if r["module"] == "locations"]

        rows = wait_until(swept, timeout=20, interval=0.5)
        assert rows and rows[0]["correlation_id"] == lost and rows[0]["note"] == "gave up after 1 s"
        (gave_up,) = [s for s in trace(settings, lost) if s["step"] == "parked"]
        assert gave_up["who"] == "hub -> IN/EM1/EMSP"
        assert f"deliveries {rows[0]['id']}" in gave_up["what"] and "gave up after 1 s" in gave_up["outcome"]
        # The object's history shows it too.
        history = json.loads(run_hub(settings, "audit", "history", "locations", "IN", "ECP", "L1",
                                     "--json").stdout)
        assert [s["step"] for s in history if s["step"] == "parked"] == ["parked"]
    finally:
        worker.stop()
        em1.stop()
        cpo_partner.stop()


def test_cdrs_queued_during_an_outage_all_arrive_one_by_one_in_order(hub, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    worker = Worker(replace(settings, still_alive_after=1.0), settings.database_url)
    worker.start()
    try:
        emsp.stop()
        cdrs = [ex.cdr(id=f"CDR{n}", cdr_token=ex.cdr_token(party_id="EMP"), last_updated=stamp(n))
                for n in range(6)]
        for cdr in cdrs:
            assert cpo.push("POST", "cdrs/receiver", cdr, to=None).status_code == 201
        assert wait_until(lambda: status_of(hub, cpo_partner, "EMP") == "OFFLINE", timeout=30)
        emsp.start()
        assert wait_until(lambda: len(received(emsp, "cdrs", "POST")) >= len(cdrs), timeout=60)
        worker.follow_once()
        worker.deliver()
        assert [r.body for r in received(emsp, "cdrs", "POST")] == cdrs
    finally:
        worker.stop()
        emsp.stop()
        cpo_partner.stop()


def test_a_suspended_emsp_receives_nothing(hub, worker, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    em2 = hub.connect_partner([role("EMSP", "IN", "EM2")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    try:
        run_hub(settings, "parties", "suspend", "IN", "EM1")
        worker.follow_once()
        worker.deliver()
        before = len(em1.received)
        assert cpo.push("PUT", "locations/receiver/IN/ECP/L1", ex.location(id="L1")).status_code == 201
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/T1", ex.tariff(id="T1")).status_code == 201
        directed = cpo.push("PUT", "locations/receiver/IN/ECP/L2", ex.location(id="L2"), to=("IN", "EM1"))
        assert directed.json()["status_code"] == 4003, directed.text
        session = ex.session(id="S1", cdr_token=ex.cdr_token(party_id="EM1"))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S1", session, to=None).json()["status_code"] == 4003
        assert wait_until(lambda: received(em2, "locations", "PUT") and received(em2, "tariffs", "PUT"))
        worker.follow_once()
        worker.deliver()
        assert em1.received[before:] == []
        assert not [r for r in json.loads(run_hub(settings, "deliveries", "list", "--party", "IN/EM1",
                                                  "--json").stdout) if r["module"] in ("locations", "tariffs")]
    finally:
        for partner in (em1, em2, cpo_partner):
            partner.stop()


def test_a_deny_rule_refuses_a_directed_location_push_with_4000(hub, worker, settings):
    em1 = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    run_hub(settings, "routing", "deny", "IN/ECP", "IN/EM1", "--module", "locations")
    try:
        answer = cpo.push("PUT", "locations/receiver/IN/ECP/L1", ex.location(id="L1"), to=("IN", "EM1"))
        body = answer.json()
        assert answer.status_code == 200 and body["status_code"] == 4000, answer.text
        assert "routing to IN/EM1/EMSP refused" in body["status_message"]
        # Not stored, so nothing to deliver; Tariffs to EM1 still pass.
        own = cpo.push("GET", "locations/receiver/IN/ECP/L1", to=None)
        assert own.json()["status_code"] != 1000, own.text
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/T1", ex.tariff(id="T1"),
                        to=("IN", "EM1")).json()["status_code"] == 1000
        assert wait_until(lambda: received(em1, "tariffs", "PUT"))
        worker.follow_once()
        worker.deliver()
        assert not received(em1, "locations")
    finally:
        em1.stop()
        cpo_partner.stop()
