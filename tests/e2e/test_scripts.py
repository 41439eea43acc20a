"""ops/serve.sh and ops/test.sh install only when they must.

A restart must work without the package index: the scripts install into
.venv on a fresh machine (no .venv), when pyproject.toml changed since the
last install, and not otherwise. The scripts run for real with bash, in a
copy of the project whose Python only writes down how it was called.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.conftest import ROOT

RECORDER = """#!/usr/bin/env bash
# Writes down how it was called; as `-m venv DIR` it makes DIR/bin/{python,hub} like itself.
echo "$(basename "$0") $*" >> "$CALLS"
if [ "${1:-}" = "-m" ] && [ "${2:-}" = "venv" ]; then
    mkdir -p "$3/bin"
    cp "$0" "$3/bin/python"
    cp "$0" "$3/bin/hub"
fi
"""


def project(tmp_path: Path) -> tuple[Path, dict]:
    copy = tmp_path / "project"
    (copy / "ops").mkdir(parents=True)
    for name in ("pyproject.toml", "ops/serve.sh", "ops/test.sh", "ops/venv.sh"):
        shutil.copy(ROOT / name, copy / name)
    python = tmp_path / "python3"
    python.write_text(RECORDER)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {**os.environ, "PYTHON": str(python), "CALLS": str(calls)}
    return copy, env


def run(copy: Path, env: dict, script: str, *args: str) -> list[str]:
    """Run ``ops/<script>``; returns the calls it made."""
    calls = Path(env["CALLS"])
    before = len(calls.read_text().splitlines())
    done = subprocess.run(["bash", str(copy / "ops" / script), *args], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return calls.read_text().splitlines()[before:]


def installs(calls: list[str]) -> list[str]:
    return [c for c in calls if " -m pip install " in c]


def test_scripts_install_on_a_fresh_machine_and_after_a_change_only(tmp_path):
    copy, env = project(tmp_path)

    fresh = run(copy, env, "test.sh", "-q")
    assert fresh[0].endswith("-m venv .venv")
    assert [c.split()[-1] for c in installs(fresh)] == [".[test]"]
    assert fresh[-1] == "python -m pytest -q"

    again = run(copy, env, "test.sh", "-q")
    assert installs(again) == [] and again == ["python -m pytest -q"]
    # What test.sh installed is all that serve needs.
    assert run(copy, env, "serve.sh", "--bind", "127.0.0.1:8001") == ["hub serve --bind 127.0.0.1:8001"]

    with (copy / "pyproject.toml").open("a") as handle:
        handle.write("\n# a changed dependency\n")
    changed = run(copy, env, "serve.sh")
    assert [c.split()[-1] for c in installs(changed)] == ["."]
    assert run(copy, env, "serve.sh") == ["hub serve"]
    assert [c.split()[-1] for c in installs(run(copy, env, "test.sh"))] == [".[test]"]
    assert installs(run(copy, env, "test.sh")) == []


def test_serve_script_alone_installs_on_a_fresh_machine(tmp_path):
    copy, env = project(tmp_path)
    first = run(copy, env, "serve.sh")
    assert first[0].endswith("-m venv .venv")
    assert [c.split()[-1] for c in installs(first)] == ["."] and first[-1] == "hub serve"
    assert run(copy, env, "serve.sh") == ["hub serve"]
    # The test extra is not there yet: test.sh installs it.
    assert [c.split()[-1] for c in installs(run(copy, env, "test.sh"))] == [".[test]"]
