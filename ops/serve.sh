#!/usr/bin/env bash
# Install the hub into .venv (first run) and start it: `hub serve` with an
# embedded PostgreSQL under ./var unless HUB_DATABASE_URL is set.
# Extra arguments go to `hub serve` (e.g. --bind 0.0.0.0:8000).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/hub serve "$@"
