"""One HUB_SECRET_KEY per database: a process with another key refuses to start.

Partner tokens are encrypted with the key; a process with a different one
(e.g. each generating its own under its own HUB_DATA_DIR) would store tokens
the others cannot read. ``hub migrate`` keeps the key's fingerprint in the
database and every process compares its own key with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import psycopg
import requests

from tests.conftest import ROOT
from tests.partner import free_port


def run(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def assert_refused(done: subprocess.CompletedProcess) -> None:
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if "HUB_SECRET_KEY" in line]
    assert lines, done.stderr
    assert "not the key this database was set up with" in lines[0]


def env_of(settings, **changes: str | None) -> dict:
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def test_every_process_with_another_key_refuses_to_start(settings):
    good = env_of(settings)
    other = env_of(settings, HUB_SECRET_KEY="some-other-key")
    assert_refused(run(other, "migrate"))
    assert_refused(run(other, "parties", "list"))
    assert_refused(run(other, "worker", timeout=60))
    port = free_port()
    web = run(other, "web", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "1", timeout=60)
    assert web.returncode != 0 and "not the key this database was set up with" in web.stderr, web.stderr
    try:
        requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
        raise AssertionError("hub web serves with the wrong key")
    except requests.ConnectionError:
        pass
    # The right key still works, and what the database holds is no key.
    assert run(good, "migrate").returncode == 0
    assert run(good, "parties", "list").returncode == 0
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        rows = conn.execute("SELECT fingerprint FROM hub_key_fingerprint").fetchall()
    assert len(rows) == 1
    assert settings.secret_key not in rows[0][0] and "some-other-key" not in rows[0][0]


def test_generated_keys_under_two_data_dirs_do_not_share_one_database(database_url, schema, tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    base.update({"HUB_DATABASE_URL": database_url, "HUB_DATABASE_SCHEMA": schema})
    first = {**base, "HUB_DATA_DIR": str(tmp_path / "a")}
    second = {**base, "HUB_DATA_DIR": str(tmp_path / "b")}
    assert run(first, "migrate").returncode == 0
    assert (tmp_path / "a" / "secret_key").exists()
    assert_refused(run(second, "migrate"))
    assert_refused(run(second, "worker", timeout=60))
    # The same key (copied, or HUB_SECRET_KEY set for both) is accepted.
    shutil.copy(tmp_path / "a" / "secret_key", tmp_path / "b" / "secret_key")
    done = run(second, "parties", "list")
    assert done.returncode == 0, done.stderr
