"""Reads behind ``/metrics`` and ``/ready``: the hub's own state, not OCPI objects.

Plain functions of a connection or a pool: the delivery queue per recipient party
(``hub_deliveries``), each follower's position behind the event log
(``hub_tracking``), the parties' statuses (``view_parties``), the schema version,
and the delivery traffic counted from the log's ``Call.Made`` records
(:class:`DeliveryTraffic`). ``handlers/metrics.py`` turns them into HTTP answers
and Prometheus families.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from hub.ocpi.status import CREDENTIALS_REFUSED_HTTP as CREDENTIALS_REFUSED
from projections import all_projections

log = logging.getLogger(__name__)

FOLLOWER_STALE_AFTER = 30.0  # seconds; see FollowerState.running
QUERY_TIMEOUT_MS = 5000
# The dispatchers ``hub worker`` runs after the projections (scheduler.worker.dispatchers);
# tests/unit/test_architecture.py checks the two lists agree.
DISPATCHERS = ("dispatch-clientinfo", "dispatch-objects", "dispatch-commands", "dispatch-chargingprofiles",
               "audit-subscriptions")
UNKNOWN_PARTY = "unknown"


@cache
def follower_names() -> tuple[str, ...]:
    """Every follower ``hub worker`` runs (projections, then dispatchers)."""
    return (*(p.name for p in all_projections()), *DISPATCHERS)


def first_party_sql(platform_id: str) -> str:
    """SQL for the party that platform-wide deliveries (no ``recipient``: HubClientInfo)
    count for in ``hub deliveries stats`` and ``/metrics``: the platform's first party
    as ``CC/PID/ROLE``, in country code, party id, role order."""
    return ("(SELECT v.country_code || '/' || v.party_id || '/' || v.role FROM view_parties v"
            f" WHERE v.platform_id = {platform_id} ORDER BY v.country_code, v.party_id, v.role LIMIT 1)")


def party_sql(alias: str = "d") -> str:
    """SQL for the ``CC/PID/ROLE`` a ``hub_deliveries`` row counts for (see :func:`first_party_sql`)."""
    return f"coalesce({alias}.recipient, {first_party_sql(alias + '.platform_id')}, '{UNKNOWN_PARTY}')"


# Followers -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FollowerState:
    name: str
    position: int
    lag: int
    seconds_since_update: float | None  # None: the follower never ran

    @property
    def running(self) -> bool:
        """A worker moved it or confirmed it caught up within the last FOLLOWER_STALE_AFTER
        seconds (``hub worker`` stamps every follower every few seconds, idle or not): a
        follower at lag 0 whose worker is gone is not running either."""
        return self.seconds_since_update is not None and self.seconds_since_update <= FOLLOWER_STALE_AFTER


def log_head(conn) -> int:
    """The notification id of the newest event in the log (0 when empty)."""
    (head,) = conn.execute("SELECT coalesce(max(notification_id), 0) FROM hub_events").fetchone()
    return int(head)


def follower_states(conn, names: Iterable[str]) -> tuple[int, list[FollowerState]]:
    """The log head and every follower's position (``names`` first, then any other tracked one)."""
    head = log_head(conn)
    rows = {
        name: (int(position), seconds)
        for name, position, seconds in conn.execute(
            "SELECT name, position, extract(epoch FROM now() - updated_at)::float8 FROM hub_tracking")
    }
    states = []
    for name in dict.fromkeys([*names, *rows]):
        position, seconds = rows.get(name, (0, None))
        states.append(FollowerState(name, position, max(0, head - position), seconds))
    return head, states


# Delivery traffic ----------------------------------------------------------------------
class DeliveryTraffic:
    """Delivery attempts counted from the event log's ``Call.Made`` records.

    Each process reads the records once, in windows of notification ids after the
    last one it counted (an index range scan), and keeps the sums; a scrape adds
    what is new. The log is immutable, so the sums only grow and every process
    reaches the same ones. A long log is caught up over several scrapes
    (``BUDGET_SECONDS`` each) rather than holding one scrape up.
    """

    WINDOW = 20000
    BUDGET_SECONDS = 2.0

    def __init__(self, app) -> None:
        from eventsourcing.utils import get_topic

        from hub.domain.audit import Call

        self.app = app
        self.topic = get_topic(Call.Made)
        self.position = 0
        # (platform id, recipient or None, module) -> [attempts, delivered, failed]
        self.sums: dict[tuple[str, str | None, str], list[int]] = {}
        # (platform id, recipient or None) -> calls (deliveries and real-time) answered HTTP 401/403
        self.refused: dict[tuple[str, str | None], int] = {}
        self.lock = threading.Lock()

    def read(self, conn, head: int) -> dict[tuple[str, str | None, str], list[int]]:
        """Count what the log holds up to ``head``; a copy of the sums."""
        from eventsourcing.persistence import StoredEvent

        with self.lock:
            deadline = time.monotonic() + self.BUDGET_SECONDS
            while self.position < head and time.monotonic() < deadline:
                upto = min(head, self.position + self.WINDOW)
                rows = conn.execute(
                    "SELECT originator_id, originator_version, topic, state FROM hub_events"
                    " WHERE notification_id > %s AND notification_id <= %s AND topic = %s",
                    (self.position, upto, self.topic)).fetchall()
                calls = [self.app.mapper.to_domain_event(StoredEvent(r[0], r[1], r[2], bytes(r[3])))
                         for r in rows]
                refused = [c for c in calls if c.http_status in CREDENTIALS_REFUSED]
                calls = [c for c in calls if c.purpose == "delivery"]
                ids = sorted({c.delivery_id for c in [*calls, *refused]
                              if getattr(c, "delivery_id", None) is not None})
                recipients = dict(conn.execute(
                    "SELECT id, recipient FROM hub_deliveries WHERE id = ANY(%s)", (ids,)).fetchall()) \
                    if ids else {}
                for call in calls:
                    key = (str(call.platform_id), recipients.get(call.delivery_id), call.module)
                    sums = self.sums.setdefault(key, [0, 0, 0])
                    sums[0] += 1
                    sums[1 if _succeeded(call.http_status, call.status_code) else 2] += 1
                for call in refused:
                    key = (str(call.platform_id), recipients.get(getattr(call, "delivery_id", None)))
                    self.refused[key] = self.refused.get(key, 0) + 1
                self.position = upto
            return {key: list(value) for key, value in self.sums.items()}

    def refusals(self) -> dict[tuple[str, str | None], int]:
        """Calls a partner answered HTTP 401/403 (it refused the hub's credentials), as counted
        by the last :meth:`read`."""
        with self.lock:
            return dict(self.refused)


def _succeeded(http_status: int | None, status_code: int | None) -> bool:
    """The partner took it: HTTP 2xx and an OCPI success (1xxx), as the sender decides."""
    return http_status is not None and 200 <= http_status < 300 and status_code is not None \
        and 1000 <= status_code < 2000


# One scrape ----------------------------------------------------------------------------
@dataclass
class HubState:
    """What one ``/metrics`` scrape reads, in one transaction."""

    parties: list[tuple[str, str, str]]  # (CC/PID/ROLE, role, status), in key order
    # (party, state PENDING|FAILED, count, oldest age in seconds, retries so far)
    queues: list[tuple[str, str, int, float | None, int | None]]
    head: int
    followers: list[FollowerState]
    # (recipient party, module) -> [attempts, delivered, failed]
    sent: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # party -> calls it answered HTTP 401/403: it refused the hub's credentials
    refused: dict[str, int] = field(default_factory=dict)


def read_hub_state(pool, traffic: DeliveryTraffic | None = None) -> HubState:
    """Parties, delivery queues, follower positions and (with ``traffic``) the delivery
    traffic per recipient party and module."""
    with pool.connection(timeout=5) as conn, conn.transaction():
        conn.execute(f"SET LOCAL statement_timeout = {QUERY_TIMEOUT_MS}")
        parties = conn.execute(
            "SELECT country_code || '/' || party_id || '/' || role, role, status"
            " FROM view_parties ORDER BY country_code, party_id, role").fetchall()
        queues = conn.execute(
            f"SELECT {party_sql('d')}, d.state, count(*),"
            " extract(epoch FROM now() - min(d.created_at))::float8,"
            " sum(greatest(d.attempts - 1, 0))"
            " FROM hub_deliveries d WHERE d.state IN ('PENDING', 'FAILED')"
            " GROUP BY 1, 2").fetchall()
        head, followers = follower_states(conn, follower_names())
        counted = traffic.read(conn, head) if traffic is not None else {}
        refusals = traffic.refusals() if traffic is not None else {}
        first_party = dict(conn.execute(
            f"SELECT p.platform_id::text, {first_party_sql('p.platform_id')} FROM view_platforms p"
        ).fetchall()) if counted or refusals else {}

    sent: dict[tuple[str, str], list[int]] = {}
    for (platform_id, recipient, module), sums in counted.items():
        party = recipient or first_party.get(platform_id) or UNKNOWN_PARTY
        totals = sent.setdefault((party, module), [0, 0, 0])
        for i, value in enumerate(sums):
            totals[i] += value
    refused: dict[str, int] = {}
    for (platform_id, recipient), count in refusals.items():
        party = recipient or first_party.get(platform_id) or UNKNOWN_PARTY
        refused[party] = refused.get(party, 0) + count
    return HubState(parties, queues, head, followers, sent, refused)


# Readiness -----------------------------------------------------------------------------
def readiness(pool) -> tuple[bool, dict]:
    """Database answers, schema is current, followers are running: a worker stamped each
    one within FOLLOWER_STALE_AFTER seconds (see :attr:`FollowerState.running`)."""
    from hub.services.schema import SCHEMA_VERSION

    checks: dict[str, dict] = {}
    try:
        with pool.connection(timeout=3) as conn, conn.transaction():
            conn.execute(f"SET LOCAL statement_timeout = {QUERY_TIMEOUT_MS}")
            conn.execute("SELECT 1")
            checks["database"] = {"ok": True}
            version = schema_version(conn)
            checks["schema"] = {"ok": version == SCHEMA_VERSION, "version": version,
                                "expected": SCHEMA_VERSION}
            if checks["schema"]["ok"]:
                _, states = follower_states(conn, follower_names())
                stale = [{"name": f.name, "lag": f.lag,
                          "seconds_since_update": None if f.seconds_since_update is None
                          else round(f.seconds_since_update, 1)}
                         for f in states if not f.running]
                checks["followers"] = {"ok": not stale, "stale": stale,
                                       "stale_after_seconds": FOLLOWER_STALE_AFTER}
    except Exception as exc:
        if "database" not in checks:
            log.warning("ready: the database did not answer: %s", exc)
            checks["database"] = {"ok": False, "error": "the database did not answer"}
        else:
            log.warning("ready: check failed: %s", exc)
            checks.setdefault("schema", {"ok": False, "error": "could not read the schema version"})
            checks.setdefault("followers", {"ok": False, "error": "could not read follower positions"})
    for name in ("schema", "followers"):  # not checked because an earlier check failed
        checks.setdefault(name, {"ok": False, "skipped": True})
    ready = all(check["ok"] for check in checks.values())
    failed = [name for name, check in checks.items() if not check["ok"] and not check.get("skipped")]
    return ready, {"status": "ready" if ready else "unavailable", "failed": failed, "checks": checks}


def schema_version(conn) -> int | None:
    """The hub's schema version in ``hub_schema``; None when the table or its row is missing."""
    (table,) = conn.execute("SELECT to_regclass('hub_schema') IS NOT NULL").fetchone()
    row = conn.execute("SELECT version FROM hub_schema WHERE component = 'hub'").fetchone() \
        if table else None
    return row[0] if row else None
