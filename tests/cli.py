"""The ``hub`` command as an operator runs it: a child process with the test's settings."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def run_hub(settings, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """``hub ARGS`` with the test's ``HUB_*`` environment; with ``ok``, it must succeed."""
    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    done = subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done
