#!/usr/bin/env bash
# Install the hub with its test extra into .venv (first run) and run the whole
# test suite. Uses HUB_TEST_DATABASE_URL when set, else an embedded PostgreSQL.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
