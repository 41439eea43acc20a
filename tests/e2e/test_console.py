"""The operations console in a real headless Chromium (Playwright, the Debian browser), against
``hub web`` under gunicorn with ``hub worker``, and partner test servers.

Screenshots of each page go to ``var/test-artifacts/console/`` (ignored by git).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import ROOT, wait_until
from tests.partner import envelope, role

CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "var" / "test-artifacts" / "console"


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: install the Debian package chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (the Debian package chromium); the console's browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 420, "height": 900})  # a phone's width
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def operator(settings, name: str, role_name: str) -> str:
    return json.loads(run_hub(settings, "operators", "add", name, "--role", role_name, "--json").stdout)["secret"]


def login(page, url: str, name: str, secret: str) -> None:
    page.goto(f"{url}/console")
    assert page.url.startswith(f"{url}/console/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=secret]", secret)
    page.click("button[type=submit]")
    page.wait_for_selector("#who")
    assert page.inner_text("#who") == f"{name} ({'admin' if name.startswith('admin') else 'viewer'})"


def push(hub, partner, path: str, body: dict, correlation_id: str, cc="IN", pid="ECP"):
    return hub.call("PUT", f"/ocpi/2.2.1/{path}", partner.hub_token, json=body, headers={
        "OCPI-from-country-code": cc, "OCPI-from-party-id": pid, "OCPI-to-country-code": "IN",
        "OCPI-to-party-id": "CIH", "X-Correlation-ID": correlation_id})


def actions_logged(settings) -> list[dict]:
    """The console's OperatorActions, as ``hub audit export`` gives them to an auditor."""
    out = run_hub(settings, "audit", "export").stdout
    return [r for r in map(json.loads, out.splitlines())
            if r.get("topic") == "OperatorAction.Taken" and r["data"]["command"].startswith("console")]


@pytest.fixture
def console_hub(settings, request):
    settings.extra["HUB_CONSOLE_IDLE_SECONDS"] = "600"
    return request.getfixturevalue("gunicorn_hub")


def test_admin_suspends_retries_traces_and_verifies(console_hub, settings, page):
    hub = console_hub
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    secret = operator(settings, "admin1", "admin")
    try:
        # The EMSP refuses Locations for now: the hub parks the delivery (the partner said no).
        plain = emsp.answer
        emsp.answer = lambda r: envelope(None, 2001, "not now") if "/locations/" in r.path else plain(r)
        correlation = str(uuid.uuid4())
        answer = push(hub, cpo, "locations/receiver/IN/ECP/L1", ex.location(id="L1"), correlation)
        assert answer.status_code == 201 and answer.json()["status_code"] == 1000

        login(page, hub.url, "admin1", secret)
        assert page.locator("svg.chart").count() == 1
        assert page.locator("svg.chart polyline[data-module=locations]").count() == 1
        assert "CONNECTED" in page.inner_text("#parties-by-status")
        shot(page, "overview")

        page.click("text=Parties")
        rows = page.inner_text("#parties")
        assert "IN/EMP/EMSP" in rows and "IN/ECP/CPO" in rows
        shot(page, "parties")

        # Parked: the party page shows the failure and its reason; Retry after the partner is fixed.
        def parked():
            page.goto(f"{hub.url}/console/parties/IN/EMP/EMSP")
            return page.locator("#deliveries .delivery-FAILED").count() >= 1

        assert wait_until(parked, timeout=30, interval=1), page.inner_text("#deliveries")
        assert "not now" in page.inner_text("#deliveries")
        shot(page, "party-parked")
        emsp.answer = plain
        page.click("#retry")
        assert "requeued 1 parked deliveries" in page.inner_text("#notice")
        assert wait_until(lambda: emsp.requests_to("/ocpi/2.2.1/locations/receiver", "PUT")[-1:]
                          and emsp.requests_to("/ocpi/2.2.1/locations/receiver", "PUT")[-1].path.endswith("/L1"),
                          timeout=30)

        def delivered():
            page.goto(f"{hub.url}/console/parties/IN/EMP/EMSP")
            return page.locator("#deliveries .delivery-DELIVERED").count() >= 1

        assert wait_until(delivered, timeout=30, interval=1), page.inner_text("#deliveries")

        # Suspend the CPO: the hub refuses its OCPI requests; resume: they are accepted again.
        page.goto(f"{hub.url}/console/parties/IN/ECP/CPO")
        page.once("dialog", lambda dialog: dialog.accept())
        page.fill("input[name=reason]", "contract paused")
        page.click("#suspend")
        assert page.inner_text("#state") == "SUSPENDED"
        shot(page, "party-suspended")
        refused = wait_until(lambda: push(hub, cpo, "locations/receiver/IN/ECP/L2", ex.location(id="L2"),
                                          str(uuid.uuid4())).status_code == 401, timeout=10)
        assert refused, "a suspended party's push was still accepted"
        page.click("#resume")
        assert page.inner_text("#state") == "CONNECTED"
        accepted = wait_until(lambda: push(hub, cpo, "locations/receiver/IN/ECP/L3", ex.location(id="L3"),
                                           str(uuid.uuid4())).status_code == 201, timeout=10)
        assert accepted, "a resumed party's push was refused"

        # Trace the first exchange by its correlation id: pushed, parked, retried, delivered.
        page.click("text=Trace")
        page.fill("input[name=q]", correlation)
        page.click("form[action$='/trace'] button")
        assert page.locator("#timeline").count() == 1, page.inner_text("main")
        timeline = page.inner_text("#timeline")
        assert "parked" in timeline and "IN/EMP/EMSP" in timeline and "L1" in timeline
        shot(page, "trace")

        # Routing rules: add a deny, explain it, remove it.
        page.goto(f"{hub.url}/console/rules")
        page.fill("form[action$='/rules'] input[name=cpo]", "IN/ECP")
        page.fill("form[action$='/rules'] input[name=emsp]", "IN/EMP")
        page.select_option("form[action$='/rules'] select[name=module]", "tariffs")
        page.select_option("form[action$='/rules'] select[name=effect]", "deny")
        page.click("#set-rule")
        assert "deny IN/ECP/CPO / IN/EMP/EMSP (tariffs)" in page.inner_text("#notice")
        page.goto(f"{hub.url}/console/rules?sender=IN/ECP&receiver=IN/EMP&module=tariffs")
        assert "NOT delivered" in page.inner_text("#explained")
        shot(page, "rules")
        page.click("#rules button")
        assert "removed the rule" in page.inner_text("#notice")

        # Audit: take a checkpoint, verify in the background and watch it finish.
        page.goto(f"{hub.url}/console/audit")
        page.click("#take-checkpoint")
        assert "signed checkpoint of tree size" in page.inner_text("#notice")
        assert page.locator("#checkpoints tr").count() >= 2
        page.click("#verify-now")
        page.wait_for_selector("#verify-state[data-final]", timeout=60_000)
        assert page.inner_text("#verify-state").startswith("OK:")
        shot(page, "audit")

        page.click("text=Log out")
        page.wait_for_url(f"{hub.url}/console/login")
        page.goto(f"{hub.url}/console/parties")
        assert "/console/login" in page.url

        done = [(r["data"]["command"], r["data"]["operator"]) for r in actions_logged(settings)]
        for command in ("console login", "console deliveries retry", "console parties suspend",
                        "console parties resume", "console routing set", "console routing remove",
                        "console audit checkpoint", "console audit verify", "console logout"):
            assert (command, "admin1") in done, (command, done)
    finally:
        emsp.stop()
        cpo.stop()


def test_viewer_csrf_partner_token_and_failed_logins(console_hub, settings, page):
    hub = console_hub
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    viewer_secret = operator(settings, "viewer1", "viewer")
    admin_secret = operator(settings, "admin1", "admin")
    suspend_url = f"{hub.url}/console/parties/IN/ECP/CPO/suspend"

    def state() -> str:
        return json.loads(run_hub(settings, "parties", "show", "IN/ECP/CPO", "--json").stdout)["state"]

    try:
        # A partner token gets no console access: no page, no action.
        as_partner = hub.call("GET", "/console/parties", cpo.hub_token)
        assert as_partner.url.startswith(f"{hub.url}/console/login") and "IN/ECP" not in as_partner.text
        forged = hub.call("POST", "/console/parties/IN/ECP/CPO/suspend", cpo.hub_token, data={"reason": "x"})
        assert forged.status_code == 401
        assert state() == "CONNECTED"

        # Failed logins are refused, recorded and throttled per account.
        page.goto(f"{hub.url}/console/login")
        for _ in range(6):
            page.fill("input[name=name]", "admin1")
            page.fill("input[name=secret]", "wrong")
            page.click("button[type=submit]")
        assert "too many failed logins for admin1" in page.inner_text("#error")
        shot(page, "login-throttled")

        # A viewer sees the party but no buttons, and a forged POST with its own CSRF token is refused.
        login(page, hub.url, "viewer1", viewer_secret)
        page.goto(f"{hub.url}/console/parties/IN/ECP/CPO")
        assert page.inner_text("#state") == "CONNECTED"
        assert page.locator("#actions").count() == 0 and page.locator("button#suspend").count() == 0
        page.goto(f"{hub.url}/console/audit")
        assert page.locator("#verify-now").count() == 0
        page.goto(f"{hub.url}/console/rules")
        assert page.locator("#set-rule").count() == 0
        csrf = page.evaluate("document.querySelector('header input[name=csrf]').value")
        refused = page.request.post(suspend_url, form={"csrf": csrf, "reason": "viewer tries"})
        assert refused.status == 403 and "viewer" in refused.text()
        assert state() == "CONNECTED"
        shot(page, "party-viewer")
        done = [(r["data"]["command"], r["data"]["operator"], r["data"]["outcome"]) for r in actions_logged(settings)]
        assert ("console login failed", "admin1", "refused: wrong name or secret (5 in a row)") in done
        assert ("console login", "admin1", "refused: throttled") in done
        assert any(c == "console login" and o == "viewer1" and out == "ok" for c, o, out in done)
        del admin_secret  # the admin account is throttled now; its CSRF checks are the next test's

        # The overview's figures refresh in place: a suspension made meanwhile shows without a reload.
        page.goto(f"{hub.url}/console?refresh=2")
        assert "SUSPENDED" not in page.inner_text("#parties-by-status")
        page.evaluate("window.notReloaded = true")
        run_hub(settings, "parties", "suspend", "IN/ECP/CPO", "--reason", "refresh test")
        expect(page.locator("#parties-by-status")).to_contain_text("SUSPENDED", timeout=20_000)
        assert page.evaluate("window.notReloaded") is True
        run_hub(settings, "parties", "resume", "IN/ECP/CPO")

        # Removing an operator ends its sessions at once.
        run_hub(settings, "operators", "remove", "viewer1")
        page.goto(f"{hub.url}/console/parties")
        assert "/console/login" in page.url
    finally:
        cpo.stop()


def test_admin_csrf_and_session_expiry(settings, request, page):
    settings.extra["HUB_CONSOLE_IDLE_SECONDS"] = "3"
    settings.extra["HUB_CONSOLE_SESSION_SECONDS"] = "8"
    hub = request.getfixturevalue("gunicorn_hub")
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    secret = operator(settings, "admin1", "admin")
    suspend_url = f"{hub.url}/console/parties/IN/ECP/CPO/suspend"

    def state() -> str:
        return json.loads(run_hub(settings, "parties", "show", "IN/ECP/CPO", "--json").stdout)["state"]

    try:
        login(page, hub.url, "admin1", secret)
        page.goto(f"{hub.url}/console/parties/IN/ECP/CPO")
        assert page.locator("#suspend").count() == 1
        # The check button runs `hub parties check`'s service, or says it is not in this hub.
        page.click("#check")
        if importlib.util.find_spec("hub.services.operators.check") is None:
            assert "check not available" in page.inner_text("#notice")
        else:
            assert page.locator("text=Last check").count() == 1
        missing = page.request.post(suspend_url, form={"reason": "no token"})
        assert missing.status == 403 and "CSRF" in missing.text()
        wrong = page.request.post(suspend_url, form={"csrf": "0" * 64, "reason": "wrong token"})
        assert wrong.status == 403
        assert state() == "CONNECTED"

        # Idle past HUB_CONSOLE_IDLE_SECONDS (the cookie itself still lives): the next page is the
        # login page, and a POST with the session's own CSRF token is refused.
        page.context.clear_cookies()
        login(page, hub.url, "admin1", secret)
        csrf = page.evaluate("document.querySelector('header input[name=csrf]').value")
        page.wait_for_timeout(4500)
        page.goto(f"{hub.url}/console/parties")
        assert "/console/login" in page.url
        shot(page, "login-after-expiry")
        late = page.request.post(suspend_url, form={"csrf": csrf, "reason": "too late"})
        assert late.status == 401
        assert state() == "CONNECTED"

        # Never idle, but past HUB_CONSOLE_SESSION_SECONDS: the server ends the session anyway
        # (the cookie sent by hand, so the browser's own expiry of it does not decide).
        login(page, hub.url, "admin1", secret)
        (cookie,) = [c for c in page.context.cookies() if c["name"] == "hub_console"]
        seen = []

        def ended() -> bool:
            answer = requests.get(f"{hub.url}/console/parties", cookies={"hub_console": cookie["value"]},
                                  allow_redirects=False, timeout=10)
            seen.append(answer.status_code)
            return answer.status_code == 303 and "/console/login" in answer.headers["Location"]

        assert wait_until(ended, timeout=30, interval=1), seen
        assert seen[0] == 200, seen
    finally:
        cpo.stop()


@pytest.fixture
def console_in_process(settings):
    """The hub's app with the console and its delivery queue, served in this process (as ``hub web``
    builds it), and the real worker in threads with a 1 s give-up age."""
    from dataclasses import replace

    from handlers.app import create_app
    from handlers.context import WebContext
    from scheduler import outbox
    from scheduler.worker import Worker
    from tests.conftest import HubUnderTest, serve_in_thread

    ctx = WebContext.open(settings, settings.database_url)
    port = int(settings.extra["port"])
    server = serve_in_thread(create_app(ctx, queue=outbox), port)
    worker = Worker(replace(settings, delivery_give_up_after=1.0), settings.database_url)
    worker.start()
    yield HubUnderTest(settings, f"http://127.0.0.1:{port}", ctx), worker
    worker.stop()
    server.shutdown()
    server.server_close()
    ctx.close()


def test_a_delivery_parked_while_the_partner_was_down_is_retried_from_the_console(console_in_process,
                                                                                  settings, page):
    from scheduler import outbox

    hub, worker = console_in_process
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = hub.connect_partner([role("CPO", "IN", "ECP")])
    secret = operator(settings, "admin2", "admin")
    try:
        emsp.stop()  # the partner is down: attempts fail, and after 1 s the give-up sweep parks the row
        correlation = str(uuid.uuid4())
        assert push(hub, cpo, "locations/receiver/IN/ECP/L9", ex.location(id="L9"), correlation).status_code == 201

        def parked():
            worker.sweep()
            rows = outbox.list_deliveries(hub.ctx.app.pool, failed_only=True, party="IN/EMP")
            return [r for r in rows if r["module"] == "locations"]

        assert wait_until(parked, timeout=30, interval=0.5)
        login(page, hub.url, "admin2", secret)
        page.goto(f"{hub.url}/console/parties/IN/EMP/EMSP")
        assert "gave up after 1 s" in page.inner_text("#deliveries")
        emsp.start()
        page.click("#retry")
        assert "requeued 1 parked deliveries" in page.inner_text("#notice")
        got = emsp.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/locations/receiver/IN/ECP/L9"),
                            timeout=30)
        assert got and got[-1].body["id"] == "L9"

        def delivered():
            page.goto(f"{hub.url}/console/parties/IN/EMP/EMSP")
            return page.locator("#deliveries .delivery-DELIVERED").count() >= 1

        assert wait_until(delivered, timeout=30, interval=1), page.inner_text("#deliveries")
        shot(page, "party-retried")
        # The trace tells the same story: parked, then delivered after the operator's retry.
        page.goto(f"{hub.url}/console/trace?q={correlation}")
        timeline = page.inner_text("#timeline")
        assert "parked" in timeline and "gave up after 1 s" in timeline
        # By object: the Location's whole history.
        page.goto(f"{hub.url}/console/trace?q=locations+IN/ECP+L9")
        history = page.inner_text("#timeline")
        assert "L9" in history and "parked" in history

        # Sync now: the hub pulls the CPO's Sender interface and stores what it holds.
        cpo.held = {"locations": [ex.location(id="S1")]}
        page.goto(f"{hub.url}/console/parties/IN/ECP/CPO")
        page.click("#sync")
        assert "locations completed (1 stored)" in page.inner_text("#notice")
        assert "completed" in page.locator("#pulls tr", has_text="locations").inner_text()
        assert cpo.requests_to("/ocpi/2.2.1/locations/sender", "GET")
        done = {(r["data"]["command"], r["data"]["operator"]): r for r in actions_logged(settings)}
        assert ("console deliveries retry", "admin2") in done
        synced = done[("console parties sync", "admin2")]
        assert '"stored": 1' in synced["data"]["outcome"] and synced["data"]["correlation_id"]
    finally:
        emsp.stop()
        cpo.stop()
