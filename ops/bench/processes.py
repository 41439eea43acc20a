"""The hub under test as real processes, and the PostgreSQL the benchmarks use.

The hub runs exactly as in production: ``hub migrate``, then ``hub web``
(gunicorn) and ``hub worker`` as child processes of this one, against a fresh
PostgreSQL schema (``HUB_DATABASE_SCHEMA``) that is dropped afterwards.
Partners are the test servers of ``tests/partner.py`` (real HTTP on
127.0.0.1), registered with the real credentials handshake.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from hub.infra.config import Settings
from ops.bench.common import ROOT, Http, log
from ops.bench.meters import CpuMeter, children_of
from tests.partner import Partner, free_port


def database_url_from_env() -> str | None:
    for key in ("HUB_BENCH_DATABASE_URL", "HUB_DATABASE_URL", "HUB_TEST_DATABASE_URL"):
        if os.environ.get(key):
            return os.environ[key]
    return None


class Database:
    """The PostgreSQL the benchmarks use: a URL, or an embedded server for the run."""

    def __init__(self, url: str | None) -> None:
        self._server = None
        self._dir = None
        if url is None:
            from hub.infra.database import start_embedded

            self._dir = Path(tempfile.mkdtemp(prefix="hub-bench-pg-"))
            log("no database URL set: starting an embedded PostgreSQL")
            self._server = start_embedded(self._dir)
            url = self._server.get_uri()
        self.url = url

    def version(self) -> str:
        with psycopg.connect(self.url) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def close(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            shutil.rmtree(self._dir, ignore_errors=True)


class HubProcesses:
    """A fresh schema and the hub's processes on it, plus the partners connected to it."""

    def __init__(self, database_url: str, label: str) -> None:
        self.database_url = database_url
        self.schema = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"hub-bench-{label}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "HUB_DATABASE_URL": database_url,
            "HUB_DATABASE_SCHEMA": self.schema,
            "HUB_DATA_DIR": str(self.tmp / "var"),
            "HUB_BASE_URL": self.url,
            "HUB_SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "HUB_PARTNER_NETWORKS_ALLOWED": "127.0.0.0/8,::1/128",  # the bench's partners are on 127.0.0.1
        }
        self.settings = Settings.from_env(self.env)
        self.children: dict[str, subprocess.Popen] = {}
        self.partners: list[Partner] = []
        self._app = None
        self.keep_schema = False  # close() leaves the schema (and its data) in place

    # Processes ---------------------------------------------------------------------
    def _env(self, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(self.env)
        env.update(extra or {})
        return env

    def run_hub(self, *args: str, extra_env: dict | None = None, timeout: float | None = None
                ) -> subprocess.CompletedProcess:
        """Run one ``hub`` command to completion; raises with its stderr if it fails."""
        done = subprocess.run([sys.executable, "-m", "hub", *args], env=self._env(extra_env), cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"hub {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def run_hub_measured(self, *args: str) -> tuple[str, float]:
        """Run one ``hub`` command to completion; returns its stdout and its peak RSS in MiB."""
        out = self.tmp / "command.out"
        with open(out, "wb") as stdout, open(self.tmp / "command.err", "wb") as stderr:
            child = subprocess.Popen([sys.executable, "-m", "hub", *args], env=self._env(), cwd=ROOT,
                                     stdout=stdout, stderr=stderr)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err = (self.tmp / "command.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"hub {' '.join(args)} failed ({child.returncode}):\n{err}")
        return out.read_text(), usage.ru_maxrss / 1024.0

    def migrate(self) -> None:
        self.run_hub("migrate")

    def start(self, name: str, *args: str, extra_env: dict | None = None) -> subprocess.Popen:
        logfile = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the child)
        child = subprocess.Popen([sys.executable, "-m", "hub", *args], env=self._env(extra_env), cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=logfile, start_new_session=True)
        logfile.close()
        self.children[name] = child
        return child

    def start_web(self, workers: int = 2, threads: int = 16, extra_env: dict | None = None) -> None:
        """``hub web`` as deployed by default: gthread workers (``hub/gunicorn_config.py``)."""
        self.start("web", "web", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                   "--threads", str(threads), extra_env=extra_env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.children["web"].poll() is not None:
                raise RuntimeError("hub web exited:\n" + self.log_tail("web"))
            try:
                if Http(self.url, timeout=2).request("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("hub web did not answer /health in 60 s:\n" + self.log_tail("web"))
        # Every worker builds its application lazily on its first request: warm them all up.
        for _ in range(4 * workers):
            Http(self.url).request("GET", "/health")

    def start_worker(self, extra_env: dict | None = None) -> None:
        self.start("worker", "worker", extra_env=extra_env)

    def web_pids(self) -> list[int]:
        child = self.children.get("web")
        return [child.pid, *children_of(child.pid)] if child and child.poll() is None else []

    def web_worker_pids(self) -> list[int]:
        child = self.children.get("web")
        return children_of(child.pid) if child and child.poll() is None else []

    def worker_pids(self) -> list[int]:
        child = self.children.get("worker")
        return [child.pid] if child and child.poll() is None else []

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter({"web": self.web_pids, "worker": self.worker_pids}, self.database_url)

    def log_tail(self, name: str, size: int = 3000) -> str:
        try:
            return (self.tmp / f"{name}.log").read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self, name: str, timeout: float = 20) -> None:
        child = self.children.pop(name, None)
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in [*children_of(child.pid), child.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            child.wait(timeout=10)

    # In-process access to the database ----------------------------------------------
    @property
    def app(self):
        """The hub's own application, in this process (operator actions, loading data)."""
        if self._app is None:
            from hub.services.application import Hub

            self._app = Hub(self.settings, self.database_url, pool_size=4)
        return self._app

    def connect_db(self) -> psycopg.Connection:
        from hub.infra.database import connect

        return connect(self.database_url, self.schema, autocommit=True)

    def catch_up_views(self) -> None:
        from hub.infra.eventlog import EventLog
        from projections import all_projections

        event_log = EventLog(self.app)
        for projection in all_projections():
            event_log.catch_up(projection)

    def follower_lag(self) -> dict[str, int]:
        with self.connect_db() as conn:
            (head,) = conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()
            rows = conn.execute("SELECT name, position FROM hub_tracking").fetchall()
        return {name: head - position for name, position in rows}

    def wait_followers(self, names: Iterable[str], timeout: float = 600) -> bool:
        deadline = time.monotonic() + timeout
        names = list(names)
        while time.monotonic() < deadline:
            lag = self.follower_lag()
            if all(lag.get(n, 1) <= 0 for n in names):
                return True
            time.sleep(0.2)
        return False

    def pending_deliveries(self) -> int:
        with self.connect_db() as conn:
            return conn.execute("SELECT count(*) FROM hub_deliveries WHERE state = 'PENDING'").fetchone()[0]

    def wait_quiet(self, timeout: float = 300) -> bool:
        """Wait until every follower reached the head of the log and no delivery is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(v <= 0 for v in self.follower_lag().values()) and not self.pending_deliveries():
                return True
            time.sleep(0.2)
        return False

    # Partners --------------------------------------------------------------------------
    def onboard(self, parties: list[dict]) -> list[str]:
        """Onboard parties (one new platform each) the operator's way; returns their tokens A."""
        from hub.services.application import UnitOfWork

        tokens = []
        for p in parties:
            uow = UnitOfWork(self.app)
            _, _, token_a = self.app.onboard(uow, role=p["role"], country_code=p["country_code"],
                                             party_id=p["party_id"], name=p["business_details"]["name"])
            uow.commit()
            tokens.append(token_a)
        self.catch_up_views()
        return tokens

    def register(self, partner: Partner, token_a: str) -> str:
        """The partner's side of the credentials handshake; returns token C."""
        client = Http(self.url, token_a)
        status, _, body = client.request("GET", "/ocpi/versions")
        details_url = json.loads(body)["data"][0]["url"]
        status, _, body = client.request("GET", urlsplit(details_url).path)
        endpoints = json.loads(body)["data"]["endpoints"]
        credentials = urlsplit(next(e["url"] for e in endpoints if e["identifier"] == "credentials")).path
        status, _, body = client.request("POST", credentials, partner.credentials())
        answer = json.loads(body)
        if status != 200 or answer.get("status_code") != 1000:
            raise RuntimeError(f"registration of {partner.roles} failed: {status} {answer}")
        partner.hub_token = answer["data"]["token"]
        client.close()
        return partner.hub_token

    def connect_partners(self, roles: list[dict], factory: Callable[[dict], Partner] | None = None
                         ) -> list[Partner]:
        """One partner platform per role: onboarded, started and registered."""
        tokens = self.onboard(roles)
        partners = []
        for r, token_a in zip(roles, tokens, strict=True):
            partner = (factory(r) if factory else Partner(roles=[r])).start()
            self.partners.append(partner)
            self.register(partner, token_a)
            partners.append(partner)
        return partners

    # Clean-up ------------------------------------------------------------------------------
    def close(self) -> None:
        for name in list(self.children):
            try:
                self.stop(name)
            except Exception as exc:  # keep cleaning up
                log(f"could not stop {name}: {exc}")
        for partner in self.partners:
            partner.stop()
        if self._app is not None:
            self._app.close()
            self._app = None
        try:
            if not self.keep_schema:
                with psycopg.connect(self.database_url, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        except psycopg.Error as exc:
            log(f"could not drop schema {self.schema}: {exc}")
        shutil.rmtree(self.tmp, ignore_errors=True)
