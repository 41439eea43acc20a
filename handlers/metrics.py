"""Operational endpoints outside ``/ocpi``: ``/metrics`` and ``/ready``.

``/metrics`` (Prometheus text format) is for the operator's Prometheus. It has
no OCPI authentication and names every party, its status and its queue: do not
expose it publicly; let the reverse proxy refuse it, or bind it to an internal
network only. ``/ready`` and ``/health`` are public, like ``/health`` always was.

What ``/metrics`` shows:

- Request metrics, recorded once per request by the middleware
  (:meth:`RequestMetrics.observe`): ``hub_requests_total{module, method, party,
  http_status, status_code}``, ``hub_request_seconds{module, method}`` and, for
  the real-time paths, ``hub_authorization_seconds`` (tokens SENDER ``POST
  …/authorize``) and ``hub_command_seconds`` (commands RECEIVER ``POST``): the
  hub's whole time for the request, the partner's answer included. ``party`` is
  the request's FROM party (``CC/PID/ROLE``), the platform's first party when
  there is no routing (configuration modules, refused headers), ``unknown``
  when the caller did not authenticate.
- Under gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set (``hub web`` and
  ``hub serve`` do it, see ``hub/metrics.py``), every worker's samples are added
  up, whichever worker answers the scrape.
- Gauges read from the database at scrape time (:class:`DatabaseCollector`), the
  same numbers from every worker: deliveries pending / failed per recipient
  party, the oldest pending delivery's age and the retries of pending ones,
  each follower's lag behind the event log, each party's status.
- The traffic the hub sent, counted from the ``Call.Made`` records of delivery
  attempts in the event log (:class:`DeliveryTraffic`), per recipient party and
  module: ``hub_delivery_attempts_total``, ``hub_delivery_delivered_total``
  (answered with an OCPI success) and ``hub_delivery_failed_total`` (no answer,
  an HTTP error or an OCPI refusal). Every web worker counts the same log, so
  they agree whichever answers the scrape, and the counts survive restarts.
  (``hub_deliveries_failed`` is another thing: deliveries parked right now.)

A delivery without a recipient party (HubClientInfo goes to a whole platform)
counts for the platform's first party, the same rule as ``hub deliveries stats``
(:func:`scheduler.outbox.party_sql`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import falcon
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from hub.infra.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REALTIME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0)
# The real-time paths: (module, interface, method) -> which histogram.
AUTHORIZATION = ("tokens", "SENDER", "POST")
COMMAND = ("commands", "RECEIVER", "POST")
# Requests to these paths are not OCPI traffic and are not counted.
OPERATIONAL_PATHS = frozenset({"/health", "/ready", "/metrics"})
FOLLOWER_STALE_AFTER = 30.0  # seconds; see readiness()
QUERY_TIMEOUT_MS = 5000


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def party_label(caller, routing) -> str:
    """The FROM party of a routed request, else the platform's first party, else ``unknown``."""
    if routing is not None:
        return routing.sender_key
    parties = getattr(caller, "parties", None)
    if parties:
        return parties[0].key
    return UNKNOWN


class RequestMetrics:
    """The per-request counters and histograms of one web process."""

    def __init__(self) -> None:
        # Its own registry: a process may build several apps (tests), and in multiprocess
        # mode the samples go to the shared files whatever registry holds the metric.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hub_requests", "OCPI requests answered, by module, method, FROM party and outcome",
            ["module", "method", "party", "http_status", "status_code"], registry=self.registry)
        self.seconds = Histogram(
            "hub_request_seconds", "Time the hub took to answer a request (recording included)",
            ["module", "method"], buckets=REQUEST_BUCKETS, registry=self.registry)
        self.authorization = Histogram(
            "hub_authorization_seconds",
            "Real-time token authorization: the hub's whole time, the eMSP's answer included",
            buckets=REALTIME_BUCKETS, registry=self.registry)
        self.commands = Histogram(
            "hub_command_seconds",
            "Commands from eMSPs: the hub's whole time, the CPO's answer included",
            buckets=REALTIME_BUCKETS, registry=self.registry)

    def observe(self, req: falcon.Request, resp: falcon.Response, resource, party: str,
                status_code: int | None) -> None:
        if req.path in OPERATIONAL_PATHS:
            return
        started = getattr(req.context, "started", None)
        seconds = time.perf_counter() - started if started is not None else 0.0
        module = getattr(resource, "module", None) or UNKNOWN
        method = req.method if req.method in METHODS else "OTHER"
        self.requests.labels(module, method, party, str(resp.status_code),
                             str(status_code) if status_code is not None else "none").inc()
        self.seconds.labels(module, method).observe(seconds)
        if getattr(req.context, "routing", None) is None:
            return  # refused before the real-time path ran: not a real-time timing
        path = (module, getattr(resource, "interface", None), method)
        if path == AUTHORIZATION:
            self.authorization.observe(seconds)
        elif path == COMMAND:
            self.commands.observe(seconds)


# Database state, read at scrape time -----------------------------------------------
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


_FOLLOWER_NAMES: tuple[str, ...] | None = None


def follower_names() -> tuple[str, ...]:
    """Every follower ``hub worker`` runs (projections, then dispatchers)."""
    global _FOLLOWER_NAMES
    if _FOLLOWER_NAMES is None:
        from projections import all_projections
        from scheduler.worker import dispatchers

        _FOLLOWER_NAMES = tuple(f.name for f in [*all_projections(), *dispatchers()])
    return _FOLLOWER_NAMES


def log_head(conn) -> int:
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
                calls = [c for c in calls if c.purpose == "delivery"]
                ids = sorted({c.delivery_id for c in calls if c.delivery_id is not None})
                recipients = dict(conn.execute(
                    "SELECT id, recipient FROM hub_deliveries WHERE id = ANY(%s)", (ids,)).fetchall()) \
                    if ids else {}
                for call in calls:
                    key = (str(call.platform_id), recipients.get(call.delivery_id), call.module)
                    sums = self.sums.setdefault(key, [0, 0, 0])
                    sums[0] += 1
                    sums[1 if _succeeded(call.http_status, call.status_code) else 2] += 1
                self.position = upto
            return {key: list(value) for key, value in self.sums.items()}


def _succeeded(http_status: int | None, status_code: int | None) -> bool:
    """The partner took it: HTTP 2xx and an OCPI success (1xxx), as the sender decides."""
    return http_status is not None and 200 <= http_status < 300 and status_code is not None \
        and 1000 <= status_code < 2000


class DatabaseCollector:
    """Gauges computed from the database on every scrape (cheap GROUP BY queries), and
    the delivery traffic counters (:class:`DeliveryTraffic`)."""

    def __init__(self, pool, app=None) -> None:
        self.pool = pool
        self.traffic = DeliveryTraffic(app) if app is not None else None

    def describe(self) -> list:
        return []  # no query at registration time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("hub_database_up", "1 when the scrape could read the hub's database")
        try:
            families = self._read()
        except Exception as exc:  # a scrape still answers, with what it knows
            log.warning("metrics: cannot read the database: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list:
        from scheduler.outbox import UNKNOWN_PARTY, first_party_sql, party_sql

        with self.pool.connection(timeout=5) as conn, conn.transaction():
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
            traffic = self.traffic.read(conn, head) if self.traffic is not None else {}
            first_party = dict(conn.execute(
                f"SELECT p.platform_id::text, {first_party_sql('p.platform_id')} FROM view_platforms p"
            ).fetchall()) if traffic else {}

        pending: dict[str, float] = {}
        failed: dict[str, float] = {}
        oldest: dict[str, float] = {}
        retries: dict[str, float] = {}
        status = GaugeMetricFamily("hub_party_status", "1 for each party's current ClientInfo status",
                                   labels=["party", "role", "status"])
        for key, role, party_status in parties:
            status.add_metric([key, role, party_status], 1)
            for table in (pending, failed, oldest, retries):
                table[key] = 0
        for key, state, count, age, retried in queues:
            if state == "PENDING":
                pending[key] = pending.get(key, 0) + count
                oldest[key] = max(oldest.get(key, 0), float(age or 0))
                retries[key] = retries.get(key, 0) + int(retried or 0)
            else:
                failed[key] = failed.get(key, 0) + count
        for key in {*pending, *failed}:  # every party shows every gauge, 0 when nothing waits
            for table in (pending, failed, oldest, retries):
                table.setdefault(key, 0)

        def family(name: str, doc: str, values: dict[str, float]) -> GaugeMetricFamily:
            gauge = GaugeMetricFamily(name, doc, labels=["party"])
            for key in sorted(values):
                gauge.add_metric([key], values[key])
            return gauge

        sent: dict[tuple[str, str], list[int]] = {}
        for (platform_id, recipient, module), sums in traffic.items():
            party = recipient or first_party.get(platform_id) or UNKNOWN_PARTY
            totals = sent.setdefault((party, module), [0, 0, 0])
            for i, value in enumerate(sums):
                totals[i] += value
        counters = [
            CounterMetricFamily("hub_delivery_attempts", "Requests the hub sent to deliver, per recipient"
                                " party and module", labels=["party", "module"]),
            CounterMetricFamily("hub_delivery_delivered", "Delivery attempts the partner took (HTTP 2xx, OCPI"
                                " status 1xxx)", labels=["party", "module"]),
            CounterMetricFamily("hub_delivery_failed", "Delivery attempts that failed (no answer, an HTTP"
                                " error or an OCPI refusal)", labels=["party", "module"]),
        ]
        for (party, module), sums in sorted(sent.items()):
            for counter, value in zip(counters, sums, strict=True):
                counter.add_metric([party, module], value)

        lag = GaugeMetricFamily("hub_follower_lag", "Events in the log the follower has not processed",
                                labels=["follower"])
        idle = GaugeMetricFamily("hub_follower_seconds_since_update",
                                 "Seconds since a worker last moved the follower's position or confirmed it caught up",
                                 labels=["follower"])
        for follower in followers:
            lag.add_metric([follower.name], follower.lag)
            if follower.seconds_since_update is not None:
                idle.add_metric([follower.name], follower.seconds_since_update)
        return [
            family("hub_deliveries_pending", "Deliveries waiting to be sent, per recipient party", pending),
            family("hub_deliveries_failed", "Deliveries parked as failed (operator action needed)", failed),
            family("hub_deliveries_oldest_pending_age_seconds",
                   "Age of the oldest pending delivery, per recipient party", oldest),
            family("hub_deliveries_pending_retries",
                   "Retries so far of the pending deliveries (attempts beyond the first)", retries),
            *counters,
            lag,
            idle,
            GaugeMetricFamily("hub_event_log_head", "Position of the newest event in the log", value=head),
            status,
        ]


# Readiness ---------------------------------------------------------------------------
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
            (table,) = conn.execute("SELECT to_regclass('hub_schema') IS NOT NULL").fetchone()
            row = conn.execute("SELECT version FROM hub_schema WHERE component = 'hub'").fetchone() \
                if table else None
            version = row[0] if row else None
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


# Resources -----------------------------------------------------------------------------
class ReadyResource:
    public = True

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok, body = readiness(self.ctx.app.pool)
        resp.status = falcon.HTTP_200 if ok else falcon.HTTP_503
        resp.media = body


class MetricsResource:
    """``GET /metrics``: operator-only (see the module docstring)."""

    public = True

    def __init__(self, ctx, metrics: RequestMetrics) -> None:
        self.database = DatabaseCollector(ctx.app.pool, ctx.app)
        if multiprocess_mode():
            from prometheus_client import multiprocess

            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry)
        else:
            from prometheus_client import PlatformCollector, ProcessCollector

            self.registry = metrics.registry
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.registry.register(self.database)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        encoder, content_type = choose_encoder(req.get_header("Accept") or "")
        resp.content_type = content_type
        resp.data = encoder(self.registry)
