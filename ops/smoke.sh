#!/usr/bin/env bash
# Start the hub exactly as the README says (bash ops/serve.sh, embedded
# PostgreSQL), onboard a party, check the versions endpoint, stop with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HUB_DATA_DIR="$work/var" HUB_BASE_URL="http://127.0.0.1:$port"
unset HUB_DATABASE_URL
bash ops/serve.sh --bind "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
    sleep 0.5
done
token=$(.venv/bin/hub parties add --role CPO --country-code IN --party-id SMK --name Smoke --json \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_a"])')
encoded=$(printf %s "$token" | base64 -w0)
curl -fsS -H "Authorization: Token $encoded" "http://127.0.0.1:$port/ocpi/versions" | grep -q '"2.2.1"'
kill -TERM "$pid"
if wait "$pid"; then
    echo "smoke: hub served /ocpi/versions and stopped cleanly"
else
    echo "smoke: hub serve exited with an error"; cat "$work/serve.log"; exit 1
fi
trap - EXIT
rm -rf "$work"
