#!/usr/bin/env bash
# Run the walkthrough of docs/getting-started.md as written: every ```sh block right after a
# `<!-- walkthrough -->` line, in order, in one shell (variables carry from block to block),
# stopping at the first command that fails. What it started in the background (the hub, the
# sample partner) is stopped when it ends, whatever the outcome.
#   bash ops/walkthrough.sh [DOC]      (needs ports 8000 and 9000 free; HUB_DATA_DIR is honoured)
#   bash ops/walkthrough.sh --print    (only print the script it would run)
set -euo pipefail
cd "$(dirname "$0")/.."
print=no
if [ "${1:-}" = "--print" ]; then print=yes; shift; fi
doc=${1:-docs/getting-started.md}

steps=$(awk '
    /^<!-- walkthrough -->[[:space:]]*$/ { armed = 1; next }
    armed && /^```sh[[:space:]]*$/ { inside = 1; armed = 0; n++; printf "echo \"### walkthrough step %d (line %d of %s)\" >&2\n", n, NR, FILENAME; next }
    inside && /^```[[:space:]]*$/ { inside = 0; next }
    inside { print; next }
    { armed = 0 }
' "$doc")
if [ -z "$steps" ]; then
    echo "walkthrough: no <!-- walkthrough --> sh blocks in $doc" >&2
    exit 1
fi
script=$(printf '%s\n' \
    'set -euo pipefail' \
    'trap '\''status=$?; jobs=$(jobs -p); [ -z "$jobs" ] || kill $jobs 2>/dev/null || true; wait || true; [ $status = 0 ] || echo "walkthrough: failed (exit $status) in the step above" >&2; exit $status'\'' EXIT' \
    'set -x' \
    "$steps")
if [ "$print" = yes ]; then
    printf '%s\n' "$script"
    exit 0
fi
exec bash -c "$script"
