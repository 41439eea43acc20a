"""``hub serve``: one command, embedded PostgreSQL, ready when it says so, clean stop on
SIGTERM/SIGINT, and a clear exit when it cannot serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import requests

from tests.conftest import ROOT, wait_until
from tests.partner import free_port


def test_serve_with_embedded_postgres(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATA_DIR": str(tmp_path / "var"), "HUB_BASE_URL": f"http://127.0.0.1:{port}"})
    serve = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--bind", f"127.0.0.1:{port}"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok
            except requests.RequestException:
                return False

        assert wait_until(up, timeout=90), "hub serve did not answer"
        added = subprocess.run([sys.executable, "-m", "hub", "parties", "add", "IN/SRV/CPO", "--name",
                                "Serve test", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=120)
        assert added.returncode == 0 and added.stderr == "", added.stderr
        info = json.loads(added.stdout)
        assert info["versions_url"] == f"http://127.0.0.1:{port}/ocpi/versions"
        import base64

        token = base64.b64encode(info["token_a"].encode()).decode()
        versions = requests.get(info["versions_url"], headers={"Authorization": f"Token {token}"}, timeout=5)
        assert versions.status_code == 200 and versions.json()["data"][0]["version"] == "2.2.1"
        # The secret key was generated once and kept under HUB_DATA_DIR.
        assert (tmp_path / "var" / "secret_key").exists()
    finally:
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0, output.decode(errors="replace")[-2000:]
    # One log format: every line is one of the hub's JSON objects (gunicorn's, the worker's and
    # serve's own); no initdb or pg_ctl chatter, no platformdirs warning.
    lines = [json.loads(line) for line in output.decode().splitlines()]
    assert all({"time", "level", "logger", "message", "pid"} <= set(line) for line in lines)
    assert not [line for line in lines if line["logger"] == "embedded_postgres"]
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in lines)
    ready = [line for line in lines if line["message"].startswith("hub serving")]
    assert len(ready) == 1 and ready[0]["versions_url"] == f"http://127.0.0.1:{port}/ocpi/versions"
    assert "hub parties add IN/ABC/CPO" in ready[0]["message"] and ready[0]["next"].startswith("hub parties add")
    assert lines[-1]["message"] == "hub stopped"


def _serve_env(settings, port: int) -> dict:
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    env["HUB_BASE_URL"] = f"http://127.0.0.1:{port}"
    return env


def test_serving_is_announced_once_ready_and_sigint_stops_cleanly(settings):
    import threading

    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--bind", f"127.0.0.1:{port}",
                              "--workers", "1"], cwd=ROOT, env=_serve_env(settings, port),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(serve.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: any("hub serving" in line for line in lines), timeout=90), lines
        # Announced means ready: /health answers at once, no waiting.
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
        reader.join(timeout=10)
    assert serve.returncode == 0, "".join(lines)[-2000:]
    assert any("hub stopped" in line for line in lines), "".join(lines)[-2000:]
    try:  # serve waited for its children
        requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
        raise AssertionError("the web server outlived hub serve")
    except requests.ConnectionError:
        pass


def test_serve_on_a_port_already_taken_exits_with_a_message(settings):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "hub", "serve", "--bind", f"127.0.0.1:{port}"],
                              cwd=ROOT, env=_serve_env(settings, port), capture_output=True, text=True,
                              timeout=120)
    assert done.returncode != 0
    assert f"127.0.0.1:{port}" in done.stderr and "already in use" in done.stderr, done.stderr
    assert "hub serving" not in done.stderr


def test_serve_gives_up_on_a_web_server_that_cannot_start(settings):
    """An address gunicorn cannot bind (not this machine's): a few quick failures, then a clear exit."""
    port = free_port()
    bind = f"192.0.2.1:{port}"  # TEST-NET-1: never a local address
    done = subprocess.run([sys.executable, "-m", "hub", "serve", "--bind", bind, "--workers", "1"],
                          cwd=ROOT, env=_serve_env(settings, port), capture_output=True, text=True,
                          timeout=240)
    assert done.returncode != 0, done.stderr[-2000:]
    assert f"web failed 3 times in a row as it started (can it listen on {bind}?)" in done.stderr
    assert "hub serving" not in done.stderr
