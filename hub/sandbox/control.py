"""The running sandbox's control API on 127.0.0.1, and the client ``hub sandbox
status`` and ``hub sandbox fault`` use.

``GET /status``: the partners (party, role, base URL, token status, fault).
``PUT /faults/{CC}/{PID}`` with ``{"mode": "5xx", "seconds": null}`` (or ``"off"``).
The running sandbox writes its control URL to ``{data dir}/sandbox-control``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from wsgiref.simple_server import make_server

import falcon
import orjson
import requests

from hub.sandbox.faults import MODES, Fault, FaultError
from hub.sandbox.partner import _Quiet, _Server

CONTROL_FILE = "sandbox-control"


class ControlError(RuntimeError):
    """The control API cannot be reached or refused; the message names the fix."""


class ControlServer:
    def __init__(self, sandbox, info: dict, port: int = 0) -> None:
        self.sandbox, self.info = sandbox, info
        app = falcon.App()
        app.add_route("/status", self, suffix="status")
        app.add_route("/faults/{cc}/{pid}", self, suffix="fault")
        app.add_route("/faults/{cc}/{pid}/{role}", self, suffix="fault")
        self._server = make_server("127.0.0.1", port, app, server_class=_Server, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def status(self) -> dict:
        return {**self.info, "partners": [p.status() for p in self.sandbox.partners],
                "fault_modes": MODES}

    def on_get_status(self, req, resp) -> None:
        resp.data = orjson.dumps(self.status())

    def on_put_fault(self, req, resp, cc: str, pid: str, role: str | None = None) -> None:
        body = orjson.loads(req.bounded_stream.read() or b"{}")
        try:
            partner = self.sandbox.find("/".join(filter(None, (cc, pid, role))))
            partner.set_fault(Fault.parse(str(body.get("mode", "")), body.get("seconds")))
        except (KeyError, FaultError) as exc:
            resp.status = 400
            resp.data = orjson.dumps({"error": str(exc).strip("'\"")})
            return
        resp.data = orjson.dumps(partner.status())

    def start(self, data_dir: Path | None = None) -> ControlServer:
        threading.Thread(target=self._server.serve_forever, name="sandbox-control", daemon=True).start()
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            (data_dir / CONTROL_FILE).write_text(self.url + "\n")
        return self

    def stop(self, data_dir: Path | None = None) -> None:
        self._server.shutdown()
        self._server.server_close()
        if data_dir is not None:
            (data_dir / CONTROL_FILE).unlink(missing_ok=True)


def control_url(data_dir: Path, given: str | None = None) -> str:
    if given:
        return given.rstrip("/")
    path = data_dir / CONTROL_FILE
    if not path.exists():
        raise ControlError(f"no running sandbox found ({path} does not exist): start one with `hub sandbox`,"
                           " or give its control URL with --control")
    return path.read_text().strip()


def _call(method: str, url: str, **kwargs) -> dict:
    try:
        answer = requests.request(method, url, timeout=10, **kwargs)
    except requests.RequestException:
        raise ControlError(f"the sandbox's control API at {url} does not answer: is `hub sandbox` still"
                           " running? (start it again, or give --control)") from None
    body = answer.json()
    if answer.status_code != 200:
        raise ControlError(body.get("error", f"HTTP {answer.status_code}"))
    return body


def get_status(url: str) -> dict:
    return _call("GET", f"{url}/status")


def set_fault(url: str, party: str, mode: str, seconds: float | None) -> dict:
    return _call("PUT", f"{url}/faults/{party.strip('/')}", json={"mode": mode, "seconds": seconds})
