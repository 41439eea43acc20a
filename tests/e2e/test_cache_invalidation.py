"""The web side's caches (tokens, parties, endpoints, routing rules) across processes.

A change made in one process (a ``hub web`` worker answering a credentials DELETE, or a
``hub parties suspend`` / ``hub routing deny`` CLI process) must be in force in every
other web process within ``HUB_CACHE_MAX_AGE`` (docs/operations.md "Caches"). Each test
first makes the other process cache what is about to change, then polls it until the
refusal comes, up to the bound plus slack: no timing is asserted beyond that deadline.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.cli import run_hub
from tests.conftest import HubUnderTest, wait_until
from tests.integration.test_tokens import authorize, emsp_answering
from tests.partner import free_port, role

MAX_AGE = 1.0  # HUB_CACHE_MAX_AGE of both web processes (the documented default)
SLACK = 4.0  # process scheduling on a shared machine: the refusal must come before MAX_AGE + SLACK


@pytest.fixture
def other_web(settings, processes, gunicorn_hub) -> HubUnderTest:
    """A second ``hub web`` (one gunicorn worker, so one cache) beside ``gunicorn_hub``."""
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")},
           "HUB_CACHE_MAX_AGE": str(MAX_AGE)}
    port = free_port()
    processes.start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "1"], env)
    other = HubUnderTest(settings, f"http://127.0.0.1:{port}")
    assert wait_until(lambda: _health(other), timeout=30), "second hub web did not come up\n" + processes.log_tail()
    return other


def _health(hub: HubUnderTest) -> bool:
    try:
        return hub.call("GET", "/health").status_code == 200
    except OSError:
        return False


def refused_within_bound(check) -> bool:
    """Poll ``check()`` (True once refused) until MAX_AGE + SLACK has passed."""
    deadline = time.monotonic() + MAX_AGE + SLACK
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_token_revoked_by_credentials_delete_is_refused_by_another_process(gunicorn_hub, other_web):
    cpo = gunicorn_hub.connect_partner([role("CPO", "IN", "ECP")])
    try:
        token = cpo.hub_token
        for _ in range(3):  # the other process now holds the caller in its cache
            assert other_web.call("GET", "/ocpi/versions", token).status_code == 200
        deleted = gunicorn_hub.call("DELETE", "/ocpi/2.2.1/credentials", token)
        assert deleted.status_code == 200 and deleted.json()["status_code"] == 1000, deleted.text
        assert refused_within_bound(lambda: other_web.call("GET", "/ocpi/versions", token).status_code == 401)
        # And it stays refused, in both processes.
        assert all(hub.call("GET", "/ocpi/versions", token).status_code == 401
                   for hub in (other_web, gunicorn_hub) for _ in range(3))
    finally:
        cpo.stop()


def test_party_suspended_by_the_cli_is_refused_by_a_running_web_process(settings, gunicorn_hub, other_web):
    cpo = gunicorn_hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp = emsp_answering(gunicorn_hub)
    try:
        for _ in range(3):  # caller, snapshot and endpoint are now cached by the other process
            allowed = authorize(other_web, cpo, "ALLOW1", to=("IN", "EMP")).json()
            assert allowed["status_code"] == 1000 and allowed["data"]["allowed"] == "ALLOWED", allowed
        run_hub(settings, "parties", "suspend", "IN/EMP", "--reason", "unpaid")

        def emsp_refused() -> bool:
            answer = authorize(other_web, cpo, "ALLOW1", to=("IN", "EMP")).json()
            return answer["status_code"] == 4003 and "SUSPENDED" in answer["status_message"]

        assert refused_within_bound(emsp_refused)
        run_hub(settings, "parties", "suspend", "IN/ECP", "--reason", "unpaid")
        # The caller's only party is suspended: its token is refused on functional modules.
        assert refused_within_bound(
            lambda: authorize(other_web, cpo, "ALLOW1", to=("IN", "EMP")).status_code == 401)
        answer = authorize(other_web, cpo, "ALLOW1", to=("IN", "EMP"))
        assert answer.status_code == 401 and "suspended" in answer.json()["status_message"]
    finally:
        cpo.stop()
        emsp.stop()


def test_routing_deny_by_the_cli_applies_to_the_next_authorization_after_the_bound(
        settings, gunicorn_hub, other_web):
    cpo = gunicorn_hub.connect_partner([role("CPO", "IN", "ECP")])
    emsp = emsp_answering(gunicorn_hub)
    try:
        for hub in (other_web, gunicorn_hub, gunicorn_hub):  # both processes cache the rules
            assert authorize(hub, cpo, "ALLOW1", to=("IN", "EMP")).json()["status_code"] == 1000
        run_hub(settings, "routing", "deny", "IN/ECP", "IN/EMP", "--module", "tokens", "--reason", "contract")
        time.sleep(MAX_AGE)  # the bound has passed: no process may apply the old rules any more
        relayed_before = len(emsp.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize"))
        for hub in (other_web, gunicorn_hub, gunicorn_hub, other_web):
            refused = authorize(hub, cpo, "ALLOW1", to=("IN", "EMP")).json()
            assert refused["status_code"] == 4000, refused
            assert refused["status_message"].startswith("routing to IN/EMP/EMSP refused: deny by rule")
        assert len(emsp.requests_to("/ocpi/2.2.1/tokens/sender/ALLOW1/authorize")) == relayed_before
    finally:
        cpo.stop()
        emsp.stop()
