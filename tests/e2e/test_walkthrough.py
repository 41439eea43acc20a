"""docs/getting-started.md's walkthrough runs as written (``ops/walkthrough.sh``).

It needs the fixed ports 8000 and 9000 and runs against the test run's PostgreSQL. CI runs the suite twice at the same time on one machine,
so the test takes a file lock (the two runs take turns) and uses a HUB_DATA_DIR of its own; a
port taken by a program other than the other run fails the test saying which port."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

PORTS = (8000, 9000)
LOCK = Path(tempfile.gettempdir()) / "chargeindia-hub-walkthrough.lock"


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.fixture
def fixed_ports():
    """The walkthrough's ports, held for this run only (another run waits for the lock)."""
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        taken = [port for port in PORTS if _taken(port)]
        if taken:
            pytest.fail(f"port(s) {', '.join(map(str, taken))} on 127.0.0.1 are in use by another program"
                        " (not by another walkthrough run: that one holds the lock " + str(LOCK) + "); the"
                        " walkthrough in docs/getting-started.md needs them: stop that program and run again")
        yield


def test_the_getting_started_walkthrough_runs_as_written(tmp_path, settings, fixed_ports):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}  # the reader's shell has none
    env["HUB_DATA_DIR"] = str(tmp_path / "var")
    # The test run's PostgreSQL (a fresh schema) instead of a new embedded server per run: `hub serve`
    # takes HUB_DATABASE_URL when set, and the walkthrough's commands inherit it as the reader's would.
    env.update({k: settings.extra[k] for k in ("HUB_DATABASE_URL", "HUB_DATABASE_SCHEMA", "HUB_SECRET_KEY")})
    done = subprocess.run(["bash", "ops/walkthrough.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    (tmp_path / "walkthrough.out").write_text(done.stdout + "\n--- stderr\n" + done.stderr)  # kept on failure
    logs = "".join(f"\n--- {name} (end)\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                   for name in ("hub.log", "partner.log") if (path := tmp_path / "var" / name).exists())
    tail = done.stdout[-2000:] + "\n--- stderr (end)\n" + done.stderr[-3000:] + logs
    assert done.returncode == 0, tail
    steps = [line for line in done.stderr.splitlines() if line.startswith("### walkthrough step")]
    assert len(steps) >= 10, tail
    # What the reader sees at the end: the partner CONNECTED, in the hub's list and in HubClientInfo.
    assert any(line.startswith("IN/ABC/CPO") and "CONNECTED" in line for line in done.stdout.splitlines()), tail
    assert '"status":"CONNECTED"' in done.stdout
    # Everything it started has stopped.
    assert not [port for port in PORTS if _taken(port)], tail


def test_the_walkthrough_script_finds_the_marked_blocks_in_order():
    script = subprocess.run(["bash", "ops/walkthrough.sh", "--print"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True).stdout
    order = ["bash ops/serve.sh", "hub sandbox partner", "hub parties add IN/ABC/CPO",
             '-X POST "$HUB/ocpi/2.2.1/credentials"', "TOKEN_C=", 'kill "$PARTNER_PID" "$HUB_PID"']
    positions = [script.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "<token" not in script  # no placeholder left for the reader to fill in
