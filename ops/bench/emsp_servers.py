"""Keep-alive eMSP servers for the delivery benchmarks, in a process of their own.

Production eMSPs answer on HTTP/1.1 keep-alive connections from their own
machines; the ``tests/partner.py`` servers are HTTP/1.0 threads, and inside the
bench process they share its interpreter with the pushing CPO. Here one asyncio
event loop serves every eMSP (one listening port each) with a small HTTP/1.1
parser: it answers the versions and version details the credentials handshake
reads, and an OCPI envelope (status 1000) to everything else.

``python -m ops.bench.emsp_servers`` reads ``{"emsps": [{"port", "party_id"}, ...]}``
as JSON on stdin, prints ``ready`` once it listens, then one line per received
Locations receiver PUT/PATCH: ``party_id TAB location id TAB last_updated TAB
time.monotonic()`` (CLOCK_MONOTONIC is system-wide on Linux, so the bench compares
it with its own clock). It runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

MODULES = ("credentials", "hubclientinfo", "locations", "tariffs", "sessions", "cdrs", "tokens", "commands")
RECEIVER = "/ocpi/2.2.1/locations/receiver/"
FLUSH_EVERY = 0.02  # seconds between two writes of the receipts to stdout


def _envelope(data: object = None) -> bytes:
    body = {"status_code": 1000, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if data is not None:
        body["data"] = data
    return orjson.dumps(body)


class Emsp(asyncio.Protocol):
    """One connection to one eMSP: requests parsed and answered in order (keep-alive)."""

    def __init__(self, party_id: str, base: str, receipts: list[str]) -> None:
        self.party_id, self.base, self.receipts = party_id, base, receipts
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            method, target, version = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            self.answer(method, target.split("?", 1)[0], body, close)
            if close:
                return

    def answer(self, method: str, path: str, body: bytes, close: bool) -> None:
        if path.startswith(RECEIVER) and method in ("PUT", "PATCH"):
            now = time.monotonic()
            try:
                sent = orjson.loads(body)
            except orjson.JSONDecodeError:
                sent = None
            last_updated = sent.get("last_updated", "") if isinstance(sent, dict) else ""
            location = path[len(RECEIVER):].split("/")[2]
            self.receipts.append(f"{self.party_id}\t{location}\t{last_updated}\t{now!r}\n")
            data = _envelope()
        elif path == "/ocpi/versions":
            data = _envelope([{"version": "2.2.1", "url": f"{self.base}/ocpi/2.2.1"}])
        elif path == "/ocpi/2.2.1":
            endpoints = []
            for module in MODULES:
                roles = ["SENDER"] if module == "credentials" else (
                    ["RECEIVER"] if module == "hubclientinfo" else ["RECEIVER", "SENDER"])
                endpoints += [{"identifier": module, "role": r,
                               "url": f"{self.base}/ocpi/2.2.1/{module}/{r.lower()}"} for r in roles]
            data = _envelope({"version": "2.2.1", "endpoints": endpoints})
        else:
            data = _envelope()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (len(data), b"Connection: close\r\n" if close else b"", data))
        if close:
            self.transport.close()


async def serve(emsps: list[dict]) -> None:
    loop = asyncio.get_running_loop()
    receipts: list[str] = []
    servers = []
    for e in emsps:
        base = f"http://127.0.0.1:{e['port']}"
        servers.append(await loop.create_server(
            lambda p=e["party_id"], b=base: Emsp(p, b, receipts), "127.0.0.1", e["port"], reuse_address=True))
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    stdin_closed = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stdin_closed.done() or (
        not sys.stdin.buffer.raw.read(4096) and stdin_closed.set_result(None)))
    while not stdin_closed.done():
        if receipts:
            lines, receipts[:] = "".join(receipts), []
            out.write(lines)
            out.flush()
        await asyncio.wait([stdin_closed], timeout=FLUSH_EVERY)
    for server in servers:
        server.close()


# The bench's side ------------------------------------------------------------------
@dataclass
class RemoteEmsp:
    """What the bench and ``HubProcesses.connect_partners`` need of one eMSP served by the process."""

    roles: list[dict]
    port: int
    token_for_hub: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    hub_token: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def credentials(self) -> dict:
        return {"token": self.token_for_hub, "url": f"{self.base}/ocpi/versions", "roles": self.roles}

    def start(self) -> RemoteEmsp:  # the process already serves it
        return self

    def stop(self) -> None:
        pass


class EmspProcess:
    """Starts the servers for ``roles`` (one eMSP each) and hands every receipt to
    ``on_receipt(party_id, location id, last_updated, monotonic time)``."""

    def __init__(self, roles: list[dict], ports: list[int],
                 on_receipt: Callable[[str, str, str, float], None], root) -> None:
        self.emsps = {r["party_id"]: RemoteEmsp([r], port) for r, port in zip(roles, ports, strict=True)}
        self.child = subprocess.Popen([sys.executable, "-m", "ops.bench.emsp_servers"], cwd=root, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.child.stdin.write(json.dumps({"emsps": [{"port": e.port, "party_id": p}
                                                     for p, e in self.emsps.items()]}) + "\n")
        self.child.stdin.flush()
        if self.child.stdout.readline().strip() != "ready":
            raise RuntimeError("the eMSP servers did not start")
        self.on_receipt = on_receipt
        self.reader = threading.Thread(target=self._read, name="emsp-receipts", daemon=True)
        self.reader.start()

    def partner(self, role: dict) -> RemoteEmsp:
        """``connect_partners``' factory."""
        return self.emsps[role["party_id"]]

    def _read(self) -> None:
        for line in self.child.stdout:
            party, loc, last_updated, at = line.rstrip("\n").split("\t")
            self.on_receipt(party, loc, last_updated, float(at))

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.stdin.close()
            try:
                self.child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self.reader.join(timeout=5)


def main() -> int:
    job = json.loads(sys.stdin.readline())
    asyncio.run(serve(job["emsps"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
