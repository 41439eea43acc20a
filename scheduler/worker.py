"""``hub worker``: the followers (projections, dispatchers) and the periodic jobs.

- A LISTEN thread wakes the follower loop on every NOTIFY of a new event; the
  loop also runs every second as the safety net.
- APScheduler drives the periodic jobs: sending due deliveries, still-alive
  checks, the give-up sweep, command timeouts, and the pulls of
  ``HUB_SYNC_SCHEDULE`` (:mod:`scheduler.sync`).
- The delivery loop hands due rows to the sender's lanes (one per recipient
  platform, several at a time) and never waits for a partner itself.
- Several workers may run against one database: followers serialise on their
  tracking rows, senders lease rows with SKIP LOCKED.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler

from hub.infra.client import OcpiClient
from hub.infra.config import Settings
from hub.infra.eventlog import EventLog, Waker
from hub.services.application import Hub
from projections import all_projections
from scheduler.chargingprofiles import ProfileDispatcher
from scheduler.checkpoints import CheckpointSubscriptions, queue_checkpoints
from scheduler.clientinfo import ClientInfoDispatcher, StillAlive, render_client_info
from scheduler.commands import CommandResultDispatcher, CommandTimeouts
from scheduler.forwarding import ForwardingDispatcher, render_current
from scheduler.outbox import give_up
from scheduler.sender import Sender
from scheduler.sync import SyncSchedule

log = logging.getLogger(__name__)

DISPATCH_GAP = 0.01  # seconds at least between two delivery rounds (their wake-ups are merged)
HEARTBEAT_EVERY = 5.0  # seconds; /ready calls a follower stale after 30 s without one


def dispatchers(settings: Settings | None = None) -> list:
    """Followers that turn events into deliveries; they read the views, so they
    run only up to the position every projection has reached."""
    timeout_result = settings.command_timeout_result if settings is not None else True
    return [ClientInfoDispatcher(), ForwardingDispatcher(), CommandResultDispatcher(timeout_result),
            ProfileDispatcher(), CheckpointSubscriptions()]


class Worker:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.signer = settings.audit_signer()  # fails at start-up, not at the first checkpoint
        # Lanes lease, renew and render through the pool; the writer writes their outcomes.
        self.app = Hub(settings, database_url, pool_size=8 + min(settings.delivery_lanes, 16) // 2)
        self.log = EventLog(self.app)
        self.client = OcpiClient(read_timeout=settings.forward_timeout, guard=settings.outbound_guard())
        self.projections = all_projections()
        self.dispatchers = dispatchers(settings)
        self.still_alive = StillAlive(self.app, self.client, settings.still_alive_after)
        self.command_timeouts = CommandTimeouts(self.app)
        current = render_current(self.app)
        self.sender = Sender(
            self.app, self.client,
            {"hubclientinfo": render_client_info(self.app), "locations": current, "tariffs": current,
             "sessions": current, "tokens": current},
            on_unreachable=self._unreachable,
            on_idle=self._lane_done,
            lanes=settings.delivery_lanes,
            lease_seconds=settings.lease_seconds,
        )
        self.waker = Waker(database_url)
        self.deliver_now = threading.Event()
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.syncs = SyncSchedule(self.app, self.client, settings.sync_schedule, self.stopping)

    # The follower loop -------------------------------------------------------
    def follow_once(self) -> int:
        # Followers none of whose events came since their position are moved to the head in
        # one statement; only the others run a batch.
        idle = self.log.advance_idle([*self.projections, *self.dispatchers])
        applied = 0
        for projection in self.projections:
            if projection.name not in idle:
                applied += self.log.try_catch_up(projection)
        busy = [d for d in self.dispatchers if d.name not in idle]
        if not busy:
            return applied
        views_position = self.log.min_position([p.name for p in self.projections if p.read_by_dispatchers])
        for dispatcher in busy:
            before = applied
            applied += self.log.catch_up(dispatcher, until=views_position) if views_position else 0
            if applied > before:
                self.deliver_now.set()
        return applied

    def _unreachable(self, platform_id, reason: str) -> None:
        try:
            self.still_alive.unreachable(platform_id, reason)
        except Exception:
            log.exception("could not mark platform %s offline", platform_id)

    def heartbeat(self) -> None:
        """Stamp every follower's tracking row: it is running and was caught up just now.

        ``/ready`` and ``hub_follower_seconds_since_update`` read ``updated_at``; only a
        follower round that succeeded stamps it, so a follower stuck on an event goes
        stale. Rows another process is advancing right now are skipped (that stamps them).
        """
        names = [f.name for f in [*self.projections, *self.dispatchers]]
        with self.app.pool.connection() as conn:
            conn.execute(
                "UPDATE hub_tracking SET updated_at = now() WHERE name IN (SELECT name FROM hub_tracking"
                " WHERE name = ANY(%s) FOR UPDATE SKIP LOCKED)", (names,))

    def _follow_loop(self) -> None:
        last_beat = 0.0
        while not self.stopping.is_set():
            try:
                self.follow_once()
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY:
                    self.heartbeat()
                    last_beat = time.monotonic()
            except Exception:
                if self.stopping.is_set():
                    return
                log.exception("follower batch failed; retrying")
                self.stopping.wait(1.0)
            self.waker.wait(1.0)

    def _lane_done(self) -> None:
        self.deliver_now.set()  # more may be due for the platform whose lane just ended

    def _deliver_loop(self) -> None:
        """Hands due rows to the sender's lanes; does not wait for them (a slow partner
        must not hold up deliveries to the others)."""
        # Due rows are looked for at least every second, and four times per lease when the lease
        # is shorter: a dead worker's rows are taken over at most a tick after its lease ran out.
        tick = min(1.0, self.settings.lease_seconds / 4)
        while not self.stopping.is_set():
            self.deliver_now.wait(tick)
            # Under a stream of pushes the wake-ups come hundreds of times a second; gather
            # them into rounds DISPATCH_GAP apart, so the lease query runs a bounded number
            # of times (each round leases everything due, for every idle recipient).
            self.stopping.wait(DISPATCH_GAP)
            self.deliver_now.clear()
            try:
                self.sender.dispatch()
            except Exception:
                log.exception("delivery round failed")

    def deliver(self) -> None:
        """Send everything due now and wait until it is sent (operators' one-off runs, tests)."""
        try:
            self.sender.send_due()
        except Exception:
            log.exception("delivery round failed")

    def check_still_alive(self) -> None:
        try:
            self.still_alive.check_all()
        except Exception:
            log.exception("still-alive round failed")

    def time_out_commands(self) -> None:
        try:
            self.command_timeouts.run()
        except Exception:
            log.exception("command timeout round failed")

    def grow_tree(self) -> None:
        """Append new events to the audit Merkle tree (hub/infra/tlog.py)."""
        from hub.infra.tlog import catch_up, enabled

        if not enabled():
            return
        try:
            with self.app.pool.connection() as conn, conn.transaction():
                catch_up(conn, whole=False)  # whole runs of leaves; a checkpoint appends the rest
        except Exception:
            log.exception("audit tree update failed")

    def checkpoint(self) -> None:
        """Sign the tree head every HUB_CHECKPOINT_EVERY seconds or HUB_CHECKPOINT_EVENTS events."""
        from datetime import UTC, datetime

        from hub.infra.tlog import catch_up, enabled, latest_head, sign_checkpoint
        from hub.ocpi.envelope import format_datetime, parse_datetime

        if not enabled():
            return
        pushes = 0
        try:
            with self.app.pool.connection() as conn, conn.transaction():
                last = latest_head(conn)
                size = catch_up(conn)  # every event (a short run of leaves every 30 s at most)
                now = datetime.now(UTC)
                due = last is None or size - last[0] >= self.settings.checkpoint_events or (
                    size > last[0]
                    and (now - parse_datetime(last[1])).total_seconds() >= self.settings.checkpoint_every)
                if due and size:
                    sign_checkpoint(conn, self.signer, self.settings.log_origin, format_datetime(now))
                    pushes = queue_checkpoints(conn)  # in the transaction that signed it
            if due and size and pushes:
                self.deliver_now.set()
        except Exception:
            log.exception("audit checkpoint failed")

    def push_checkpoints(self) -> int:
        """Queue checkpoints signed elsewhere (``hub audit checkpoint``) for the witnesses."""
        try:
            with self.app.pool.connection() as conn, conn.transaction():
                queued = queue_checkpoints(conn)
        except Exception:
            log.exception("queueing checkpoint pushes failed")
            return 0
        if queued:
            self.deliver_now.set()
        return queued

    def sweep(self) -> None:
        parked = give_up(self.app, self.settings.delivery_give_up_after)
        if parked:
            log.warning("parked %d deliveries older than the give-up age", parked)

    # Running -----------------------------------------------------------------
    def start(self) -> None:
        self.waker.start()
        self.threads = [
            threading.Thread(target=self._follow_loop, name="hub-follow", daemon=True),
            threading.Thread(target=self._deliver_loop, name="hub-deliver", daemon=True),
        ]
        for thread in self.threads:
            thread.start()
        probe_every = max(1.0, min(30.0, self.settings.still_alive_after / 5))
        self.scheduler.add_job(self.deliver_now.set, "interval", seconds=1, id="deliver-due",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.check_still_alive, "interval", seconds=probe_every,
                               id="still-alive", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.grow_tree, "interval", seconds=2, id="audit-tree",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.checkpoint, "interval", seconds=30, id="audit-checkpoint",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.push_checkpoints, "interval", seconds=2, id="audit-push",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.sweep, "interval", seconds=60, id="give-up-sweep",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.time_out_commands, "interval", seconds=2, id="command-timeouts",
                               max_instances=1, coalesce=True)
        self.syncs.add_jobs(self.scheduler)  # HUB_SYNC_SCHEDULE: pulls of partners that never push
        self.scheduler.start()

    def stop(self) -> None:
        self.stopping.set()
        self.waker.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.deliver_now.set()
        for thread in getattr(self, "threads", []):
            thread.join(timeout=15)
        self.sender.close()
        self.client.close()
        self.app.close()

    def run_forever(self) -> None:
        done = threading.Event()

        def on_signal(signum, frame) -> None:
            log.info("worker stopping (signal %s)", signum)
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        log.info("worker running")
        done.wait()
        self.stop()
