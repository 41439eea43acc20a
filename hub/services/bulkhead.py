"""Isolation of real-time calls: one partner's slowness costs only its own callers.

A web process serves everyone with a fixed number of threads, and a real-time call
(authorization, command) holds its thread until the partner answers or
``HUB_FORWARD_TIMEOUT`` passes. Without a bound, one eMSP that answers slowly takes
every thread and every other partner waits. Two guards, per receiving platform and
per web process, both answered at once with 4003 (the receiver cannot be reached now):

- **bulkhead**: at most ``HUB_REALTIME_CONCURRENCY`` calls to one platform in flight;
  the next caller gets 4003 without waiting. Other platforms' calls and all pushes
  keep the remaining threads.
- **circuit**: after ``HUB_REALTIME_CIRCUIT_FAILURES`` consecutive calls that timed out
  or could not connect (``0`` = no circuit), the platform's circuit opens for
  ``HUB_REALTIME_CIRCUIT_SECONDS``: its callers get 4003 at once. Then one trial call
  goes through (half open); an answer closes the circuit, another failure opens it again.

Any answer from the partner (even an error or something that is no envelope) counts as
reachable. State is per process (each gunicorn worker learns on its own): no database
round trip on the hot path, and a worker that restarts starts closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hub.ocpi.errors import HubError
from hub.ocpi.status import OcpiStatus


@dataclass
class _Lane:
    in_flight: int = 0
    failures: int = 0  # consecutive timeouts / connection failures
    open_until: float = 0.0  # monotonic time; the circuit is open before it
    trial: bool = False  # a half-open trial call is in flight


class Bulkheads:
    """Per receiving platform: a bound on calls in flight and a circuit (thread-safe)."""

    def __init__(self, limit: int, failures: int, open_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(1, limit)
        self.failures = failures
        self.open_seconds = open_seconds
        self.clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> Bulkheads:
        return cls(settings.realtime_concurrency, settings.realtime_circuit_failures,
                   settings.realtime_circuit_seconds)

    @contextmanager
    def call(self, platform: str, receiver: str) -> Iterator[Callable[[bool], None]]:
        """Hold a slot for one call to ``platform`` (``receiver`` names it in refusals).

        Raises :class:`HubError` 4003 at once when the platform's slots are taken or its
        circuit is open. The caller reports the outcome through the yielded function:
        ``done(reachable)``; a call left without a report counts as reachable.
        """
        trial = self._acquire(platform, receiver)
        outcome = {"reachable": True}
        try:
            yield lambda reachable: outcome.__setitem__("reachable", reachable)
        finally:
            self._release(platform, trial, outcome["reachable"])

    def _acquire(self, platform: str, receiver: str) -> bool:
        now = self.clock()
        with self._lock:
            lane = self._lanes.setdefault(platform, _Lane())
            trial = False
            if lane.open_until:
                if now < lane.open_until or lane.trial:
                    wait = max(lane.open_until - now, 0.0)
                    raise HubError(OcpiStatus.CONNECTION_PROBLEM,
                                   f"{receiver} failed to answer {lane.failures} calls in a row; the hub "
                                   f"sends it no real-time calls for {wait:.0f} s more (circuit open)")
                trial = lane.trial = True  # half open: this call decides
            if lane.in_flight >= self.limit:
                if trial:
                    lane.trial = False
                raise HubError(OcpiStatus.CONNECTION_PROBLEM,
                               f"{receiver} already has {lane.in_flight} real-time calls in progress "
                               f"(HUB_REALTIME_CONCURRENCY={self.limit}); try again shortly")
            lane.in_flight += 1
            return trial

    def _release(self, platform: str, trial: bool, reachable: bool) -> None:
        with self._lock:
            lane = self._lanes[platform]
            lane.in_flight -= 1
            if trial:
                lane.trial = False
            if reachable:
                lane.failures = 0
                lane.open_until = 0.0
                return
            lane.failures += 1
            if self.failures and (trial or lane.failures >= self.failures):
                lane.open_until = self.clock() + self.open_seconds

    def state(self) -> dict[str, dict]:
        """Per platform: calls in flight, consecutive failures, whether the circuit is open."""
        now = self.clock()
        with self._lock:
            return {platform: {"in_flight": lane.in_flight, "failures": lane.failures,
                               "open": bool(lane.open_until) and now < lane.open_until}
                    for platform, lane in self._lanes.items()}
