"""The outbound guard with real partner servers on 127.0.0.1 and real PostgreSQL.

The project's tests allow 127.0.0.0/8 and ::1/128 (HUB_PARTNER_NETWORKS_ALLOWED,
tests/conftest.py). Here a hub or worker runs with the allow-list empty, as the
default is, and every call it would make to those partners is refused before a
byte is sent; with the list set, the same calls go through.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from hub.infra.client import OcpiClient, PartnerBadResponse, PartnerRefused
from hub.infra.outbound import OutboundGuard, parse_networks
from scheduler.worker import Worker
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import SANDBOX_NETWORKS, HubUnderTest, serve_in_thread, wait_until
from tests.integration.test_forwarding import Cpo, stamp
from tests.partner import Partner, free_port, role

SANDBOX = OutboundGuard(parse_networks(SANDBOX_NETWORKS))


@pytest.fixture
def strict_hub(settings):
    """The hub's app over real HTTP, with the default guard: public addresses only."""
    from handlers.app import create_app
    from handlers.context import WebContext

    strict = replace(settings, partner_networks_allowed=())
    ctx = WebContext.open(strict, strict.database_url)
    port = int(settings.extra["port"])
    server = serve_in_thread(create_app(ctx), port)
    yield HubUnderTest(strict, f"http://127.0.0.1:{port}", ctx)
    server.shutdown()
    server.server_close()
    ctx.close()


def sql(settings, query: str, params=()) -> list[tuple]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        return conn.execute(query, params).fetchall()


class Raw:
    """A partner server answering every request with a fixed status, headers and body; counts requests."""

    def __init__(self, status: int = 200, headers: dict | None = None, body: bytes = b"",
                 length: bool = True) -> None:
        raw = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if not length else "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                raw.paths.append(self.path)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the hub stopped reading: expected for an oversized answer
                    pass

            do_POST = do_PUT = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_registration_is_refused_with_the_allow_list_empty_and_allowed_with_it_set(strict_hub, hub_allowing):
    token_a = strict_hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    try:
        answer = strict_hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials())
        body = answer.json()
        assert answer.status_code == 200 and body["status_code"] == 3001, body
        assert partner.versions_url in body["status_message"]
        assert "refused by the outbound guard, 127.0.0.1 is loopback" in body["status_message"]
        assert partner.received == []  # not a byte reached the partner
        # A name that resolves to a refused address is refused too.
        by_name = {**partner.credentials(), "url": f"http://localhost:{partner.port}/ocpi/versions"}
        body = strict_hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=by_name).json()
        assert body["status_code"] == 3001 and "localhost" in body["status_message"], body
        assert "is loopback" in body["status_message"] and partner.received == []
        # The same partner with the sandbox allow-list: registered.
        assert hub_allowing(token_a, partner)["status_code"] == 1000
        assert partner.requests_to("/ocpi/versions")
    finally:
        partner.stop()


@pytest.fixture
def hub_allowing(settings):
    """Register through a hub app on another port that allows the sandbox ranges (same database)."""
    from handlers.app import create_app
    from handlers.context import WebContext

    opened = []

    def register(token_a: str, partner: Partner) -> dict:
        port = free_port()
        allowed = replace(settings, partner_networks_allowed=SANDBOX.allowed)
        ctx = WebContext.open(allowed, allowed.database_url)
        server = serve_in_thread(create_app(ctx), port)
        opened.append((server, ctx))
        return HubUnderTest(allowed, f"http://127.0.0.1:{port}", ctx).call(
            "POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials()).json()

    yield register
    for server, ctx in opened:
        server.shutdown()
        server.server_close()
        ctx.close()


def test_endpoints_in_the_version_details_are_checked_at_registration(hub):
    """A partner whose versions are fine but whose endpoints point at the metadata address: 3001."""
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    partner = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    original = partner.answer

    def answer(record):
        body = original(record)
        if record.path == "/ocpi/2.2.1":
            body["data"]["endpoints"].append({"identifier": "locations", "role": "RECEIVER",
                                              "url": "http://169.254.169.254/latest/meta-data/"})
        return body

    partner.answer = answer
    try:
        body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials()).json()
        assert body["status_code"] == 3001, body
        assert "http://169.254.169.254/latest/meta-data/" in body["status_message"]
        assert "169.254.169.254 is link-local" in body["status_message"]
        assert not partner.requests_to("/ocpi/2.2.1/credentials")  # nothing more was called
    finally:
        partner.stop()


def test_the_hub_starting_the_handshake_is_refused_too(settings):
    """``hub parties connect`` to a partner on a refused address: 3001 naming the URL."""
    from hub.ocpi.errors import OcpiError
    from hub.services.application import Hub
    from hub.services.registration import Registration

    partner = Partner(roles=[role("EMSP", "IN", "OUT")]).start()
    app = Hub(settings, settings.database_url, pool_size=2)
    client = OcpiClient(guard=OutboundGuard())
    try:
        with pytest.raises(OcpiError) as refused:
            Registration(app, client).connect(partner.versions_url, "their-token-a", lambda _p: None)
        assert refused.value.status_code == 3001
        assert partner.versions_url in refused.value.message and "is loopback" in refused.value.message
        assert partner.received == []
    finally:
        client.close()
        app.close()
        partner.stop()


def test_the_check_is_made_on_the_address_connected_to():
    """No pre-check: the client's own connection refuses (a rebinding resolver gains nothing)."""
    partner = Partner(roles=[role("EMSP", "IN", "OUT")]).start()
    strict, allowing = OcpiClient(guard=OutboundGuard()), OcpiClient(guard=SANDBOX)
    try:
        assert strict.session.trust_env is False  # no proxy: nothing but the connection checks
        for url in (partner.versions_url, f"http://localhost:{partner.port}/ocpi/versions",
                    f"http://[::ffff:127.0.0.1]:{partner.port}/ocpi/versions"):
            with pytest.raises(PartnerRefused, match="refused by the outbound guard"):
                strict.request("GET", url, "t")
        assert partner.received == []
        assert allowing.request("GET", partner.versions_url, "t").ok
        assert allowing.request("GET", f"http://localhost:{partner.port}/ocpi/versions", "t").ok
    finally:
        strict.close()
        allowing.close()
        partner.stop()


def test_a_redirect_is_not_followed(hub):
    target = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    redirecting = Raw(302, {"Location": target.versions_url, "Content-Type": "application/json"},
                      b'{"status_code": 1000, "data": []}')
    token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
    try:
        credentials = {**target.credentials(), "url": redirecting.url + "/ocpi/versions"}
        body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=credentials).json()
        assert body["status_code"] == 3001, body
        assert "HTTP 302" in body["status_message"]
        assert redirecting.paths == ["/ocpi/versions"] and target.received == []
        # The client itself hands the 302 back as it came.
        client = OcpiClient(guard=SANDBOX)
        try:
            answer = client.request("GET", redirecting.url + "/x", "t")
            assert answer.http_status == 302 and target.received == []
        finally:
            client.close()
    finally:
        redirecting.stop()
        target.stop()


@pytest.mark.parametrize("declared", [True, False])
def test_an_oversized_answer_is_cut_off_and_counts_as_no_answer(declared):
    limit = 64 * 1024
    huge = b'{"status_code": 1000, "data": "' + b"x" * (4 * limit) + b'"}'
    fits = b'{"status_code": 1000, "data": "' + b"x" * (limit - 100) + b'"}'
    big, small = Raw(body=huge, length=declared), Raw(body=fits, length=declared)
    client = OcpiClient(guard=OutboundGuard(SANDBOX.allowed, max_response_bytes=limit))
    try:
        with pytest.raises(PartnerBadResponse, match=f"answer cut off: longer than {limit} bytes"):
            client.request("GET", big.url + "/ocpi/versions", "t")
        assert client.request("GET", small.url + "/ocpi/versions", "t").ok
    finally:
        client.close()
        big.stop()
        small.stop()


def test_a_registration_whose_versions_answer_is_oversized_gets_3001(settings):
    """HUB_PARTNER_MAX_RESPONSE_BYTES as an operator sets it, through a hub process's settings."""
    from handlers.app import create_app
    from handlers.context import WebContext

    small = replace(settings, partner_max_response_bytes=1000)
    ctx = WebContext.open(small, small.database_url)
    port = int(settings.extra["port"])
    server = serve_in_thread(create_app(ctx), port)
    hub = HubUnderTest(small, f"http://127.0.0.1:{port}", ctx)
    partner = Partner(roles=[role("CPO", "IN", "ECP")],
                      version_list=[{"version": f"9.{n}", "url": "http://127.0.0.1:1/" + "v" * 50}
                                    for n in range(40)]).start()
    try:
        token_a = hub.onboard("CPO", "IN", "ECP")["token_a"]
        body = hub.call("POST", "/ocpi/2.2.1/credentials", token_a, json=partner.credentials()).json()
        assert body["status_code"] == 3001, body
        assert "answer cut off: longer than 1000 bytes" in body["status_message"]
    finally:
        partner.stop()
        server.shutdown()
        server.server_close()
        ctx.close()


def test_a_queued_delivery_to_a_refused_url_is_parked_with_the_reason(hub, settings):
    """Partners registered while allowed; the worker then runs with the default guard."""
    emsp = hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo = Cpo(hub, hub.connect_partner([role("CPO", "IN", "ECP")]))
    worker = Worker(replace(settings, partner_networks_allowed=()), settings.database_url)
    worker.start()
    try:
        answer = cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", ex.location(id="LOC1", last_updated=stamp(1)),
                          correlation_id=str(uuid.uuid4()))
        assert answer.json()["status_code"] == 1000
        parked = wait_until(lambda: sql(settings, "SELECT state, attempts, last_error FROM hub_deliveries"
                                                  " WHERE module = 'locations' AND state = 'FAILED'"), timeout=20)
        assert parked, sql(settings, "SELECT state, attempts, last_error FROM hub_deliveries")
        state, attempts, error = parked[0]
        assert attempts == 1  # parked at once, not retried for a day
        assert "refused by the outbound guard, 127.0.0.1 is loopback" in error
        assert emsp.wait_for(lambda r: "/locations/" in r.path, timeout=1) == []
    finally:
        worker.stop()
        emsp.stop()
        cpo.partner.stop()


def test_partner_answers_nested_too_deep_are_no_answer():
    deep = b'{"status_code": 1000, "data": ' + b"[" * 300 + b"]" * 300 + b"}"
    partner = Raw(body=deep)
    client = OcpiClient(guard=SANDBOX)
    try:
        with pytest.raises(PartnerBadResponse, match="JSON nested deeper than 64 levels"):
            client.request("GET", partner.url + "/x", "t")
    finally:
        client.close()
        partner.stop()


def test_the_answer_to_a_refused_call_is_the_envelope_not_a_500(strict_hub):
    """Refused versions URL given by an already-registered partner's credentials PUT: 3001."""
    partner = Partner(roles=[role("CPO", "IN", "ECP")]).start()
    try:
        token_a = strict_hub.onboard("CPO", "IN", "ECP")["token_a"]
        for url in ("http://169.254.169.254/latest/", "http://[fd00::1]/v", "http://100.64.0.1/v",
                    "http://10.0.0.1/ocpi/versions", "http://[::ffff:169.254.169.254]/v"):
            answer = strict_hub.call("POST", "/ocpi/2.2.1/credentials", token_a,
                                     json={**partner.credentials(), "url": url})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["status_code"] == 3001 and url in body["status_message"], body
            assert "refused by the outbound guard" in body["status_message"]
    finally:
        partner.stop()




def test_a_real_time_call_to_a_refused_address_is_not_sent(hub, settings):
    """A token authorization relayed by a web process with the default guard: the eMSP (on
    loopback) receives nothing, the CPO gets the hub's 'could not be reached' answer, and the
    recorded call says why."""
    from handlers.app import create_app
    from handlers.context import WebContext
    from tests.integration.test_tokens import authorize, emsp_answering

    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp = emsp_answering(hub)
    strict = replace(settings, partner_networks_allowed=())
    ctx = WebContext.open(strict, strict.database_url)
    port = free_port()
    server = serve_in_thread(create_app(ctx), port)
    try:
        allowed = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP"))
        assert allowed.json()["data"]["allowed"] == "ALLOWED"
        asked = len(emsp.requests_to("/ocpi/2.2.1/tokens/sender"))
        correlation = str(uuid.uuid4())
        refused = authorize(HubUnderTest(strict, f"http://127.0.0.1:{port}", ctx), cpo, "ALLOW1",
                            to=("IN", "EMP"), correlation_id=correlation)
        assert refused.status_code == 200 and refused.json()["status_code"] == 4003, refused.text
        assert len(emsp.requests_to("/ocpi/2.2.1/tokens/sender")) == asked
        def traced():  # as an operator reads it: hub audit trace <correlation id>
            steps = json.loads(run_hub(settings, "audit", "trace", correlation, "--json").stdout)
            return [s for s in steps if "refused by the outbound guard" in json.dumps(s)]

        assert wait_until(traced, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        ctx.close()
        cpo.stop()
        emsp.stop()
