"""Reads behind the operations console (handlers/console): figures for the overview,
one party's page, checkpoints and verification runs. Each function takes the
application (``app.pool`` for the views, ``app`` for the log) and returns plain data.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hub.audit.events import CALL_TOPIC, REQUEST_TOPIC, EventReader
from hub.infra import tlog
from projections.health import follower_names, follower_states, read_hub_state

TRAFFIC_MINUTES = 60
TRAFFIC_MAX_EVENTS = 50_000  # an hour busier than this shows its latest part only


def _recent(app, topics: list[str], minutes: int, limit: int) -> list[tuple[int, object]]:
    """(position, event) of ``topics`` recorded in the last ``minutes``, newest last (at most ``limit``)."""
    reader = EventReader(app)
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    with reader.connect() as conn:
        end = reader.head(conn)
        start = max(reader.position_before(conn, since, end), end - 4 * limit)
        found = []
        for batch in reader.scan(conn, after=start, end=end, topics=topics):
            found.extend((pos, ev) for pos, _, ev in batch if ev.timestamp >= since)
    return found[-limit:]


def traffic(app, minutes: int = TRAFFIC_MINUTES) -> dict:
    """OCPI messages per minute by module over the last ``minutes``, both ways (requests partners
    sent the hub and calls the hub made): ``{"minutes": [labels], "modules": {module: [count per
    minute]}}`` (oldest minute first)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first = now - timedelta(minutes=minutes - 1)
    counts: Counter = Counter()
    for _, event in _recent(app, [REQUEST_TOPIC, CALL_TOPIC], minutes, TRAFFIC_MAX_EVENTS):
        minute = event.timestamp.astimezone(UTC).replace(second=0, microsecond=0)
        if minute >= first:
            counts[(event.module, int((minute - first).total_seconds() // 60))] += 1
    modules: dict[str, list[int]] = {}
    for (module, index), count in counts.items():
        modules.setdefault(module, [0] * minutes)[index] = count
    labels = [(first + timedelta(minutes=i)).strftime("%H:%M") for i in range(minutes)]
    return {"minutes": labels, "modules": dict(sorted(modules.items()))}


def party_traffic(app, platform_id: str, limit: int = 20) -> list[dict]:
    """The latest requests from and calls to ``platform_id`` (last hour), newest first."""
    rows = []
    for _, ev in _recent(app, [REQUEST_TOPIC, CALL_TOPIC], TRAFFIC_MINUTES, 5000):
        if str(ev.platform_id) != str(platform_id):
            continue
        inbound = hasattr(ev, "received_at")
        rows.append({"at": ev.timestamp.isoformat(timespec="seconds"), "direction": "in" if inbound else "out",
                     "module": ev.module, "method": ev.method,
                     "what": ev.path if inbound else ev.url, "http_status": ev.http_status,
                     "status_code": ev.status_code, "correlation_id": ev.correlation_id})
    return rows[::-1][:limit]


def overview(app) -> dict:
    """Backlog, parties by status, follower lag, the last checkpoint and verification."""
    state = read_hub_state(app.pool)
    by_status = Counter(status for _, _, status in state.parties)
    pending = [q for q in state.queues if q[1] == "PENDING"]
    parked = sum(q[2] for q in state.queues if q[1] == "FAILED")
    oldest = max((q[3] for q in pending if q[3] is not None), default=None)
    with app.pool.connection() as conn:
        head = tlog.latest_head(conn)
        _, followers = follower_states(conn, follower_names())
    return {
        "backlog": sum(q[2] for q in pending), "oldest_pending_s": None if oldest is None else round(oldest),
        "parked": parked, "parties_by_status": dict(sorted(by_status.items())), "log_head": state.head,
        "follower_lag": max((f.lag for f in followers), default=0),
        "followers": [{"name": f.name, "lag": f.lag} for f in followers],
        "last_checkpoint": {"size": head[0], "created_at": head[1]} if head else None,
        "last_verification": last_verification(app),
    }


def checkpoints(app, limit: int = 50) -> list[dict]:
    """The signed checkpoints of the transparency log, newest first."""
    with app.pool.connection() as conn:
        heads = tlog.tree_heads(conn)
    return [{"size": size, "created_at": at, "note": note} for size, at, note in reversed(heads[-limit:])]


# Six missed heartbeats (hub.services.console.JOB_BEAT_SECONDS) and a running job counts as interrupted.
STALLED = "interval '30 seconds'"


def verification(app, job_id: int) -> dict | None:
    with app.pool.connection() as conn:
        row = conn.execute("SELECT id, operator, started_at, finished_at, progress, head, ok, result,"
                           f" finished_at IS NULL AND coalesce(beat_at, started_at) < now() - {STALLED}"
                           " FROM hub_console_jobs WHERE id = %s", (job_id,)).fetchone()
    return _job(row) if row else None


def last_verification(app) -> dict | None:
    with app.pool.connection() as conn:
        row = conn.execute("SELECT id, operator, started_at, finished_at, progress, head, ok, result,"
                           f" finished_at IS NULL AND coalesce(beat_at, started_at) < now() - {STALLED}"
                           " FROM hub_console_jobs WHERE kind = 'verify' ORDER BY id DESC LIMIT 1").fetchone()
    return _job(row) if row else None


def _job(row) -> dict:
    """A console job; ``interrupted``: not finished, and its heartbeat stopped (the web process
    running it ended), so it never will."""
    return {"id": row[0], "operator": row[1], "started_at": row[2], "finished_at": row[3],
            "progress": row[4], "head": row[5], "ok": row[6], "result": row[7], "interrupted": row[8]}


def correlation_of_request(app, request_id: str) -> str | None:
    """The correlation id of the request (or call) with this request id, if any."""
    reader = EventReader(app)
    with reader.connect() as conn:
        for batch in reader.scan(conn, topics=[REQUEST_TOPIC, CALL_TOPIC], needles=[request_id]):
            for _, _, event in batch:
                if event.request_id == request_id:
                    return event.correlation_id
    return None
