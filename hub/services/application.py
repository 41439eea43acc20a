"""The event-sourced application: commands turn into domain events.

``Hub`` is an eventsourcing ``Application`` named ``Hub`` (events table
``hub_events``). Command methods load aggregates, call one domain method and
hand them to a :class:`UnitOfWork`, which saves everything of one OCPI request
(domain events plus the request's audit record) in a single transaction.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from psycopg_pool import ConnectionPool

from hub.domain.parties import Party, Platform, party_key
from hub.infra.config import Settings
from hub.infra.database import eventsourcing_env, harden_pool, in_memory_env, open_pool
from hub.infra.security import TokenCipher, check_secret_key, new_token, token_hash
from hub.infra.snapshots import SnapshotRepository, Snapshotter, pool_writer
from hub.services.committer import save as group_save

log = logging.getLogger(__name__)


class Hub(Application):
    name = "Hub"

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        *,
        create_table: bool = False,
        pool_size: int = 8,
    ) -> None:
        """The hub on PostgreSQL at ``database_url`` (every process): the chained recorder, a
        connection pool for views and outbox, and the secret key checked against the database's."""
        secret_key = self._start(settings, database_url, eventsourcing_env(
            database_url, settings.database_schema, create_table=create_table,
            cache_size=settings.aggregate_cache_size))
        harden_pool(self.recorder.datastore.pool)  # the library's pool: the hub's outage handling
        self.pool = open_pool(database_url, settings.database_schema, max_size=pool_size)
        if not create_table:  # hub migrate records the key once the schema exists
            try:
                with self.pool.connection() as conn:
                    check_secret_key(conn, secret_key)
            except BaseException:
                self.close()
                raise

    @classmethod
    def in_memory(cls, settings: Settings | None = None) -> Hub:
        """The hub on the eventsourcing library's in-memory store: no database, no pool (so no
        views, outbox or real-time calls), no key to check. Commands, aggregates and the
        repository behave as on PostgreSQL; for domain and service tests."""
        hub = cls.__new__(cls)
        hub._start(settings or Settings.from_env({"HUB_SECRET_KEY": "in-memory"}), None, in_memory_env())
        return hub

    def _start(self, settings: Settings, database_url: str | None, env: dict[str, str]) -> str:
        """What both stores share; returns the secret key."""
        self.settings = settings  # before the library builds the repository from it
        super().__init__(env=env)
        self.database_url = database_url
        self.pool: ConnectionPool | None = None
        self.snapshotter = Snapshotter(settings.snapshot_every, self.repository.get, self.mapper,
                                       self.write_snapshot)
        secret_key = settings.resolved_secret_key()
        self.cipher = TokenCipher(secret_key)
        return secret_key

    def close(self) -> None:
        self.snapshotter.close()
        if self.pool is not None:
            self.pool.close()
        super().close()

    # Snapshots (hub/infra/snapshots.py) ----------------------------------------------
    def construct_repository(self) -> SnapshotRepository:
        """The library's repository (same cache settings), loading from snapshots."""
        cache_size = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        every = self.settings.snapshot_every
        return SnapshotRepository(
            event_store=self.events, snapshot_store=self.snapshots if every else None,
            cache_maxsize=int(cache_size) if cache_size else None, fastforward=True,
            every=every, wants_snapshot=self._want_snapshot)

    def _want_snapshot(self, aggregate_id: UUID) -> None:
        snapshotter = getattr(self, "snapshotter", None)
        if snapshotter is not None:
            snapshotter.request(aggregate_id)

    def _take_snapshots(self, processing_event: Any) -> None:
        """Called by ``save()`` once its transaction is committed: ask for the snapshots due
        (taken in the background; never fails or delays the save)."""
        self.snapshots_due(processing_event.aggregates, processing_event.events)

    def snapshots_due(self, aggregates: dict, events: list) -> None:
        """After a commit of ``events`` of ``aggregates`` (by id): queue the snapshots due."""
        try:
            self.snapshotter.after_save(aggregates, events)
        except Exception:  # a cache: never a reason to fail what was committed
            log.warning("could not queue snapshots after a commit", exc_info=True)

    def write_snapshot(self, stored: Any) -> None:
        """Store one snapshot (and drop its aggregate's older ones)."""
        if self.pool is not None:
            pool_writer(self.pool)(stored)
        elif self.snapshots is not None:  # in memory
            self.snapshots.recorder.insert_events([stored])

    # Reading aggregates ----------------------------------------------------
    def platform(self, platform_id: UUID | str) -> Platform:
        return self.repository.get(UUID(str(platform_id)))

    def party(self, country_code: str, party_id: str, role: str) -> Party | None:
        try:
            return self.repository.get(Party.create_id(country_code, party_id, role))
        except AggregateNotFoundError:
            return None

    def parties_of(self, platform: Platform) -> list[Party]:
        """Every party attached to ``platform`` (onboarded or registered roles)."""
        parties = (self.party(*key.split("/")) for key in platform.party_keys)
        return [p for p in parties if p is not None]

    # Operator commands -----------------------------------------------------
    def onboard(
        self, uow: UnitOfWork, *, role: str, country_code: str, party_id: str, name: str,
        platform_id: UUID | None = None,
    ) -> tuple[Party, Platform, str | None]:
        """Onboard a party: on a new platform with a fresh token A, or as one
        more role of an existing platform (``platform_id``).

        A party whose platform unregistered can be onboarded again (new token A).
        Returns the party, its platform and token A (None for an existing platform).
        """
        existing = self.party(country_code, party_id, role)
        if existing is not None and existing.connection != "UNREGISTERED":
            raise ValueError(
                f"party {existing.key} already exists (status {existing.status})"
            )
        token_a: str | None = None
        if platform_id is not None:
            platform = self.platform(platform_id)
        else:
            token_a = new_token()
            platform = Platform(pending_token_hash=token_hash(token_a), initiated_by="operator")
        key = party_key(country_code, party_id, role)
        platform.attach_party(key)
        if existing is None:
            party = Party(country_code=country_code, party_id=party_id, role=role, name=name,
                          platform_id=platform.id, onboarded_by="operator")
        else:
            party = existing
            party.replan(platform.id)
        uow.add(platform, party)
        return party, platform, token_a


# Striped in-process locks: one request at a time per object within a process,
# from loading the aggregate to committing it (see UnitOfWork.hold).
_OBJECT_LOCKS = [threading.Lock() for _ in range(512)]


def _stripe(aggregate_id: UUID) -> int:
    return zlib.crc32(aggregate_id.bytes) % len(_OBJECT_LOCKS)


class UnitOfWork:
    """Collects the aggregates of one request or command and saves them together."""

    def __init__(self, app: Hub) -> None:
        self.app = app
        self.aggregates: list[Aggregate] = []
        self.after_commit: list[Callable[[int], Any]] = []
        self.position: int | None = None
        self._held: list[threading.Lock] = []
        self.loaded: dict[UUID, Aggregate | None] = {}  # objects loaded for this unit (Pushes.load)

    def hold(self, aggregate_id: UUID) -> None:
        """Keep other threads of this process off this object until commit or discard.

        Two requests that load version N of one object and both write N+1 would
        make the second fail; within a process they now take turns. Across
        processes the event store still refuses the loser, and the push
        receivers run it again (``handlers/middleware.py``).
        """
        lock = _OBJECT_LOCKS[_stripe(aggregate_id)]
        if any(lock is held for held in self._held):
            return
        lock.acquire()
        self._held.append(lock)

    def hold_all(self, aggregate_ids) -> None:
        """:meth:`hold` several objects, in lock order: units that each hold several (a page of a
        pull sync) never wait for each other in a cycle."""
        for aggregate_id in sorted(set(aggregate_ids), key=_stripe):
            self.hold(aggregate_id)

    def release(self) -> None:
        while self._held:
            self._held.pop().release()

    def add(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            if all(aggregate is not existing for existing in self.aggregates):
                self.aggregates.append(aggregate)

    @property
    def pending(self) -> bool:
        return any(agg.pending_events for agg in self.aggregates)

    def commit(self, *extra: Aggregate) -> int | None:
        """One transaction for everything collected; returns the log position.

        With group commit (:mod:`hub.services.committer`) the transaction may also hold
        other requests' events; this returns once this unit's own events are committed
        (or raises what refused them), and only then releases its object locks.
        """
        try:
            recordings = group_save(self.app, *self.aggregates, *extra)
        finally:
            self.release()
        self.recordings = recordings  # the receipt of a push reads its record's (handlers/receipts.py)
        positions = [r.notification.id for r in recordings if r.notification.id is not None]
        self.position = max(positions) if positions else None
        if self.position is not None:
            for callback in self.after_commit:
                callback(self.position)
        return self.position

    def discard(self) -> None:
        for aggregate in self.aggregates:
            aggregate.collect_events()
        self.aggregates.clear()
        self.loaded.clear()
        self.release()
