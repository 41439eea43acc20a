"""A partner platform for tests: a real HTTP server on 127.0.0.1.

It serves OCPI versions, 2.2.1 details, credentials and the receiver
interfaces a CPO or eMSP offers, records every request it receives, and can be
told to fail, to be slow, or to stop and start again on the same port.
"""

from __future__ import annotations

import base64
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon
import orjson

MODULES = ("credentials", "hubclientinfo", "locations", "tariffs", "sessions", "cdrs", "tokens", "commands")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ocpi_timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def envelope(data=None, status_code: int = 1000, message: str | None = None) -> dict:
    body = {"status_code": status_code, "timestamp": ocpi_timestamp()}
    if data is not None:
        body["data"] = data
    if message:
        body["status_message"] = message
    return body


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: object
    raw: bytes = b""  # the body's bytes as received

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def token(self) -> str | None:
        value = self.header("Authorization") or ""
        if not value.startswith("Token "):
            return None
        return base64.b64decode(value[6:]).decode()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class Partner:
    """One partner platform with one or more roles."""

    roles: list[dict]
    modules: tuple[str, ...] = MODULES
    port: int = field(default_factory=free_port)
    token_for_hub: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    received: list[Received] = field(default_factory=list)
    finished: list[Received] = field(default_factory=list)  # requests whose answer (after ``delay``) is ready
    hub_token: str | None = None  # the token the hub issued to this partner (token C)
    fail_with: int | None = None  # answer every request with this HTTP status
    delay: float = 0.0
    trickle: float = 0.0  # send the answer's headers, then its body one byte every ``trickle`` seconds
    version_list: list | None = None
    # What the partner's SENDER interfaces hold, per module; served with paging (``page_size``
    # per page, ``Link`` to the next), filtered by ``date_from``/``date_to`` on ``last_updated``.
    held: dict[str, list[dict]] = field(default_factory=dict)
    page_size: int = 2
    link_base: str | None = None  # where the Link of a SENDER page points (default: this server)
    gate: threading.Event | None = None  # when set: every answer waits until the test opens it
    slash_urls: bool = False  # publish every module URL ending in '/', and answer 307 to the same URL without it

    def __post_init__(self) -> None:
        self._server = None
        self._thread = None
        self._lock = threading.RLock()

    # URLs ---------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def versions_url(self) -> str:
        return f"{self.base}/ocpi/versions"

    def credentials(self, token: str | None = None) -> dict:
        return {"token": token or self.token_for_hub, "url": self.versions_url, "roles": self.roles}

    # Server ---------------------------------------------------------------
    def _app(self) -> falcon.App:
        partner = self

        class Handler:
            def on_get(self, req, resp, path=""):
                partner._handle(req, resp, path)

            on_put = on_post = on_patch = on_delete = on_get

        app = falcon.App()
        app.add_sink(lambda req, resp: partner._handle(req, resp, req.path), prefix="/")
        return app

    def _handle(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        raw = req.bounded_stream.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        record = Received(req.method, req.path, req.query_string, dict(req.headers), body, raw)
        with self._lock:
            self.received.append(record)
        if self.delay:
            time.sleep(self.delay)
        if self.gate is not None:
            self.gate.wait(timeout=60)
        with self._lock:
            self.finished.append(record)
        resp.content_type = "application/json"
        if self.fail_with:
            resp.status = self.fail_with
            resp.data = orjson.dumps(envelope(None, 3000, "partner is failing on purpose"))
            return
        if record.token not in (self.token_for_hub, None) and not req.path.startswith("/ocpi/versions"):
            pass  # tests assert on tokens themselves
        if self.slash_urls and self._unslashed(record.path):
            # As some real implementations do: the URL without the published '/' redirects.
            resp.status = 307
            resp.set_header("Location", f"{self.base}{record.path}/")
            resp.data = b""
            return
        answer = self.answer(record)
        if isinstance(answer, tuple) and len(answer) == 3:  # (HTTP status, body, headers)
            resp.status, answer, headers = answer
            resp.set_headers(headers)
        elif isinstance(answer, tuple):  # (HTTP status, body)
            resp.status, answer = answer
        resp.data = answer if isinstance(answer, bytes) else orjson.dumps(answer)
        if self.trickle and resp.data:
            data, resp.data = resp.data, None
            resp.content_length = len(data)
            resp.stream = self._trickled(data, self.trickle)

    def _unslashed(self, path: str) -> bool:
        """A module URL this partner published with a '/', called without it."""
        parts = path.strip("/").split("/")
        return (self.slash_urls and not path.endswith("/") and len(parts) == 4 and parts[:2] == ["ocpi", "2.2.1"]
                and parts[2] in self.modules and parts[3] in ("receiver", "sender"))

    def _trickled(self, data: bytes, pause: float):
        for index in range(len(data)):
            if self._server is None:
                return
            yield data[index:index + 1]
            time.sleep(pause)

    def answer(self, record: Received) -> dict:
        if record.path == "/ocpi/versions":
            versions = self.version_list if self.version_list is not None else [
                {"version": "2.2.1", "url": f"{self.base}/ocpi/2.2.1"}]
            return envelope(versions)
        if record.path == "/ocpi/2.2.1":
            endpoints = []
            for module in self.modules:
                roles = ["SENDER"] if module == "credentials" else ["RECEIVER", "SENDER"]
                if module == "hubclientinfo":
                    roles = ["RECEIVER"]
                for role in roles:
                    url = f"{self.base}/ocpi/2.2.1/{module}/{role.lower()}"
                    endpoints.append({"identifier": module, "role": role,
                                      "url": url + "/" if self.slash_urls else url})
            return envelope({"version": "2.2.1", "endpoints": endpoints})
        module = record.path.removeprefix("/ocpi/2.2.1/").removesuffix("/sender")
        if record.method == "GET" and record.path.endswith("/sender") and module in self.held:
            return self.sender_page(module, record)
        if record.path.startswith("/ocpi/2.2.1/credentials") and record.method == "POST":
            # The hub registering with us: remember its token, hand out ours.
            if isinstance(record.body, dict):
                self.hub_token = record.body.get("token")
            return envelope(self.credentials())
        return envelope()

    def sender_page(self, module: str, record: Received):
        """One page of a GET-all of ``module``'s SENDER interface, as OCPI pagination says."""
        from urllib.parse import parse_qsl, urlencode

        query = dict(parse_qsl(record.query))
        offset, limit = int(query.get("offset", 0)), min(int(query.get("limit", self.page_size)), self.page_size)
        with self._lock:
            items = [o for o in self.held[module]
                     if (not query.get("date_from") or o["last_updated"] >= query["date_from"])
                     and (not query.get("date_to") or o["last_updated"] < query["date_to"])]
        page = items[offset:offset + limit]
        headers = {"X-Total-Count": str(len(items)), "X-Limit": str(limit)}
        if offset + limit < len(items):
            following = {**query, "offset": str(offset + limit), "limit": str(limit)}
            headers["Link"] = f'<{self.link_base or self.base}{record.path}?{urlencode(following)}>; rel="next"'
        return 200, envelope(page), headers

    def start(self) -> Partner:
        self._server = make_server("127.0.0.1", self.port, self._app(), server_class=_ThreadingServer,
                                   handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # Assertions helpers ------------------------------------------------------
    def requests_to(self, prefix: str, method: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.startswith(prefix)
                    and (method is None or r.method == method)]

    def wait_for(self, predicate, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [r for r in self.received if predicate(r)]
            if found:
                return found
            time.sleep(0.05)
        return []


def role(role: str, country_code: str, party_id: str, name: str | None = None) -> dict:
    return {"role": role, "country_code": country_code, "party_id": party_id,
            "business_details": {"name": name or f"{country_code}/{party_id} {role}"}}
