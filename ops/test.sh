#!/usr/bin/env bash
# Install the hub with its test extra into .venv (first run, or after
# pyproject.toml changed) and run the test suite. Uses HUB_TEST_DATABASE_URL
# when set, else an embedded PostgreSQL.
#
#   bash ops/test.sh [--fast] [pytest arguments]
#
# Without --fast: every tier, tests/unit, tests/integration and tests/e2e.
# --fast: only tests/unit, the fast tier (no PostgreSQL, no HTTP, no child
# processes; a few seconds). Other arguments go to pytest, e.g. a tier's
# directory (tests/integration) or -k EXPRESSION.
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/venv.sh
ensure_installed '.[test]' test
args=()
for arg in "$@"; do
    if [ "$arg" = "--fast" ]; then
        args=(tests/unit "${args[@]}")
    else
        args+=("$arg")
    fi
done
exec .venv/bin/python -m pytest "${args[@]}"
