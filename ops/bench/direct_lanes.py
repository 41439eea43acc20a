"""The delivery benchmarks' baseline client, run as its own process (as ``hub worker`` is).

Reads ``{"lanes": [[[method, url, headers, body], ...], ...]}`` as JSON on stdin:
one list of requests per recipient. Each lane is sent in order by a thread of
its own with its own pooled ``requests.Session``, all lanes at the same time
(the concurrency of the hub's lanes, one per recipient platform). Prints
``{"elapsed": s, "sent": n, "failed": n}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import requests


def main() -> int:
    job = json.load(sys.stdin)
    failed = [0] * len(job["lanes"])
    start = threading.Barrier(len(job["lanes"]) + 1)

    def send(index: int) -> None:
        session = requests.Session()
        session.trust_env = False  # as the hub's own client when no proxy is configured
        start.wait()
        for method, url, headers, body in job["lanes"][index]:
            response = session.request(method, url, data=body.encode() if body is not None else None,
                                       headers=headers, timeout=(3, 10))
            if response.status_code != 200:
                failed[index] += 1
        session.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(job["lanes"]))]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    json.dump({"elapsed": elapsed, "sent": sum(len(lane) for lane in job["lanes"]), "failed": sum(failed)},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
