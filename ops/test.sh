#!/usr/bin/env bash
# Install the hub with its test extra into .venv (first run, or after
# pyproject.toml changed) and run the whole test suite. Uses
# HUB_TEST_DATABASE_URL when set, else an embedded PostgreSQL.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/venv.sh
ensure_installed '.[test]' test
exec .venv/bin/python -m pytest "$@"
