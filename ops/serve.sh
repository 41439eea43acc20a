#!/usr/bin/env bash
# Install the hub into .venv (first run, or after pyproject.toml changed) and
# start it: `hub serve` with an embedded PostgreSQL under ./var unless
# HUB_DATABASE_URL is set. Extra arguments go to `hub serve` (e.g. --bind 0.0.0.0:8000).
# The hub calls only public addresses: a sandbox whose partners run on this machine
# sets HUB_PARTNER_NETWORKS_ALLOWED=127.0.0.0/8,::1/128 first (docs/getting-started.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. ops/venv.sh
ensure_installed . serve test  # what test.sh installs includes everything serve needs
exec .venv/bin/hub serve "$@"
