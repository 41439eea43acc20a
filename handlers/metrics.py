"""Operational endpoints outside ``/ocpi``: ``/metrics`` and ``/ready``.

HTTP and Prometheus exposition only: the database reads are in ``projections/health.py``.

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
  ``hub serve`` do it, see ``hub/infra/metrics.py``), every worker's samples are
  added up, whichever worker answers the scrape.
- Gauges read from the database at scrape time (:class:`DatabaseCollector`; the
  reads are in ``projections/health.py``), the same numbers from every worker:
  deliveries pending / failed per recipient party, the oldest pending delivery's
  age and the retries of pending ones, each follower's lag behind the event log,
  each party's status.
- The traffic the hub sent, counted from the ``Call.Made`` records of delivery
  attempts in the event log (:class:`projections.health.DeliveryTraffic`), per
  recipient party and module: ``hub_delivery_attempts_total``,
  ``hub_delivery_delivered_total`` (answered with an OCPI success) and ``hub_delivery_failed_total`` (no answer,
  an HTTP error or an OCPI refusal). Every web worker counts the same log, so
  they agree whichever answers the scrape, and the counts survive restarts.
  (``hub_deliveries_failed`` is another thing: deliveries parked right now.)

A delivery without a recipient party (HubClientInfo goes to a whole platform)
counts for the platform's first party, the same rule as ``hub deliveries stats``
(:func:`projections.health.party_sql`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import falcon
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from hub.infra.metrics import MULTIPROC_ENV
from projections.health import DeliveryTraffic, read_hub_state, readiness

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
class DatabaseCollector:
    """Gauges computed from the database on every scrape (cheap GROUP BY queries), and
    the delivery traffic counters (:class:`projections.health.DeliveryTraffic`)."""

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
        hub = read_hub_state(self.pool, self.traffic)
        parties, queues, head, followers = hub.parties, hub.queues, hub.head, hub.followers

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
        for key, queue, count, age, retried in queues:
            if queue == "PENDING":
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

        counters = [
            CounterMetricFamily("hub_delivery_attempts", "Requests the hub sent to deliver, per recipient"
                                " party and module", labels=["party", "module"]),
            CounterMetricFamily("hub_delivery_delivered", "Delivery attempts the partner took (HTTP 2xx, OCPI"
                                " status 1xxx)", labels=["party", "module"]),
            CounterMetricFamily("hub_delivery_failed", "Delivery attempts that failed (no answer, an HTTP"
                                " error or an OCPI refusal)", labels=["party", "module"]),
        ]
        for (party, module), sums in sorted(hub.sent.items()):
            for counter, value in zip(counters, sums, strict=True):
                counter.add_metric([party, module], value)

        refused = CounterMetricFamily(
            "hub_partner_credentials_refused", "Calls of the hub (deliveries and real-time requests) that"
            " the partner answered HTTP 401 or 403: it refused the hub's credentials", labels=["party"])
        for party, count in sorted(hub.refused.items()):
            refused.add_metric([party], count)

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
            refused,
            lag,
            idle,
            GaugeMetricFamily("hub_event_log_head", "Position of the newest event in the log", value=head),
            status,
        ]


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
