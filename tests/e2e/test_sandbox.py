"""``hub sandbox`` as an operator runs it: a process that starts its own hub, whose partners
register (CONNECTED), exchange data through it, switch faults at run time, and stop cleanly."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys

import requests

from tests.conftest import ROOT, wait_until
from tests.partner import free_port


def hub_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_hub_sandbox_comes_up_registers_its_partners_and_switches_faults(tmp_path, settings):
    port = free_port()
    data_dir = tmp_path / "sandbox"
    # No HUB_PARTNER_NETWORKS_ALLOWED from the test run: the sandbox allows loopback partners itself,
    # for its hub only. Its hub uses the test run's PostgreSQL (HUB_DATABASE_URL, a fresh schema).
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATA_DIR": str(data_dir), "HUB_FORWARD_TIMEOUT": "2"})
    env.update({k: settings.extra[k] for k in ("HUB_DATABASE_URL", "HUB_DATABASE_SCHEMA", "HUB_SECRET_KEY")})
    out, err = open(tmp_path / "out", "w"), open(tmp_path / "err", "w")
    sandbox = subprocess.Popen([sys.executable, "-m", "hub", "sandbox", "--bind", f"127.0.0.1:{port}",
                                "--interval", "1"], cwd=ROOT, env=env, stdout=out, stderr=err)
    hub = f"http://127.0.0.1:{port}"

    def said() -> str:
        return (tmp_path / "out").read_text() + (tmp_path / "err").read_text()

    try:
        assert wait_until(lambda: (data_dir / "sandbox-control").exists() or sandbox.poll() is not None,
                          timeout=240) and sandbox.poll() is None, said()
        printed = (tmp_path / "out").read_text()
        assert f"{hub}/ocpi/versions" in printed
        assert f'HUB_DATA_DIR={data_dir} HUB_BASE_URL={hub} hub parties add IN/ABC/CPO' in printed
        assert "HUB_PARTNER_NETWORKS_ALLOWED=127.0.0.0/8,::1/128 for that hub only" in said()
        operator = {**env, "HUB_BASE_URL": hub}
        listed = json.loads(hub_cli(operator, "parties", "list", "--json").stdout)
        assert {(p["party"], p["state"]) for p in listed} == {
            ("IN/VYC/CPO", "CONNECTED"), ("IN/GRP/CPO", "CONNECTED"), ("IN/CHL/EMSP", "CONNECTED"),
            ("IN/MRG/EMSP", "CONNECTED")}

        def status() -> dict:
            return {p["party"]: p for p in json.loads(hub_cli(env, "sandbox", "status", "--json").stdout)["partners"]}

        # A CPO's Locations reach the eMSPs through the hub.
        assert wait_until(lambda: status()["IN/CHL/EMSP"]["received"].get("locations", 0) >= 6, timeout=60)
        # A CPO asks the hub about a token; the eMSP that owns it answers.
        token_c = json.loads((data_dir / "sandbox-partners.json").read_text())["partners"]["IN/VYC/CPO"]["token_c"]
        headers = {"Authorization": "Token " + base64.b64encode(token_c.encode()).decode(),
                   "OCPI-from-country-code": "IN", "OCPI-from-party-id": "VYC"}

        def authorize() -> dict:
            return requests.post(f"{hub}/ocpi/2.2.1/tokens/sender/CHLRF00001/authorize?type=RFID",
                                 headers=headers, timeout=15).json()

        assert wait_until(lambda: (authorize().get("data") or {}).get("allowed") == "ALLOWED", timeout=30)
        # A fault switched at run time: the eMSP stops answering in time, the CPO gets 4002.
        shown = hub_cli(env, "sandbox", "fault", "IN/CHL", "timeout", "--seconds", "6").stdout
        assert "timeout (6 s)" in shown
        late = authorize()
        assert late["status_code"] == 4002, late
        assert "timeout (6 s)" in hub_cli(env, "sandbox", "status").stdout
        hub_cli(env, "sandbox", "fault", "IN/CHL", "off")
        assert wait_until(lambda: (authorize().get("data") or {}).get("allowed") == "ALLOWED", timeout=30)
        wrong = subprocess.run([sys.executable, "-m", "hub", "sandbox", "fault", "IN/CHL", "flaky"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 1 and wrong.stderr.startswith("hub: unknown fault mode 'flaky'")
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(timeout=120)
    assert sandbox.returncode == 0, said()[-3000:]
    assert "sandbox stopped" in said()
    try:  # its hub went with it
        requests.get(f"{hub}/health", timeout=1)
        raise AssertionError("the sandbox's hub outlived hub sandbox")
    except requests.ConnectionError:
        pass
    assert not (data_dir / "sandbox-control").exists()
