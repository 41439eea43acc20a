"""One simulated partner platform: its OCPI server on 127.0.0.1.

It serves versions, 2.2.1 details and the interfaces of its role:

- a CPO serves Locations, Tariffs, Sessions and CDRs as SENDER (paged, for the
  hub's pulls) and Tokens and Commands as RECEIVER; a command is answered at
  once (``CommandResponse``) and its ``CommandResult`` is POSTed to the hub's
  ``response_url`` a moment later;
- an eMSP serves Tokens as SENDER (with real-time authorization,
  ``POST tokens/{uid}/authorize``) and receives Locations, Tariffs, Sessions and
  CDRs.

Both receive HubClientInfo. Every call from the hub must carry the partner's
token B. What the partner receives is kept (``received``) for the status view
and for tests. Its :class:`~hub.sandbox.faults.Fault` changes how it answers.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import Counter
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from urllib.parse import parse_qsl, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon
import orjson

from hub.ocpi.envelope import envelope
from hub.sandbox import data
from hub.sandbox.faults import Fault

VERSION = "2.2.1"
#: module -> interface, per role (what the partner's version details publish).
INTERFACES = {
    "CPO": {"credentials": "SENDER", "hubclientinfo": "RECEIVER", "locations": "SENDER", "tariffs": "SENDER",
            "sessions": "SENDER", "cdrs": "SENDER", "tokens": "RECEIVER", "commands": "RECEIVER"},
    "EMSP": {"credentials": "SENDER", "hubclientinfo": "RECEIVER", "locations": "RECEIVER",
             "tariffs": "RECEIVER", "sessions": "RECEIVER", "cdrs": "RECEIVER", "tokens": "SENDER",
             "commands": "SENDER"},  # where CommandResults arrive (the eMSP's response_url)
}
PAGE_SIZE = 50
STRESS_PAGE_SIZE = 1


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def decode_token(header: str | None) -> str | None:
    """The token of ``Authorization: Token ...`` (Base64 as 2.2.1 says, or raw as older clients send)."""
    if not header or not header.startswith("Token "):
        return None
    value = header[6:].strip()
    try:
        return base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return value


class Partner:
    """One party (one role) on its own port, with its data and its fault."""

    def __init__(self, role: str, country_code: str, party_id: str, name: str, *, port: int = 0,
                 token_b: str | None = None, city: str | None = None, locations: int = 6) -> None:
        self.role, self.country_code, self.party_id, self.name = role.upper(), country_code, party_id, name
        if self.role not in INTERFACES:
            raise ValueError(f"role {role}: the sandbox simulates CPO and EMSP")
        self.token_b = token_b or secrets.token_urlsafe(24)
        self.token_c: str | None = None  # the token the hub issued us
        self.hub_versions_url: str | None = None
        self.hub_endpoints: dict[tuple[str, str], str] = {}  # (module, role) -> the hub's URL
        self.fault = Fault()
        self.lock = threading.RLock()
        self.received: list[dict] = []  # what the hub sent us: method, path, body
        self.stored: dict[str, dict[str, dict]] = {}  # module -> key -> object received
        now = datetime.now(UTC)
        self.held: dict[str, list[dict]] = {"locations": [], "tariffs": [], "sessions": [], "cdrs": [],
                                            "tokens": []}
        if self.role == "CPO":
            self.held["locations"] = data.locations(country_code, party_id, name, now, locations)
            self.held["tariffs"] = data.tariffs(country_code, party_id, now)
        else:
            self.held["tokens"] = data.tokens(country_code, party_id, name, now)
        self.commands: list[dict] = []  # (CPO) commands received, with the result sent
        self._server = make_server("127.0.0.1", port, self._app(), server_class=_Server, handler_class=_Quiet)
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # Identity and URLs ------------------------------------------------------
    @property
    def key(self) -> str:
        return f"{self.country_code}/{self.party_id}/{self.role}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/ocpi/versions"

    def credentials(self) -> dict:
        return {"token": self.token_b, "url": self.versions_url,
                "roles": [{"role": self.role, "country_code": self.country_code, "party_id": self.party_id,
                           "business_details": {"name": self.name}}]}

    def status(self) -> dict:
        with self.lock:
            counts = Counter(r["module"] for r in self.received)
        return {"party": self.key, "role": self.role, "name": self.name, "base_url": self.base_url,
                "versions_url": self.versions_url,
                "token": "registered (token C)" if self.token_c else "not registered",
                "fault": self.fault.describe(), "fault_mode": self.fault.as_dict(),
                "received": dict(counts)}

    def set_fault(self, fault: Fault) -> None:
        old, self.fault = self.fault, fault
        old.release()  # answers held by the old fault go now

    # Server ---------------------------------------------------------------
    def start(self) -> Partner:
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"sandbox-{self.key}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.fault.release()
        if self._thread is not None:  # shutdown() waits for serve_forever, so only once it runs
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def _app(self) -> falcon.App:
        app = falcon.App()
        app.add_sink(self._handle, prefix="/")
        return app

    def _handle(self, req: falcon.Request, resp: falcon.Response) -> None:
        raw = req.bounded_stream.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        resp.content_type = "application/json"
        status, answer, headers = self.answer(req.method, req.path, dict(parse_qsl(req.query_string)), body,
                                              req.headers)
        resp.status = status
        resp.set_headers(headers)
        resp.data = orjson.dumps(answer)

    def answer(self, method: str, path: str, query: dict, body, headers: dict) -> tuple[int, dict, dict]:
        """HTTP status, body and headers for one call from the hub."""
        fault = self.fault
        token = decode_token(headers.get("AUTHORIZATION"))
        if token != self.token_b:
            return 401, envelope(None, 2000, "unknown token: send this partner's token B"), {}
        fault.hold()
        if fault.mode == "5xx":
            return 503, envelope(None, 3000, "sandbox fault 5xx: the partner is failing on purpose"), {}
        if fault.mode == "429":
            return 429, envelope(None, 3000, "sandbox fault 429: too many requests"), {
                "Retry-After": str(int(fault.seconds))}
        parts = [p for p in path.split("/") if p]
        if parts == ["ocpi", "versions"]:
            return 200, envelope([{"version": VERSION, "url": f"{self.base_url}/ocpi/{VERSION}"}]), {}
        if parts == ["ocpi", VERSION]:
            endpoints = [{"identifier": m, "role": r, "url": f"{self.base_url}/ocpi/{VERSION}/{m}"}
                         for m, r in INTERFACES[self.role].items()]
            return 200, envelope({"version": VERSION, "endpoints": endpoints}), {}
        if len(parts) < 3 or parts[:2] != ["ocpi", VERSION] or parts[2] not in INTERFACES[self.role]:
            return 404, envelope(None, 2000, f"no such endpoint {path}"), {}
        module, rest = parts[2], parts[3:]
        with self.lock:
            self.received.append({"method": method, "module": module, "path": path, "body": body,
                                  "from": (headers.get("OCPI-FROM-COUNTRY-CODE"), headers.get("OCPI-FROM-PARTY-ID"))})
        if module == "credentials":
            return 200, envelope(self.credentials()), {}
        interface = INTERFACES[self.role][module]
        if module == "tokens" and self.role == "EMSP" and len(rest) == 2 and rest[1] == "authorize":
            return self._authorize(rest[0], query.get("type", "RFID"), body)
        if module == "commands" and self.role == "EMSP":
            return self._receive(module, method, rest, body)  # a CommandResult at our response_url
        if module == "commands" and method == "POST" and len(rest) == 1:
            from hub.sandbox.commands import command_answer

            return command_answer(self, rest[0], body, headers)
        if interface == "SENDER" and method == "GET":
            return self._sender(module, rest, query, path)
        if interface == "RECEIVER" or module == "hubclientinfo":
            return self._receive(module, method, rest, body)
        return 405, envelope(None, 2000, f"{method} is not offered on {module} {interface}"), {}

    # Interfaces -----------------------------------------------------------
    def _authorize(self, uid: str, token_type: str, body) -> tuple[int, dict, dict]:
        token = next((t for t in self.held["tokens"] if t["uid"] == uid and t["type"] == token_type), None)
        if token is None:
            return 404, envelope(None, 2004, f"unknown token {uid} ({token_type})"), {}
        if self.fault.mode == "invalid":
            return 200, envelope({"token": token, "allowed": "MAYBE"}), {}
        info = {"allowed": "ALLOWED" if token["valid"] else "BLOCKED", "token": token,
                "authorization_reference": f"AUTH-{secrets.token_hex(6).upper()}"}
        if isinstance(body, dict) and body.get("location_id"):
            info["location"] = body
        return 200, envelope(info), {}

    def _sender(self, module: str, rest: list[str], query: dict, path: str) -> tuple[int, dict, dict]:
        with self.lock:
            items = list(self.held.get(module, []))
        invalid = self.fault.mode == "invalid"
        if rest:  # one object: locations/{cc}/{pid}/{id}[/{evse}[/{connector}]] style lookups by last id
            found = next((o for o in items if o.get("id", o.get("uid")) == rest[-1]), None)
            if found is None:
                return 404, envelope(None, 2003, f"unknown object {rest[-1]}"), {}
            return 200, envelope(data.invalid(module, found) if invalid else found), {}
        items = [o for o in items if (not query.get("date_from") or o["last_updated"] >= query["date_from"])
                 and (not query.get("date_to") or o["last_updated"] < query["date_to"])]
        largest = STRESS_PAGE_SIZE if self.fault.mode == "pagination" else PAGE_SIZE
        offset = int(query.get("offset") or 0)
        limit = min(int(query.get("limit") or largest), largest) or largest
        page = items[offset:offset + limit]
        headers = {"X-Total-Count": str(len(items)), "X-Limit": str(largest)}
        if offset + limit < len(items):
            following = {**query, "offset": str(offset + limit), "limit": str(limit)}
            headers["Link"] = f'<{self.base_url}{path}?{urlencode(following)}>; rel="next"'
        if invalid:
            page = [data.invalid(module, o) for o in page]
        return 200, envelope(page), headers

    def _receive(self, module: str, method: str, rest: list[str], body) -> tuple[int, dict, dict]:
        if method == "GET":
            with self.lock:
                found = self.stored.get(module, {}).get("/".join(rest))
            if found is None:
                return 404, envelope(None, 2003, "not found"), {}
            return 200, envelope(found), {}
        if self.fault.mode == "invalid":
            return 200, {"status": "ok"}, {}  # no status_code, no timestamp: not an OCPI envelope
        key = "/".join(rest[:3]) if module == "locations" else "/".join(rest)
        if module == "cdrs":
            key = str(body.get("id")) if isinstance(body, dict) else ""
        with self.lock:
            objects = self.stored.setdefault(module, {})
            if not isinstance(body, dict):
                pass
            elif module == "locations" and len(rest) >= 4:  # an EVSE or connector of a stored Location
                if key in objects:
                    self._patch(objects, module, rest, body)
            elif method == "PATCH" and key in objects:
                objects[key].update(body)
            else:
                objects[key] = body
        return (201 if module == "cdrs" and method == "POST" else 200), envelope(), {}

    @staticmethod
    def _patch(objects: dict, module: str, rest: list[str], body: dict) -> None:
        key = "/".join(rest[:3])
        if module == "locations" and len(rest) >= 4:  # an EVSE (or its connector) of a stored Location
            for evse in objects[key].get("evses", []):
                if evse.get("uid") == rest[3] and len(rest) == 4:
                    evse.update(body)
            return
        objects[key].update(body)
