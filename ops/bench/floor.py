"""The stack's floor: the least a hub on this stack could do per request, on this machine.

A WSGI app with nothing of the hub in it, served by gunicorn exactly as ``hub web``
is (same worker class, workers and threads), measured in the same run and with the
same clients as the hub:

- ``PATCH /ingest/...``: parse the JSON body with orjson, ``INSERT`` it into one
  table through a psycopg connection pool and ``COMMIT``, answer a constant envelope.
  This is the ingest baseline's ``INSERT+COMMIT`` behind an HTTP server in Python.
- ``POST /relay/...``: send the same request on to the eMSP with a pooled
  ``requests.Session`` and answer with its body. This is the least any relay on
  Falcon, gunicorn and requests adds to a real-time call.

So a benchmark can say which part of a gap is the hub's own work and which part the
stack and the machine put there before the hub does anything.
Run as ``gunicorn ops.bench.floor:app`` with ``FLOOR_DATABASE_URL``,
``FLOOR_SCHEMA`` and ``FLOOR_RELAY_TO`` (the eMSP's base URL) in the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import falcon
import orjson

from ops.bench.common import ROOT, Http
from tests.partner import free_port

ANSWER = orjson.dumps({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"})


class Ingest:
    def __init__(self) -> None:
        self._pool = None
        self._lock = threading.Lock()

    def pool(self):
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                schema = os.environ["FLOOR_SCHEMA"]
                self._pool = ConnectionPool(os.environ["FLOOR_DATABASE_URL"], min_size=2, max_size=8,
                                            kwargs={"options": f"-c search_path={schema}"}, open=True)
            return self._pool

    def on_patch(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        body = orjson.loads(req.bounded_stream.read())
        with self.pool().connection() as conn:
            conn.execute("INSERT INTO floor_ingest (path, payload) VALUES (%s, %s::jsonb)",
                         (path, orjson.dumps(body).decode()))
        resp.data = ANSWER
        resp.content_type = "application/json"


class Relay:
    def __init__(self) -> None:
        self._local = threading.local()

    def session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.trust_env = False
            self._local.session = session
        return session

    def on_post(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        upstream = self.session().post(
            f"{os.environ['FLOOR_RELAY_TO']}/{path}", params=req.params, data=req.bounded_stream.read(),
            headers={"Authorization": req.get_header("Authorization", default=""),
                     "Content-Type": "application/json"}, timeout=5)
        resp.status = upstream.status_code
        resp.data = upstream.content
        resp.content_type = "application/json"


app = falcon.App()
app.add_route("/ingest/{path:path}", Ingest())
app.add_route("/relay/{path:path}", Relay())


class FloorServer:
    """``gunicorn ops.bench.floor:app`` as a child process, configured as ``hub web``."""

    def __init__(self, workers: int, threads: int, env: dict) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "FLOOR_"))}
        child_env.update(env)
        self.child = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "ops.bench.floor:app", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--threads", str(threads),
             "--worker-class", "gthread" if threads > 1 else "sync", "--log-level", "warning"],
            env=child_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                Http(self.url, timeout=2).request("GET", "/ready")
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.close()
            raise RuntimeError("the floor app did not answer in 30 s")

    def pids(self) -> list[int]:
        from ops.bench.meters import children_of

        return [self.child.pid, *children_of(self.child.pid)] if self.child.poll() is None else []

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
