"""What the operator watches: /metrics, /health, /ready and the request log lines."""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psycopg
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import ocpi_examples as ex
from tests.conftest import serve_in_thread, wait_until
from tests.integration.test_commands import cpo_answering, send
from tests.integration.test_forwarding import Cpo
from tests.integration.test_tokens import authorize, emsp_answering
from tests.partner import envelope, free_port, role

HUB = {"OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"}
FOLLOWERS = {"parties", "objects", "routing-rules", "commands", "dispatch-clientinfo", "dispatch-objects",
             "dispatch-commands", "dispatch-chargingprofiles", "audit-subscriptions"}


# Helpers -------------------------------------------------------------------------------
class Scrape:
    """One /metrics answer, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels) -> float | None:
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        return found[0] if found else None

    def matching(self, name: str, **labels) -> list:
        return [s for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def total(self, name: str, **labels) -> float:
        return sum(s.value for s in self.matching(name, **labels))


def scrape(url: str) -> Scrape:
    answer = requests.get(url + "/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return Scrape(answer.text)


def pull_locations(hub, partner, party_id="EMP", headers=None):
    return hub.call("GET", "/ocpi/2.2.1/locations/sender", partner.hub_token,
                    headers=headers or {"OCPI-from-country-code": "IN", "OCPI-from-party-id": party_id, **HUB})


def tokens_of(*partners) -> list[str]:
    """Every credentials token of these partners, raw and as sent in the header (Base64)."""
    raw = [t for p in partners for t in (p.hub_token, p.token_for_hub, getattr(p, "token_a", None)) if t]
    return raw + [base64.b64encode(t.encode()).decode() for t in raw]


def request_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "hub.requests"]


class CapturedLogs:
    """Every log record of this process, formatted as hub web writes them."""

    def __enter__(self):
        from hub.infra.logs import JsonFormatter

        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.root = logging.getLogger()
        self.level = self.root.level
        self.root.addHandler(self.handler)
        self.root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc) -> None:
        self.root.removeHandler(self.handler)
        self.root.setLevel(self.level)

    @property
    def text(self) -> str:
        self.handler.flush()
        return self.stream.getvalue()


def sql(settings, statement: str, params=()) -> list:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


# Request metrics ---------------------------------------------------------------------------
def test_requests_are_counted_by_module_method_party_and_status(hub, worker):
    cpo = cpo_answering(hub)
    emsp = emsp_answering(hub)
    try:
        for _ in range(3):
            assert pull_locations(hub, emsp).status_code == 200
        assert hub.call("GET", "/ocpi/versions", emsp.hub_token).status_code == 200
        for _ in range(2):
            assert hub.call("GET", "/ocpi/versions").status_code == 401
        refused = pull_locations(hub, emsp, headers={"OCPI-from-country-code": "IN",
                                                     "OCPI-from-party-id": "ZZZ", **HUB})
        assert refused.status_code == 200 and refused.json()["status_code"] == 2001
        for uid in ("ALLOW1", "BLOCK1"):
            assert authorize(hub, cpo, uid, to=("IN", "EMP")).json()["status_code"] == 1000
        command = send(hub, emsp, "UNLOCK_CONNECTOR",
                       {"response_url": f"{emsp.base}/results/1", "location_id": "LOC1",
                        "evse_uid": "E1", "connector_id": "1"})
        assert command.status_code == 200 and command.json()["status_code"] == 1000
        for path in ("/health", "/ready", "/metrics"):
            requests.get(hub.url + path, timeout=10)

        m = scrape(hub.url)
        count = "hub_requests_total"
        ok = {"http_status": "200", "status_code": "1000"}
        assert m.value(count, module="locations", method="GET", party="IN/EMP/EMSP", **ok) == 3
        assert m.value("hub_request_seconds_count", module="locations", method="GET") == 4  # 3 + refused
        assert m.value("hub_request_seconds_sum", module="locations", method="GET") > 0
        # Configuration modules count for the platform's (first) party; the handshake is in there.
        assert m.value(count, module="versions", method="GET", party="IN/EMP/EMSP", **ok) == 3
        assert m.value(count, module="credentials", method="POST", party="IN/EMP/EMSP", **ok) == 1
        assert m.value(count, module="credentials", method="POST", party="IN/ECP/CPO", **ok) == 1
        # No valid token: party unknown. A refused FROM header: the platform's party, 400/2001.
        assert m.value(count, module="versions", method="GET", party="unknown", http_status="401",
                       status_code="2000") == 2
        assert m.value(count, module="locations", method="GET", party="IN/EMP/EMSP", http_status="200",
                       status_code="2001") == 1
        # Real-time paths: the answer relayed from the partner, and their own latency histograms.
        assert m.value(count, module="tokens", method="POST", party="IN/ECP/CPO", **ok) == 2
        assert m.value("hub_authorization_seconds_count") == 2
        assert 0 < m.value("hub_authorization_seconds_sum") < 20
        assert m.value(count, module="commands", method="POST", party="IN/EMP/EMSP", **ok) == 1
        assert m.value("hub_command_seconds_count") == 1
        # Probes and scrapes are not OCPI traffic.
        assert not m.matching(count, module="unknown", http_status="200")
    finally:
        cpo.stop()
        emsp.stop()


# Gauges from the database ----------------------------------------------------------------------
def test_delivery_party_and_lag_gauges(hub, worker):
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    refusing = hub.connect_partner([role("EMSP", "IN", "EMR")])
    original = refusing.answer
    refusing.answer = lambda record: (envelope(None, 2001, "not this tariff")
                                      if "/tariffs/" in record.path else original(record))
    down = hub.connect_partner([role("EMSP", "IN", "EMD")])
    down.stop()  # registered, then gone: calls find no answer, it goes OFFLINE and its deliveries wait
    try:
        cpo = Cpo(hub, cpo_partner)
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/T1", ex.tariff(id="T1")).status_code == 201

        def settled():
            m = scrape(hub.url)
            ready = (m.value("hub_deliveries_failed", party="IN/EMR/EMSP") == 1
                     and m.value("hub_deliveries_pending_retries", party="IN/EMD/EMSP") is not None
                     and m.value("hub_party_status", party="IN/EMD/EMSP", role="EMSP", status="OFFLINE") == 1)
            return m if ready else None

        m = wait_until(settled, timeout=40, interval=0.5)
        assert m, scrape(hub.url).text
        assert m.value("hub_database_up") == 1
        # The unreachable eMSP: its tariff (and ClientInfo updates) wait, the oldest for a while.
        assert m.value("hub_deliveries_pending", party="IN/EMD/EMSP") >= 1
        assert 0 < m.value("hub_deliveries_oldest_pending_age_seconds", party="IN/EMD/EMSP") < 120
        assert m.value("hub_deliveries_failed", party="IN/EMD/EMSP") == 0
        # The refusing eMSP: parked, nothing waiting. Every party shows every gauge.
        assert m.value("hub_deliveries_pending", party="IN/EMR/EMSP") == 0
        assert m.value("hub_deliveries_failed", party="IN/ECP/CPO") == 0
        assert m.value("hub_deliveries_pending_retries", party="IN/ECP/CPO") == 0
        # Party status: one series per party, value 1.
        statuses = {(s.labels["party"], s.labels["status"]) for s in m.matching("hub_party_status")}
        assert statuses == {("IN/ECP/CPO", "CONNECTED"), ("IN/EMR/EMSP", "CONNECTED"),
                            ("IN/EMD/EMSP", "OFFLINE")}
        # Followers: all of them, caught up by the running worker.
        assert wait_until(lambda: all(s.value == 0 for s in scrape(hub.url).matching("hub_follower_lag")))
        m = scrape(hub.url)
        assert {s.labels["follower"] for s in m.matching("hub_follower_lag")} == FOLLOWERS
        head = sql(hub.settings, "SELECT max(notification_id) FROM hub_events")[0][0]
        assert m.value("hub_event_log_head") >= head > 0
        assert all(0 <= s.value < 60 for s in m.matching("hub_follower_seconds_since_update"))
    finally:
        for partner in (cpo_partner, refusing):
            partner.stop()


# /health and /ready ------------------------------------------------------------------------------
def test_health_and_ready_with_a_worker(hub, worker):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    try:
        health = requests.get(hub.url + "/health", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        def ready():
            answer = requests.get(hub.url + "/ready", timeout=10)
            return answer if answer.status_code == 200 else None

        answer = wait_until(ready, timeout=20)
        assert answer, requests.get(hub.url + "/ready", timeout=10).text
        body = answer.json()
        assert body["status"] == "ready" and body["failed"] == []
        assert set(body["checks"]) == {"database", "schema", "followers"}
        # Public like /health: no token needed, no OCPI envelope.
        assert "status_code" not in body
    finally:
        emsp.stop()


def test_ready_fails_when_followers_are_stale(hub, settings):
    from hub.infra.eventlog import EventLog
    from hub.services.application import Hub
    from projections import all_projections
    from scheduler.worker import dispatchers

    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])  # events written, no worker running
    try:
        answer = requests.get(hub.url + "/ready", timeout=10)
        assert answer.status_code == 503
        body = answer.json()
        assert body["failed"] == ["followers"] and body["checks"]["database"]["ok"]
        stale = {f["name"]: f for f in body["checks"]["followers"]["stale"]}
        assert {"dispatch-objects", "dispatch-clientinfo"} <= set(stale)
        assert stale["dispatch-objects"]["seconds_since_update"] is None and stale["dispatch-objects"]["lag"] > 0
        head = sql(settings, "SELECT max(notification_id) FROM hub_events")[0][0]
        m = scrape(hub.url)
        assert m.value("hub_follower_lag", follower="dispatch-objects") == head
        assert m.value("hub_follower_lag", follower="parties") == 0

        # A worker round catches every follower up: ready.
        app = Hub(settings, settings.database_url, pool_size=2)
        try:
            log = EventLog(app)
            for follower in [*all_projections(), *dispatchers()]:
                log.catch_up(follower)
        finally:
            app.close()
        assert requests.get(hub.url + "/ready", timeout=10).status_code == 200

        # New events, and no follower moved for a minute: the worker is gone.
        assert pull_locations(hub, emsp).status_code == 200
        sql(settings, "UPDATE hub_tracking SET updated_at = now() - interval '60 seconds'")
        answer = requests.get(hub.url + "/ready", timeout=10)
        assert answer.status_code == 503 and answer.json()["failed"] == ["followers"]
        names = {f["name"] for f in answer.json()["checks"]["followers"]["stale"]}
        assert names == FOLLOWERS - {"parties"} or names == FOLLOWERS
        assert all(f["seconds_since_update"] >= 59 for f in answer.json()["checks"]["followers"]["stale"])
    finally:
        emsp.stop()


def test_ready_needs_a_running_worker_even_when_the_log_is_idle(hub, settings):
    """Nothing to do is no proof of life: without a worker's recent stamp, followers are not running."""
    from hub.infra.eventlog import EventLog
    from hub.services.application import Hub
    from projections import all_projections
    from scheduler.worker import Worker, dispatchers

    def ready():
        return requests.get(hub.url + "/ready", timeout=10)

    # A fresh hub, an empty log, no worker: nothing lags, and nothing runs.
    answer = ready()
    assert answer.status_code == 503 and answer.json()["failed"] == ["followers"]
    stale = answer.json()["checks"]["followers"]["stale"]
    assert {f["name"] for f in stale} == FOLLOWERS and all(f["lag"] == 0 for f in stale)

    # Some history, every follower caught up, then the worker went away a minute ago.
    hub.onboard("EMSP", "IN", "EMP")
    app = Hub(settings, settings.database_url, pool_size=2)
    try:
        log = EventLog(app)
        for follower in [*all_projections(), *dispatchers()]:
            log.catch_up(follower)
    finally:
        app.close()
    sql(settings, "UPDATE hub_tracking SET updated_at = now() - interval '60 seconds'")
    answer = ready()
    assert answer.status_code == 503 and answer.json()["failed"] == ["followers"]
    stale = answer.json()["checks"]["followers"]["stale"]
    assert {f["name"] for f in stale} == FOLLOWERS and all(f["lag"] == 0 for f in stale)

    # A worker starts: it stamps every follower, idle or not.
    worker = Worker(settings, settings.database_url)
    worker.start()
    try:
        answer = wait_until(lambda: (lambda a: a if a.status_code == 200 else None)(ready()), timeout=20)
        assert answer, ready().text
        assert answer.json()["status"] == "ready" and answer.json()["checks"]["followers"]["stale"] == []
    finally:
        worker.stop()


def test_ready_fails_when_the_schema_is_old_or_missing(hub, settings, database_url):
    from handlers.app import create_app
    from handlers.context import WebContext
    from hub.services.schema import SCHEMA_VERSION

    sql(settings, "UPDATE hub_schema SET version = %s WHERE component = 'hub'", (SCHEMA_VERSION - 1,))
    answer = requests.get(hub.url + "/ready", timeout=10)
    assert answer.status_code == 503
    assert answer.json()["failed"] == ["schema"]
    assert answer.json()["checks"]["schema"] == {"ok": False, "version": SCHEMA_VERSION - 1,
                                                 "expected": SCHEMA_VERSION}
    assert answer.json()["checks"]["followers"] == {"ok": False, "skipped": True}
    assert requests.get(hub.url + "/health", timeout=5).status_code == 200

    # A database nobody migrated: not ready, and /metrics still answers.
    empty = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{empty}"')
    port = free_port()
    ctx = WebContext.open(replace(settings, database_schema=empty), database_url)
    server = serve_in_thread(create_app(ctx), port)
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/ready", timeout=10)
        assert answer.status_code == 503
        assert answer.json()["checks"]["schema"]["version"] is None
        assert answer.json()["checks"]["database"] == {"ok": True}
        assert scrape(f"http://127.0.0.1:{port}").value("hub_database_up") == 0
    finally:
        server.shutdown()
        server.server_close()
        ctx.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{empty}" CASCADE')


# Logs ----------------------------------------------------------------------------------------
def test_request_log_lines_carry_ids_and_never_a_token(hub, worker):
    with CapturedLogs() as logs:
        token_a = hub.onboard("EMSP", "IN", "EMP", "Log test")["token_a"]
        from tests.partner import Partner

        emsp = Partner(roles=[role("EMSP", "IN", "EMP")]).start()
        emsp.token_a = token_a
        try:
            hub.register(emsp, token_a)
            correlation = str(uuid.uuid4())
            answer = hub.call("GET", "/ocpi/2.2.1/locations/sender", emsp.hub_token,
                              headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP",
                                       "X-Correlation-ID": correlation, **HUB})
            assert answer.status_code == 200
            guessed = "not-a-token-" + uuid.uuid4().hex
            assert hub.call("GET", "/ocpi/versions", guessed).status_code == 401
            invalid = hub.call("PUT", "/ocpi/2.2.1/tokens/receiver/IN/EMP/T1", emsp.hub_token,
                               json={"uid": "T1", "auth": emsp.hub_token},
                               headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP", **HUB})
            assert invalid.json()["status_code"] == 2001
        finally:
            emsp.stop()
        text = logs.text
    for secret in [*tokens_of(emsp), guessed, base64.b64encode(guessed.encode()).decode()]:
        assert secret not in text, "a token reached the logs"
    lines = request_lines(text)
    line = next(x for x in lines if x.get("correlation_id") == correlation)
    assert line["request_id"] == answer.headers["X-Request-ID"]
    assert line["ocpi_module"] == "locations" and line["party"] == "IN/EMP/EMSP"
    assert line["http_status"] == 200 and line["status_code"] == 1000
    refused = [x for x in lines if x["http_status"] == 401]
    assert refused and refused[0]["party"] == "unknown" and refused[0]["request_id"]


def test_request_log_lines_carry_the_ocpi_status_code_and_message(hub):
    """An OCPI error answered with HTTP 200 (3001 here) says so in the log line, with its message."""
    from tests.partner import Partner

    token_a = hub.onboard("CPO", "IN", "LGS", "Log status test")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "LGS")]).start()
    try:
        credentials = "/ocpi/2.2.1/credentials"
        unreachable = {**partner.credentials(), "url": f"http://127.0.0.1:{free_port()}/ocpi/versions"}
        with CapturedLogs() as logs:
            refused = hub.call("POST", credentials, token_a, json=unreachable)
            versions = hub.call("GET", "/ocpi/versions", token_a)
        text = logs.text
    finally:
        partner.stop()
    assert refused.status_code == 200 and refused.json()["status_code"] == 3001
    message = refused.json()["status_message"]
    assert message
    lines = {line["request_id"]: line for line in request_lines(text)}
    error = lines[refused.headers["X-Request-ID"]]
    assert error["message"] == f"POST {credentials} -> 200 3001 {message}"
    assert (error["http_status"], error["status_code"], error["status_message"]) == (200, 3001, message)

    assert versions.status_code == 200 and versions.json()["status_code"] == 1000
    success = lines[versions.headers["X-Request-ID"]]
    expected = " ".join(str(p) for p in (1000, versions.json().get("status_message")) if p)
    assert success["message"] == f"GET /ocpi/versions -> 200 {expected}"
    assert (success["status_code"], success["status_message"]) == (1000, versions.json().get("status_message"))


def test_delivery_attempts_are_logged_with_ids_and_never_a_token(hub, worker):
    with CapturedLogs() as logs:
        cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
        emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
        refusing = hub.connect_partner([role("EMSP", "IN", "EMR")])
        original = refusing.answer
        refusing.answer = lambda record: (envelope(None, 2001, "not this tariff")
                                          if "/tariffs/" in record.path else original(record))
        try:
            correlation = str(uuid.uuid4())
            cpo = Cpo(hub, cpo_partner)
            pushed = cpo.push("PUT", "tariffs/receiver/IN/ECP/T1", ex.tariff(id="T1"), correlation_id=correlation)
            assert pushed.status_code == 201

            def attempts():
                lines = [json.loads(x) for x in logs.text.splitlines() if x.startswith("{")]
                found = [x for x in lines if x.get("logger") == "hub.deliveries"
                         and x.get("correlation_id") == correlation]
                return found if {x["recipient"] for x in found} >= {"IN/EMP/EMSP", "IN/EMR/EMSP"} else None

            lines = wait_until(attempts, timeout=20)
            assert lines, logs.text
        finally:
            for partner in (cpo_partner, emsp, refusing):
                partner.stop()
        text = logs.text
    taken = next(x for x in lines if x["recipient"] == "IN/EMP/EMSP")
    sent = emsp.requests_to("/ocpi/2.2.1/tariffs/receiver", "PUT")[0]
    assert taken["request_id"] == sent.header("X-Request-ID") and taken["request_id"]
    assert taken["outcome"] == "delivered" and taken["level"] == "INFO" and taken["failure"] is None
    assert (taken["ocpi_module"], taken["method"], taken["http_status"], taken["status_code"]) == (
        "tariffs", "PUT", 200, 1000)
    assert taken["duration_ms"] >= 0 and taken["delivery_id"] and taken["attempt"] == 1
    refused = next(x for x in lines if x["recipient"] == "IN/EMR/EMSP")
    assert refused["outcome"] == "failed" and refused["failure"] == "refused" and refused["status_code"] == 2001
    assert refused["level"] == "WARNING"
    for line in lines:  # no URL (a response_url may hold a partner's secret), no token
        assert "http://" not in json.dumps(line)
    for secret in tokens_of(cpo_partner, emsp, refusing):
        assert secret not in text, "a token reached the logs"
    assert '"delivery ' not in text or "failed unexpectedly" not in text


# Under gunicorn --------------------------------------------------------------------------------
def test_counters_add_up_across_gunicorn_workers(gunicorn_hub, processes, settings):
    hub = gunicorn_hub
    directories = list((Path(settings.data_dir) / "metrics").glob("web-*"))
    assert len(directories) == 1, directories
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    emsp.token_a = None
    web_log = next(processes.logs.glob("*-web.log"))

    def serving_pids() -> set:
        lines = request_lines(web_log.read_text(errors="replace"))
        return {line["pid"] for line in lines if line.get("ocpi_module") == "locations"}

    try:
        # Rounds of concurrent pulls until both gthread workers have served some (one
        # worker's threads may take a whole round).
        answers: list[int] = []
        with ThreadPoolExecutor(max_workers=12) as pool:
            while len(serving_pids()) < 2 and len(answers) < 400:
                answers += pool.map(lambda _: pull_locations(hub, emsp).status_code, range(20))
        pulls = len(answers)
        assert answers == [200] * pulls
        # Whichever worker answers the scrape, it reports every worker's requests.
        for _ in range(6):
            m = scrape(hub.url)
            assert m.value("hub_requests_total", module="locations", method="GET", party="IN/EMP/EMSP",
                           http_status="200", status_code="1000") == pulls
            assert m.value("hub_request_seconds_count", module="locations", method="GET") == pulls
            assert m.value("hub_requests_total", module="credentials", method="POST",
                           party="IN/EMP/EMSP", http_status="200", status_code="1000") == 1
            assert m.value("hub_party_status", party="IN/EMP/EMSP", role="EMSP", status="CONNECTED") == 1
        assert requests.get(hub.url + "/health", timeout=5).status_code == 200
        ready = wait_until(lambda: requests.get(hub.url + "/ready", timeout=10).status_code == 200, timeout=30)
        assert ready, requests.get(hub.url + "/ready", timeout=10).text
    finally:
        emsp.stop()
        processes.stop_all()
    text = web_log.read_text(errors="replace")  # hub web's stderr
    assert not directories[0].exists(), "hub web left its metrics directory behind"
    lines = request_lines(text)
    served_by = {line["pid"] for line in lines if line.get("ocpi_module") == "locations"}
    assert len(served_by) == 2, f"expected both workers to serve requests, got {served_by}"
    for line in lines:
        assert line["request_id"] and line["correlation_id"] and "party" in line and "http_status" in line
    for secret in tokens_of(emsp):
        assert secret not in text, "a token reached the logs"
