"""In-process caches of the views the hot path reads, and their invalidation across
processes and nodes within a bounded time (``HUB_CACHE_MAX_AGE``).

The database keeps one number, ``hub_cache_version.version``, that every change to a
watched view table raises in the changing transaction (a deferred trigger, so it is
raised at commit, after the transaction's own row locks) and announces with
``NOTIFY hub_cache`` (payload: the schema). Each process has one :class:`Freshness`:

- a listener thread waits for the notifications and re-reads the version at least every
  ``max_age / 4`` seconds (the poll is the backstop: a lost or dropped listener
  connection only delays invalidation up to the bound, never forever);
- :meth:`Freshness.current` answers the version to serve from, reading it itself
  (one round trip) whenever the last successful read *started* more than ``max_age``
  ago. A change committed at T is therefore never served from a cache after
  T + ``max_age``, whatever happened to the listener.

:class:`VersionedCache` is a bounded LRU map that empties itself when the version moves.
Entries are stored under the version read *before* the data was read, so an entry is
never newer-tagged than its data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "hub_cache"
DEFAULT_MAX_AGE = 1.0
_MISSING = object()


def ddl(watched: dict[str, tuple[str, ...]]) -> list[str]:
    """Statements (idempotent) making changes to the ``watched`` tables raise the version.

    ``watched``: table -> the columns whose updates matter (empty: every update). An
    update of other columns only (``last_seen_at``) leaves the caches alone.
    """
    statements = [
        # Not "CREATE TABLE IF NOT EXISTS": a follower's rebuild swaps the tables named so.
        "DO $$ BEGIN CREATE TABLE hub_cache_version (id int PRIMARY KEY CHECK (id = 1),"
        " version bigint NOT NULL); EXCEPTION WHEN duplicate_table THEN NULL; END $$",
        "INSERT INTO hub_cache_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        f"""CREATE OR REPLACE FUNCTION hub_cache_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              EXECUTE format('UPDATE %I.hub_cache_version SET version = version + 1 WHERE id = 1',
                             TG_TABLE_SCHEMA);
              PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA);
              RETURN NULL;
            END $$""",
    ]
    for table, columns in watched.items():
        update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
        trigger = f"{table}_cache_changed"
        statements += [
            f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
            f"CREATE CONSTRAINT TRIGGER {trigger} AFTER INSERT OR {update} OR DELETE ON {table}"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hub_cache_changed()",
        ]
    return statements


class Freshness:
    """The version a process may serve its caches from, never older than ``max_age`` seconds.

    ``read_version() -> int`` reads ``hub_cache_version`` (one round trip). ``max_age``
    0 turns caching off (:attr:`enabled`).
    """

    def __init__(self, read_version: Callable[[], int], max_age: float = DEFAULT_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read_version = read_version
        self.max_age = max_age
        self.clock = clock
        self.version: tuple[int, int] | None = None  # (database version, local epoch)
        self.verified_at = float("-inf")  # when the last successful read started
        self._epoch = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._caches: dict[str, VersionedCache] = {}
        self._suspect_until = float("-inf")

    def cache(self, name: str, maxsize: int = 4096) -> VersionedCache:
        """This process's cache called ``name`` (made on first use), kept fresh by this object."""
        found = self._caches.get(name)
        if found is None:
            found = self._caches.setdefault(name, VersionedCache(maxsize))
        return found

    @property
    def enabled(self) -> bool:
        return self.max_age > 0

    def observe(self, version: int, started_at: float) -> None:
        """Record a version read that started at ``started_at`` (a clock reading)."""
        with self._lock:
            if started_at < self.verified_at:
                return  # an older read finishing late: it knows less than what we have
            self.verified_at = started_at
            key = (version, self._epoch)
            if self.version != key:
                self.version = key

    def refresh(self) -> tuple[int, int]:
        started = self.clock()
        version = self.read_version()
        self.observe(version, started)
        return self.version

    def current(self) -> tuple[int, int]:
        """The version to serve from; reads it now when the last read is older than the bound."""
        now = self.clock()
        if self.version is None or now - self.verified_at > self.max_age or now < self._suspect_until:
            return self.refresh()
        return self.version

    def suspect(self) -> None:
        """This process is changing a watched view (its commit may not have happened yet):
        read the version on every request for the next ``max_age`` seconds, so this
        process sees its own change as soon as it is committed, without waiting for the
        notification."""
        self.invalidate()
        with self._lock:
            self._suspect_until = self.clock() + self.max_age

    def invalidate(self) -> None:
        """Forget everything cached (this process changed a view: read its own writes)."""
        with self._lock:
            self._epoch += 1
            if self.version is not None:
                self.version = (self.version[0], self._epoch)

    # The listener -------------------------------------------------------------------
    def listen(self, connect: Callable[[], psycopg.Connection], schema: str) -> None:
        """Start the listener thread (after fork): LISTEN, plus a poll every ``max_age / 4``."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._listen, args=(connect, schema),
                                        name="hub-cache-listener", daemon=True)
        self._thread.start()

    def _listen(self, connect: Callable[[], psycopg.Connection], schema: str) -> None:
        interval = max(0.02, self.max_age / 4)
        while not self._stop.is_set():
            try:
                with connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        started = self.clock()
                        self.observe(read_version(conn), started)
                        # Any notification (of this schema or not) or the poll interval: read again.
                        for _ in conn.notifies(timeout=interval, stop_after=1):
                            pass
            except Exception:  # a dropped connection: requests read the version themselves meanwhile
                if not self._stop.is_set():
                    log.warning("cache listener lost its connection; retrying", exc_info=True)
                    self._stop.wait(min(1.0, interval))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * max(0.02, self.max_age / 4) + 1)
            self._thread = None


class VersionedCache:
    """A bounded LRU map whose entries all belong to one version; a new version empties it."""

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self.version: Hashable = None
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, version: Hashable, key: Hashable) -> Any:
        """The entry, or ``_MISSING`` (see :meth:`lookup`)."""
        with self._lock:
            if version != self.version:
                self._data.clear()
                self.version = version
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                self.misses += 1
            else:
                self.hits += 1
                self._data.move_to_end(key)
            return value

    def put(self, version: Hashable, key: Hashable, value: Any) -> None:
        with self._lock:
            if version != self.version:
                return  # read under a version that is already gone: do not keep it
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def lookup(self, freshness: Freshness | None, key: Hashable, load: Callable[[], Any],
               keep: Callable[[Any], bool] = lambda _value: True) -> Any:
        """``load()`` unless a fresh entry exists; the loaded value is kept if ``keep(value)``."""
        if freshness is None or not freshness.enabled:
            return load()
        version = freshness.current()  # before reading: the data is at least this new
        value = self.get(version, key)
        if value is _MISSING:
            value = load()
            if keep(value):
                self.put(version, key, value)
        return value


# Which caches serve which pool: only processes that opt in (the web side) use them.
_REGISTRY: dict[int, tuple[Any, Freshness]] = {}


def register(pool: Any, freshness: Freshness) -> None:
    """Serve the named reads made through ``pool`` from caches kept fresh by ``freshness``."""
    _REGISTRY[id(pool)] = (pool, freshness)


def unregister(pool: Any) -> None:
    _REGISTRY.pop(id(pool), None)


def changed_here() -> None:
    """A follower of this process is changing a watched view: every cache of this process
    reads its own writes (:meth:`Freshness.suspect`). Other processes follow within the bound."""
    for _pool, freshness in list(_REGISTRY.values()):
        freshness.suspect()


def freshness_of(source: Any) -> Freshness | None:
    """The :class:`Freshness` registered for this pool (None: read the database every time)."""
    entry = _REGISTRY.get(id(source))
    return entry[1] if entry is not None and entry[0] is source else None


def read_version(source: Any) -> int:
    """``hub_cache_version`` now (0 before ``hub migrate`` made it), through a pool or a connection."""
    if hasattr(source, "connection") and not isinstance(source, psycopg.Connection):
        with source.connection() as conn:
            return read_version(conn)
    row = source.execute("SELECT version FROM hub_cache_version WHERE id = 1").fetchone()
    return row[0] if row else 0


def open_caches(pool: Any, database_url: str, schema: str, max_age: float) -> Freshness | None:
    """Serve this process's named reads through ``pool`` from caches no older than ``max_age``
    seconds: a :class:`Freshness` with its listener started and registered (None if
    ``max_age`` is 0 or there is no pool)."""
    if pool is None or max_age <= 0:
        return None
    from hub.infra.database import connect

    freshness = Freshness(lambda: read_version(pool), max_age)
    freshness.listen(lambda: connect(database_url, schema, autocommit=True), schema)
    register(pool, freshness)
    return freshness
