"""What every benchmark shares: a keep-alive HTTP client, partner roles and push headers,
statistics and the result table. The hub under test as real processes and the database:
``ops/bench/processes.py``; CPU and memory readings: ``ops/bench/meters.py``."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.partner import role

ROOT = Path(__file__).resolve().parents[2]
HUB_TO = {"OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"}


# Results ------------------------------------------------------------------------
@dataclass
class Row:
    """One figure of a benchmark: the hub's value, the baseline's, the goal."""

    figure: str
    hub: float | None
    baseline: float | None = None
    unit: str = ""
    ratio: float | None = None  # hub / baseline unless given
    goal: str = ""
    met: bool | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.hub is not None and self.baseline:
            self.ratio = self.hub / self.baseline

    def as_dict(self) -> dict:
        return {"figure": self.figure, "hub": self.hub, "baseline": self.baseline, "unit": self.unit,
                "ratio": self.ratio, "goal": self.goal, "met": self.met}


@dataclass
class Result:
    name: str
    title: str
    size: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "size": self.size, "elapsed_s": round(self.elapsed, 1),
                "rows": [r.as_dict() for r in self.rows], "notes": self.notes}

    def table(self) -> str:
        header = ["figure", "hub", "baseline", "ratio", "goal", "met?"]
        cells = [[r.figure, fmt(r.hub, r.unit), fmt(r.baseline, r.unit),
                  "" if r.ratio is None else f"{r.ratio:.2f}", r.goal,
                  "" if r.met is None else ("yes" if r.met else "NO")] for r in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
        lines = [f"== {self.name}: {self.title} (size {self.size}, {self.elapsed:.0f} s)"]
        lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for c in cells:
            lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
        lines.extend(f"  - {n}" for n in self.notes)
        return "\n".join(lines)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def percentile(values: list[float], p: float) -> float | None:
    """Linear-interpolated percentile (``p`` in 0..100)."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# HTTP client ------------------------------------------------------------------------
def token_header(token: str) -> str:
    return "Token " + base64.b64encode(token.encode()).decode()


class Http:
    """A keep-alive HTTP/1.1 client (``http.client``); it reconnects when the
    server closed the connection (gunicorn's sync workers close after every
    response, the partner test servers speak HTTP/1.0)."""

    def __init__(self, base_url: str, token: str | None = None, headers: dict | None = None,
                 timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.headers = dict(headers or {})
        if token is not None:
            self.headers["Authorization"] = token_header(token)
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: object = None, headers: dict | None = None,
                raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        all_headers = {**self.headers, **(headers or {})}
        data = raw
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            reused = self.conn is not None and self.conn.sock is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=all_headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                self.close()
                if attempt == 2 or not reused:
                    raise
        raise AssertionError("unreachable")


# The hub under test -------------------------------------------------------------------
def cpo(party_id: str) -> dict:
    return role("CPO", "IN", party_id)


def emsp(party_id: str) -> dict:
    return role("EMSP", "IN", party_id)


def push_headers(party_id: str, to: dict | None = HUB_TO, correlation_id: str | None = None) -> dict:
    headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": party_id,
               "X-Correlation-ID": correlation_id or str(uuid.uuid4())}
    if to:
        headers.update(to)
    return headers


def stamp(seconds: float) -> str:
    """An OCPI DateTime ``seconds`` after 2026-01-01 (monotonic ``last_updated`` values)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1767225600 + int(seconds))) + "Z"


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` in ``count`` threads and wait; re-raise the first error."""
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def gather_loaders(children: list[subprocess.Popen], what: str) -> int:
    """Wait for loader processes that print how many events they wrote; their sum.
    A failed loader fails the dataset; any loader still running when that happens is killed."""
    try:
        written = 0
        for child in children:
            out = child.stdout.read()
            if child.wait() != 0:
                raise RuntimeError(f"a {what} loader failed")
            written += int(out)
        return written
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
