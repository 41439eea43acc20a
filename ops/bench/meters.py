"""CPU and memory readings of the hub's processes for the benchmarks (Linux /proc),
including the PostgreSQL backends that serve them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one live process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set size) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK


def _pg_client_ports(pids: Iterable[int], pg_port: int) -> set[int]:
    """Local ports of the TCP connections these processes hold to PostgreSQL (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[9]) in inodes and int(fields[2].rsplit(":", 1)[1], 16) == pg_port:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class CpuMeter:
    """CPU used between ``start`` and ``stop`` by groups of processes, by the PostgreSQL
    backends serving them (TCP connections only), and by everything else, in % of one core."""

    def __init__(self, groups: dict[str, Callable[[], Iterable[int]]], database_url: str | None = None) -> None:
        self.groups = groups
        self.database_url = database_url

    def _backends(self) -> dict[int, int]:
        """Backend pid -> client port, for every client backend of the cluster."""
        if not self.database_url:
            return {}
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                rows = conn.execute("SELECT pid, coalesce(client_port, -1) FROM pg_stat_activity"
                                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchall()
        except psycopg.Error:
            return {}
        return dict(rows)

    def _read(self) -> dict[str, float]:
        reading = {name: sum(cpu_seconds(p) for p in pids()) for name, pids in self.groups.items()}
        t = os.times()
        reading["bench client"] = t.user + t.system
        reading["_machine"] = machine_busy_seconds()
        reading["_wall"] = time.monotonic()
        return reading

    def start(self) -> CpuMeter:
        self.begin = self._read()
        self.begin_backends = {pid: cpu_seconds(pid) for pid in self._backends()}
        return self

    def _postgres(self) -> float | None:
        """CPU seconds the backends serving our processes used since ``start``."""
        backends = self._backends()
        if not backends:
            return None
        pids = [os.getpid(), *(p for pids in self.groups.values() for p in pids())]
        port = urlsplit(self.database_url).port or 5432
        ours = _pg_client_ports(pids, port)
        if not ours:
            return None
        return sum(cpu_seconds(b) - self.begin_backends.get(b, 0.0)
                   for b, client_port in backends.items() if client_port in ours)

    def stop(self) -> str:
        postgres = self._postgres()
        end = self._read()
        wall = end["_wall"] - self.begin["_wall"]
        if wall <= 0:
            return ""
        used = {k: (end[k] - self.begin[k]) / wall * 100 for k in end if not k.startswith("_")}
        if postgres is not None:
            used["PostgreSQL for these"] = postgres / wall * 100
        # CPU seconds of the hub's processes and their PostgreSQL backends (the client's left out).
        self.hub_seconds = sum(v for k, v in used.items() if k != "bench client") * wall / 100
        machine = (end["_machine"] - self.begin["_machine"]) / wall * 100
        rest = max(0.0, machine - sum(used.values()))
        label = "everything else on the machine" if postgres is not None else "rest (PostgreSQL, other)"
        parts = [f"{k} {v:.0f}%" for k, v in used.items()] + [f"{label} {rest:.0f}%"]
        return f"CPU over {wall:.1f} s, % of one core ({os.cpu_count()} cores = {100 * os.cpu_count()}%): " \
               + ", ".join(parts)


def pyspy(pid: int, seconds: float, out: str) -> subprocess.Popen | None:
    """py-spy recording ``pid`` for ``seconds`` into ``out`` (collapsed stacks, idle threads left out)."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        print("py-spy is not installed next to this Python: no profile (pip install py-spy)", file=sys.stderr)
        return None
    return subprocess.Popen([str(exe), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "200", "--nonblocking", "--format", "raw", "--output", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
