"""``hub serve``: one command, embedded PostgreSQL, clean stop on SIGTERM."""

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
        added = subprocess.run([sys.executable, "-m", "hub", "parties", "add", "--role", "CPO",
                                "--country-code", "IN", "--party-id", "SRV", "--name", "Serve test",
                                "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert added.returncode == 0, added.stderr
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
    assert b"hub stopped" in output
