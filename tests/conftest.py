"""Shared fixtures: a real PostgreSQL, a fresh hub schema per test, real HTTP.

- ``HUB_TEST_DATABASE_URL`` set: tests use that PostgreSQL; otherwise one
  embedded PostgreSQL is started for the session.
- Every test gets its own schema (``HUB_DATABASE_SCHEMA``), migrated with the
  real ``hub migrate`` code and dropped afterwards.
- ``hub`` is the Falcon app served over real HTTP on 127.0.0.1 in this process;
  ``worker`` runs the real followers and jobs in threads; ``gunicorn_hub`` runs
  ``hub web`` and ``hub worker`` as processes, as production does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import requests

from hub.infra.config import Settings
from tests.partner import Partner, _Quiet, _ThreadingServer, free_port, role

ROOT = Path(__file__).resolve().parent.parent

#: Partner test servers live on 127.0.0.1: the outbound guard must allow loopback for them. Set
#: here, so every hub process a test starts (they inherit the environment) allows it too.
SANDBOX_NETWORKS = "127.0.0.0/8,::1/128"
os.environ["HUB_PARTNER_NETWORKS_ALLOWED"] = SANDBOX_NETWORKS


@pytest.fixture(scope="session")
def database_url():
    url = os.environ.get("HUB_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from hub.infra.database import start_embedded

    data = Path(tempfile.mkdtemp(prefix="hub-test-pg-"))
    try:
        server = start_embedded(data)
        try:
            yield server.get_uri()
        finally:
            server.cleanup()  # stops the server; its data stays (cleanup mode "stop")
    finally:
        shutil.rmtree(data, ignore_errors=True)  # about 128 MB of PostgreSQL data per run


@pytest.fixture
def schema(database_url):
    name = "t_" + uuid.uuid4().hex[:12]
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def settings(database_url, schema, tmp_path) -> Settings:
    from hub.entrypoints.cli import Runtime

    port = free_port()
    env = {
        "HUB_DATABASE_URL": database_url,
        "HUB_DATABASE_SCHEMA": schema,
        "HUB_DATA_DIR": str(tmp_path / "var"),
        "HUB_BASE_URL": f"http://127.0.0.1:{port}",
        "HUB_SECRET_KEY": "test-secret-" + schema,
        "HUB_STILL_ALIVE_AFTER": "300",
        "HUB_FORWARD_TIMEOUT": "3",
        "HUB_PARTNER_NETWORKS_ALLOWED": SANDBOX_NETWORKS,
    }
    settings = Settings.from_env(env)
    settings = replace(settings, extra={**env, "port": str(port)})
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        Runtime().migrate()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return settings


class HubUnderTest:
    """A running hub and helpers to talk to it like a partner would."""

    def __init__(self, settings: Settings, url: str, ctx=None) -> None:
        self.settings = settings
        self.url = url
        self.ctx = ctx
        self.session = requests.Session()

    @property
    def versions_url(self) -> str:
        return f"{self.url}/ocpi/versions"

    def call(self, method: str, path: str, token: str | None = None, *, raw_token: bool = False,
             json=None, headers: dict | None = None, params=None, data=None) -> requests.Response:
        import base64

        all_headers = dict(headers or {})
        if token is not None:
            value = token if raw_token else base64.b64encode(token.encode()).decode()
            all_headers["Authorization"] = f"Token {value}"
        url = path if path.startswith("http") else self.url + path
        return self.session.request(method, url, json=json, headers=all_headers, params=params,
                                    data=data, timeout=15)

    # Operator actions, through the real application --------------------------
    def onboard(self, role_name: str, country_code: str, party_id: str, name: str = "Partner",
                platform_id=None) -> dict:
        from hub.infra.eventlog import EventLog
        from hub.services.application import Hub, UnitOfWork
        from projections import all_projections

        app = Hub(self.settings, self.settings.database_url, pool_size=2)
        try:
            uow = UnitOfWork(app)
            party, platform, token_a = app.onboard(uow, role=role_name, country_code=country_code,
                                                   party_id=party_id, name=name, platform_id=platform_id)
            uow.commit()
            log = EventLog(app)
            for projection in all_projections():
                log.catch_up(projection)
            return {"token_a": token_a, "platform_id": platform.id}
        finally:
            app.close()

    def register(self, partner: Partner, token_a: str) -> str:
        """Run the partner side of the handshake; returns token C."""
        versions = self.call("GET", "/ocpi/versions", token_a).json()
        details_url = versions["data"][0]["url"]
        details = self.call("GET", details_url, token_a).json()
        credentials_url = next(e["url"] for e in details["data"]["endpoints"]
                               if e["identifier"] == "credentials")
        answer = self.call("POST", credentials_url, token_a, json=partner.credentials())
        body = answer.json()
        assert answer.status_code == 200 and body["status_code"] == 1000, body
        partner.hub_token = body["data"]["token"]
        return partner.hub_token

    def connect_partner(self, roles: list[dict], **partner_options) -> Partner:
        """Onboard the first role, start a partner server and register it."""
        first = roles[0]
        token_a = self.onboard(first["role"], first["country_code"], first["party_id"],
                               first["business_details"]["name"])["token_a"]
        partner = Partner(roles=roles, **partner_options).start()
        self.register(partner, token_a)
        return partner


def serve_in_thread(app, port: int):
    from wsgiref.simple_server import make_server

    server = make_server("127.0.0.1", port, app, server_class=_ThreadingServer, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def hub(settings):
    """The hub's Falcon app over real HTTP, in this process."""
    from handlers.app import create_app
    from handlers.context import WebContext

    ctx = WebContext.open(settings, settings.database_url)
    port = int(settings.extra["port"])
    server = serve_in_thread(create_app(ctx), port)
    yield HubUnderTest(settings, f"http://127.0.0.1:{port}", ctx)
    server.shutdown()
    server.server_close()
    ctx.close()


@pytest.fixture
def worker(settings):
    """The real worker (followers, dispatcher, jobs) in threads of this process."""
    from scheduler.worker import Worker

    w = Worker(settings, settings.database_url)
    w.start()
    yield w
    w.stop()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Processes:
    """``hub`` commands as child processes; their stderr goes to files (a pipe that
    nobody reads fills up and blocks the child once it has logged enough)."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []
        self.logs = Path(tempfile.mkdtemp(prefix="hub-test-procs-"))

    def start(self, args: list[str], env: dict) -> subprocess.Popen:
        with open(self.logs / f"{len(self.children)}-{args[0]}.log", "wb") as stderr:
            child = subprocess.Popen([sys.executable, "-m", "hub", *args], env=env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=stderr)
        self.children.append(child)
        return child

    def log_tail(self, lines: int = 30) -> str:
        """The end of every child's stderr, for a failing test's message."""
        return "\n".join(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                         for path in sorted(self.logs.glob("*.log")))

    def stop_all(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


@pytest.fixture
def processes():
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()
        shutil.rmtree(procs.logs, ignore_errors=True)


@pytest.fixture
def gunicorn_hub(settings, processes):
    """``hub web`` (real gunicorn) and ``hub worker`` as separate processes."""
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    env["HUB_STILL_ALIVE_AFTER"] = "2"
    port = settings.extra["port"]
    processes.start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env)
    processes.start(["worker"], env)
    url = f"http://127.0.0.1:{port}"
    ready = wait_until(lambda: _answers(url + "/health"), timeout=30)
    assert ready, "hub web did not come up\n" + processes.log_tail()
    return HubUnderTest(settings, url)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


__all__ = ["HubUnderTest", "Partner", "role", "wait_until"]
