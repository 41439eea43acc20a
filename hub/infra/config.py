"""Configuration from the environment (DESIGN.md "Contract").

| variable | meaning | default |
|---|---|---|
| HUB_DATABASE_URL | PostgreSQL URL of the event store and views | unset: embedded PostgreSQL under HUB_DATA_DIR |
| HUB_DATABASE_SCHEMA | PostgreSQL schema holding the hub's tables | public |
| HUB_DATA_DIR | embedded database and local state | ./var |
| HUB_BASE_URL | public base URL partners use | http://127.0.0.1:8000 |
| HUB_SECRET_KEY | key encrypting tokens partners issued to the hub | generated once under HUB_DATA_DIR |
| HUB_PAGE_LIMIT | largest page a list endpoint returns (X-Limit) | 100 |
| HUB_FORWARD_TIMEOUT | seconds (0 < t <= 30) the hub waits on a partner it calls; a real-time call's one deadline for connecting, sending and the whole answer | 5 |
| HUB_STILL_ALIVE_AFTER | seconds of silence before the hub GETs a party's versions | 300 |
| HUB_DELIVERY_GIVE_UP_AFTER | seconds after which an undeliverable message is parked | 86400 |
| HUB_AUDIT_KEY | HMAC key of the retired HMAC checkpoints: only to verify those of an older database (docs/audit.md) | derived from HUB_SECRET_KEY |
| HUB_AUDIT_SIGNING_KEY | Ed25519 key signing the audit checkpoints and receipts, as `PRIVATE+KEY+<name>+<id>+<base64>` (C2SP signed-note) | the file HUB_AUDIT_SIGNING_KEY_FILE |
| HUB_AUDIT_SIGNING_KEY_FILE | file holding that key | HUB_DATA_DIR/audit_signing_key, generated once |
| HUB_AUDIT_ORIGIN | the log's name on its checkpoints (C2SP origin line) and the default key's name | HUB_BASE_URL without its scheme, then `/audit` |
| HUB_CHECKPOINT_EVERY | seconds between automatic signed checkpoints | 3600 |
| HUB_CHECKPOINT_EVENTS | events after which a checkpoint is taken sooner | 10000 |
| HUB_COMMAND_RESULT_MARGIN | seconds (0 to 86400) a command's response_url outlives the CPO's timeout (a late result is still passed on; the TIMEOUT to the eMSP goes at the CPO's timeout) | 60 |
| HUB_COMMAND_TIMEOUT_RESULT | `off`: no CommandResult TIMEOUT to the eMSP when the CPO sends none | on |
| HUB_SNAPSHOT_EVERY | events between snapshots of an aggregate (a cold load reads at most about this many events after its snapshot); 0: no snapshots | 20 |
| HUB_AGGREGATE_CACHE_SIZE | aggregates each process keeps in memory (least recently used go first); 0: none | 2000 |
| HUB_CACHE_MAX_AGE | seconds (0 to 60) a web process may answer tokens, parties, endpoints and routing rules from memory after they changed; 0: no cache | 1 |
| HUB_PARTNER_NETWORKS_ALLOWED | comma-separated CIDR ranges the hub may call although they are not public (a local sandbox: `127.0.0.0/8,::1/128`) | empty: public unicast addresses only |
| HUB_PARTNER_MAX_RESPONSE_BYTES | largest partner answer read; a longer one is cut off and counts as no valid answer | 16777216 (16 MiB) |
| HUB_MAX_BODY_BYTES | largest request body accepted (HTTP 413 beyond) | 4194304 (4 MiB) |
| HUB_RATE_LIMIT | requests per second per platform and web process (bursts of twice as many); 0: no limit | 200 |
| HUB_LEASE_SECONDS | seconds (1 to 3600) a worker holds the deliveries it took; a dead worker's deliveries are taken over by another worker once this has passed | 60 |
| HUB_DELIVERY_LANES | recipient platforms (1 to 256) one worker sends to at the same time | 32 |
| HUB_CONSOLE_SESSION_SECONDS | seconds a console login lasts at most (absolute expiry, docs/console.md) | 28800 (8 h) |
| HUB_CONSOLE_IDLE_SECONDS | seconds without a console request after which its session ends | 1800 |
| HUB_SYNC_SCHEDULE | partners the worker pulls periodically: `CC/PID[/ROLE][:module[+module]]=INTERVAL`, comma-separated (hub/domain/sync.py) | empty: none |
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from hub import OCPI_VERSION
from hub.infra.outbound import DEFAULT_MAX_RESPONSE_BYTES, IPNetwork, OutboundGuard, parse_networks

#: A charger waits for the hub; a longer synchronous call than this is a misconfiguration.
MAX_FORWARD_TIMEOUT = 30.0
MAX_COMMAND_RESULT_MARGIN = 24 * 3600.0
MAX_LEASE_SECONDS = 3600.0
MAX_DELIVERY_LANES = 256


def _float(env: dict[str, str], key: str, default: float) -> float:
    value = env.get(key)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise SystemExit(f"{key} must be a number, got {value!r}") from exc


def _bounded(env: dict[str, str], key: str, default: float, low: float, high: float, *,
             low_inclusive: bool = False) -> float:
    """``key`` as a number within (``low``, ``high``] (``[low, high]`` if ``low_inclusive``)."""
    value = _float(env, key, default)
    above_low = value >= low if low_inclusive else value > low
    if not (above_low and value <= high):  # also refuses nan
        bound = f"{low:g} <= {key}" if low_inclusive else f"{low:g} < {key}"
        raise SystemExit(f"{key} must satisfy {bound} <= {high:g} (seconds), got {env.get(key)!r}")
    return value


def _count(env: dict[str, str], key: str, default: int) -> int:
    """``key`` as a whole number, 0 or more."""
    value = (env.get(key) or "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise SystemExit(f"{key} must be a whole number (0 or more), got {value!r}")
    return int(value)


def _networks(env: dict[str, str], key: str) -> tuple[IPNetwork, ...]:
    try:
        return parse_networks(env.get(key))
    except ValueError as exc:
        raise SystemExit(f"{key}: {str(exc)!r} is not a CIDR range; give ranges like "
                         f"127.0.0.0/8,::1/128 separated by commas, or leave it empty") from None


def _positive(env: dict[str, str], key: str, default: int) -> int:
    value = _count(env, key, default)
    if value < 1:
        raise SystemExit(f"{key} must be a whole number of bytes, 1 or more, got {env.get(key)!r}")
    return value


def _rate(env: dict[str, str], key: str, default: float) -> float:
    value = _float(env, key, default)
    if not 0 <= value < float("inf"):  # also refuses nan
        raise SystemExit(f"{key} must be requests per second, 0 (no limit) or more, got {env.get(key)!r}")
    return value


def _lanes(env: dict[str, str]) -> int:
    value = _count(env, "HUB_DELIVERY_LANES", 32)
    if not 1 <= value <= MAX_DELIVERY_LANES:
        raise SystemExit(f"HUB_DELIVERY_LANES must be between 1 and {MAX_DELIVERY_LANES}, got {value}")
    return value


def _switch(env: dict[str, str], key: str, default: bool) -> bool:
    value = (env.get(key) or "").strip().lower()
    if not value:
        return default
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise SystemExit(f"{key} must be on or off, got {value!r}")


def _schedule(env: dict[str, str]) -> tuple:
    from hub.domain.sync import parse_schedule

    try:
        return parse_schedule(env.get("HUB_SYNC_SCHEDULE"))
    except ValueError as exc:
        raise SystemExit(f"HUB_SYNC_SCHEDULE: {exc}") from None


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    database_schema: str
    data_dir: Path
    base_url: str
    secret_key: str | None
    page_limit: int = 100
    forward_timeout: float = 5.0
    still_alive_after: float = 300.0
    delivery_give_up_after: float = 24 * 3600.0
    audit_key: str | None = None
    audit_signing_key: str | None = None
    audit_signing_key_file: Path | None = None
    audit_origin: str | None = None
    checkpoint_every: float = 3600.0
    checkpoint_events: int = 10000
    command_result_margin: float = 60.0
    command_timeout_result: bool = True
    snapshot_every: int = 20
    aggregate_cache_size: int = 2000
    cache_max_age: float = 1.0
    partner_networks_allowed: tuple[IPNetwork, ...] = ()
    partner_max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_body_bytes: int = 4 * 1024 * 1024
    rate_limit: float = 200.0
    lease_seconds: float = 60.0
    delivery_lanes: int = 32
    # Real-time isolation (hub/services/bulkhead.py): calls in flight per receiving platform and
    # web process; consecutive timeouts or connection failures that open its circuit, and for how long.
    realtime_concurrency: int = 4
    realtime_circuit_failures: int = 3
    realtime_circuit_seconds: float = 10.0
    sync_schedule: tuple = ()  # of hub.domain.sync.ScheduleEntry
    console_session_seconds: float = 8 * 3600.0  # the operations console (docs/console.md)
    console_idle_seconds: float = 1800.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        base_url = (env.get("HUB_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
        schema = env.get("HUB_DATABASE_SCHEMA") or "public"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise SystemExit(f"HUB_DATABASE_SCHEMA must be a lower-case SQL identifier, got {schema!r}")
        return cls(
            database_url=env.get("HUB_DATABASE_URL") or None,
            database_schema=schema,
            data_dir=Path(env.get("HUB_DATA_DIR") or "./var").resolve(),
            base_url=base_url,
            secret_key=env.get("HUB_SECRET_KEY") or None,
            page_limit=int(_float(env, "HUB_PAGE_LIMIT", 100)),
            forward_timeout=_bounded(env, "HUB_FORWARD_TIMEOUT", 5.0, 0, MAX_FORWARD_TIMEOUT),
            still_alive_after=_float(env, "HUB_STILL_ALIVE_AFTER", 300.0),
            delivery_give_up_after=_float(env, "HUB_DELIVERY_GIVE_UP_AFTER", 24 * 3600.0),
            audit_key=env.get("HUB_AUDIT_KEY") or None,
            audit_signing_key=env.get("HUB_AUDIT_SIGNING_KEY") or None,
            audit_signing_key_file=Path(env["HUB_AUDIT_SIGNING_KEY_FILE"]) if env.get("HUB_AUDIT_SIGNING_KEY_FILE")
            else None,
            audit_origin=env.get("HUB_AUDIT_ORIGIN") or None,
            checkpoint_every=_float(env, "HUB_CHECKPOINT_EVERY", 3600.0),
            checkpoint_events=int(_float(env, "HUB_CHECKPOINT_EVENTS", 10000)),
            command_result_margin=_bounded(env, "HUB_COMMAND_RESULT_MARGIN", 60.0, 0, MAX_COMMAND_RESULT_MARGIN,
                                           low_inclusive=True),
            command_timeout_result=_switch(env, "HUB_COMMAND_TIMEOUT_RESULT", True),
            snapshot_every=_count(env, "HUB_SNAPSHOT_EVERY", 20),
            aggregate_cache_size=_count(env, "HUB_AGGREGATE_CACHE_SIZE", 2000),
            cache_max_age=_bounded(env, "HUB_CACHE_MAX_AGE", 1.0, 0, 60, low_inclusive=True),
            partner_networks_allowed=_networks(env, "HUB_PARTNER_NETWORKS_ALLOWED"),
            partner_max_response_bytes=_positive(env, "HUB_PARTNER_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES),
            max_body_bytes=_positive(env, "HUB_MAX_BODY_BYTES", 4 * 1024 * 1024),
            rate_limit=_rate(env, "HUB_RATE_LIMIT", 200.0),
            lease_seconds=_bounded(env, "HUB_LEASE_SECONDS", 60.0, 1, MAX_LEASE_SECONDS, low_inclusive=True),
            delivery_lanes=_lanes(env),
            realtime_concurrency=max(1, _count(env, "HUB_REALTIME_CONCURRENCY", max(1, _count(env, "HUB_WEB_THREADS", 16) // 2))),
            realtime_circuit_failures=_count(env, "HUB_REALTIME_CIRCUIT_FAILURES", 3),
            realtime_circuit_seconds=_bounded(env, "HUB_REALTIME_CIRCUIT_SECONDS", 10.0, 0, 3600,
                                              low_inclusive=True),
            sync_schedule=_schedule(env),
            console_session_seconds=_bounded(env, "HUB_CONSOLE_SESSION_SECONDS", 8 * 3600.0, 0, 30 * 86400),
            console_idle_seconds=_bounded(env, "HUB_CONSOLE_IDLE_SECONDS", 1800.0, 0, 30 * 86400),
        )

    def outbound_guard(self) -> OutboundGuard:
        """The guard of every call this process makes to a partner (hub/infra/outbound.py)."""
        return OutboundGuard(self.partner_networks_allowed, self.partner_max_response_bytes)

    def with_database(self, url: str) -> Settings:
        return replace(self, database_url=url)

    # URLs the hub hands out -------------------------------------------------
    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/ocpi/versions"

    @property
    def version_details_url(self) -> str:
        return f"{self.base_url}/ocpi/{OCPI_VERSION}"

    def module_url(self, path: str) -> str:
        return f"{self.base_url}/ocpi/{OCPI_VERSION}/{path}"

    # Secrets ------------------------------------------------------------------
    def checkpoint_key(self) -> bytes:
        """The HMAC key of audit checkpoints (HUB_AUDIT_KEY, else derived from the secret key)."""
        from hub.infra.chain import checkpoint_key

        return checkpoint_key(self.audit_key or "from-secret-key:" + self.resolved_secret_key())

    @property
    def log_origin(self) -> str:
        """The transparency log's origin line (HUB_AUDIT_ORIGIN, else the base URL's host and path + /audit)."""
        return self.audit_origin or self.base_url.split("://", 1)[-1].rstrip("/") + "/audit"

    def audit_signer(self):
        """The Ed25519 signer of checkpoints and receipts (hub/infra/notes.py); generated once if none is set."""
        from hub.infra.notes import NoteError, Signer

        if self.audit_signing_key:
            source, text = "HUB_AUDIT_SIGNING_KEY", self.audit_signing_key
        else:
            path = self.audit_signing_key_file or self.data_dir / "audit_signing_key"
            source = str(path)
            if not path.exists() and self.audit_signing_key_file is None:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                fresh = path.with_name(f".{path.name}.{os.getpid()}")
                fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(Signer.generate(self.log_origin).skey + "\n")
                try:  # whole or not at all; another process may have linked its own first
                    os.link(fresh, path)
                except FileExistsError:
                    pass
                finally:
                    fresh.unlink()
            try:
                text = path.read_text()
            except OSError as exc:
                raise SystemExit(f"audit signing key {path}: {exc.strerror}; fix the path in"
                                 " HUB_AUDIT_SIGNING_KEY_FILE") from None
        try:
            return Signer.parse(text)
        except NoteError as exc:
            raise SystemExit(f"{source}: {exc} (generate one with hub audit public-key --new-key NAME)") from None

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret_key"

    def existing_secret_key(self) -> str | None:
        """HUB_SECRET_KEY, or the one kept under HUB_DATA_DIR; None if neither (nothing is created)."""
        if self.secret_key:
            return self.secret_key
        path = self.secret_key_file
        return path.read_text().strip() if path.exists() else None

    def resolved_secret_key(self) -> str:
        """HUB_SECRET_KEY, or one generated once and kept under HUB_DATA_DIR."""
        existing = self.existing_secret_key()
        if existing:
            return existing
        path = self.secret_key_file
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key
