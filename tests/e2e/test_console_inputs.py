"""Bad input to the console is answered with a page naming the problem, never a 500 (plain HTTP,
no browser: the console as a script or a careless operator would hit it)."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.cli import run_hub
from tests.conftest import serve_in_thread


@pytest.fixture
def console(settings):
    from handlers.app import create_app
    from handlers.context import WebContext
    from scheduler import outbox

    ctx = WebContext.open(settings, settings.database_url)
    port = int(settings.extra["port"])
    server = serve_in_thread(create_app(ctx, queue=outbox), port)
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    ctx.close()


def logged_in(url: str, settings, role: str = "admin") -> tuple[requests.Session, str]:
    secret = json.loads(run_hub(settings, "operators", "add", f"op{role}", "--role", role, "--json").stdout)["secret"]
    web = requests.Session()
    answer = web.post(f"{url}/console/login", data={"name": f"op{role}", "secret": secret, "next": "/console"})
    assert answer.status_code == 200 and f"op{role} ({role})" in answer.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', answer.text).group(1)
    return web, csrf


def test_bad_input_gets_a_page_naming_the_field(console, settings):
    run_hub(settings, "parties", "add", "IN/ABC/CPO", "--name", "ABC")
    web, csrf = logged_in(console, settings)
    pages = {
        "/console/trace?q=nothing-like-this": "no record carries correlation id or request id nothing-like-this",
        "/console/trace?q=parcels+IN/ABC+X1": "an object&#39;s module is one of",
        "/console/trace?q=locations+INABC+X1": "owner INABC",
        "/console/rules?sender=IN/ABC&receiver=IN/NOPE&module=locations": "IN/NOPE",
        "/console/rules?sender=IN/ABC&receiver=IN/EMP&module=parcels": "module &#39;parcels&#39;",
        "/console/parties/IN/NOPE/CPO": "no party IN/NOPE/CPO",
        "/console/parties/IN/ABC/BOSS": "BOSS",
    }
    for path, message in pages.items():
        answer = web.get(console + path)
        assert answer.status_code in (200, 404), (path, answer.status_code, answer.text[:300])
        if message:
            assert message in answer.text, (path, answer.text[:2000])
    posts = {
        "/console/rules": ({"cpo": "IN/ABC", "emsp": "nonsense", "module": "*", "effect": "allow"}, "emsp"),
        "/console/rules#effect": ({"cpo": "IN/ABC", "emsp": "IN/EMP", "module": "*", "effect": "maybe"},
                                  "effect: allow or deny"),
        "/console/rules/remove": ({"cpo": "IN/ABC", "emsp": "IN/EMP", "module": "*"}, "rule not removed"),
        "/console/parties/IN/ABC/CPO/suspend": ({"reason": " "}, "give a reason"),
        "/console/parties/IN/ABC/CPO/resume": ({}, "is not suspended"),
        "/console/parties/IN/NOPE/CPO/suspend": ({"reason": "x"}, "no party IN/NOPE/CPO"),
        "/console/parties/IN/ABC/BOSS/resume": ({}, "BOSS"),
    }
    for path, (form, message) in posts.items():
        answer = web.post(console + path.split("#")[0], data={**form, "csrf": csrf})
        assert answer.status_code in (200, 404) and message in answer.text, (path, answer.status_code,
                                                                            answer.text[:2000])
    huge = web.post(console + "/console/rules", data={"csrf": csrf, "reason": "x" * 100_000})
    assert huge.status_code == 413
    assert web.get(console + "/console/static/other.js").status_code == 404
    assert json.loads(run_hub(settings, "parties", "show", "IN/ABC/CPO", "--json").stdout)["state"] == "PLANNED"


def test_login_next_only_follows_console_paths(console, settings):
    secret = json.loads(run_hub(settings, "operators", "add", "asha", "--role", "viewer", "--json").stdout)["secret"]
    for target in ("https://elsewhere.example/", "//elsewhere.example/console", "/ocpi/versions"):
        answer = requests.post(f"{console}/console/login", allow_redirects=False,
                               data={"name": "asha", "secret": secret, "next": target})
        assert answer.status_code == 303 and answer.headers["Location"].endswith("/console"), target
    wrong = requests.post(f"{console}/console/login", data={"name": "asha", "secret": "nope"})
    assert wrong.status_code == 401 and "wrong operator name or secret" in wrong.text
    assert "hub_console" not in wrong.cookies
