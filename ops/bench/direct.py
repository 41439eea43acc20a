"""The fan-out baseline's client, run as its own process (as ``hub worker`` is).

Reads ``{"pushes": [[[method, url, headers, body], ...], ...]}`` as JSON on
stdin, sends every request of every push in order with one pooled
``requests.Session``, and prints ``{"elapsed": s, "failed": n, "push_ms": [...]}``
(``push_ms``: the time each push took to reach all its recipients).
"""

from __future__ import annotations

import json
import sys
import time

import requests


def main() -> int:
    job = json.load(sys.stdin)
    session = requests.Session()
    session.trust_env = False  # as the hub's own client when no proxy is configured
    failed = 0
    push_ms = []
    started = time.monotonic()
    for push in job["pushes"]:
        t0 = time.monotonic()
        for method, url, headers, body in push:
            response = session.request(method, url, data=body.encode() if body is not None else None,
                                       headers=headers, timeout=(3, 10))
            if response.status_code != 200:
                failed += 1
        push_ms.append((time.monotonic() - t0) * 1000)
    elapsed = time.monotonic() - started
    session.close()
    json.dump({"elapsed": elapsed, "failed": failed, "push_ms": push_ms}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
