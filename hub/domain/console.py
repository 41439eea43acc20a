"""Operators of the web console: their accounts, and the pure rules of logging in.

An :class:`OperatorAccount` is event-sourced like everything the hub keeps: adding,
resetting and removing an account are events in the log. Its id is derived from its
name, so an account is found by name without a view; :class:`OperatorDirectory`
(one aggregate) lists the names in use.

Passwords are stored as scrypt hashes (stdlib ``hashlib.scrypt``: memory-hard, no
native dependency). Session ids and CSRF tokens are random; the server keeps only a
SHA-256 of a session id, and a CSRF token is an HMAC of the session id, so it is bound
to that session and checked without storing it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from base64 import b64decode, b64encode
from dataclasses import dataclass
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

ROLES = ("viewer", "admin")
NAME_PATTERN = r"[a-z][a-z0-9_.-]{1,31}"
ACCOUNT_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/console/operators")
DIRECTORY_ID = uuid5(ACCOUNT_NAMESPACE, "directory")

# scrypt cost: n=2**14, r=8 takes 16 MiB per hash (RFC 7914's interactive-login figure).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024

# Throttle: after this many failed logins in a row, each further try waits twice as long.
FREE_FAILURES = 5
LOCK_BASE_SECONDS = 2.0
LOCK_MAX_SECONDS = 900.0


def account_id(name: str) -> UUID:
    return uuid5(ACCOUNT_NAMESPACE, name)


def new_secret() -> str:
    """A generated password (about 120 bits), shown to the operator once."""
    return secrets.token_urlsafe(15)


def hash_secret(secret: str, *, n: int = SCRYPT_N) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM,
                            dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64encode(salt).decode()}${b64encode(digest).decode()}"


def secret_matches(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = b64decode(digest)
        got = hashlib.scrypt(secret.encode(), salt=b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_digest(session_id: str) -> str:
    """What the server stores of a session id (the id itself is only in the cookie)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(key: bytes, session_id: str) -> str:
    """The CSRF token of one session: forms carry it, the server recomputes it."""
    return hmac.new(key, b"console-csrf:" + session_id.encode(), hashlib.sha256).hexdigest()


def csrf_valid(key: bytes, session_id: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(key, session_id), sent)


@dataclass(frozen=True)
class SessionTimes:
    created_at: float
    last_seen_at: float


def session_alive(times: SessionTimes, now: float, *, absolute: float, idle: float) -> bool:
    """A session lasts ``absolute`` seconds at most and ends after ``idle`` seconds unused."""
    return now - times.created_at < absolute and now - times.last_seen_at < idle


def lock_seconds(failures: int) -> float:
    """How long an account refuses logins after ``failures`` failed tries in a row."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(LOCK_MAX_SECONDS, LOCK_BASE_SECONDS * 2 ** (failures - FREE_FAILURES))


def may_act(role: str) -> bool:
    return role == "admin"


class OperatorAccount(Aggregate):
    """One console operator: name, role and the hash of its secret."""

    @staticmethod
    def create_id(name: str, **_: object) -> UUID:
        return account_id(name)

    @event("Added")
    def __init__(self, name: str, role: str, secret_hash: str, added_by: str) -> None:
        self.name = name
        self.role = role
        self.secret_hash = secret_hash
        self.added_by = added_by
        self.removed = False

    @event("SecretReset")
    def reset(self, secret_hash: str, by: str) -> None:
        self.secret_hash = secret_hash
        self.removed = False

    @event("Readded")
    def readd(self, role: str, secret_hash: str, by: str) -> None:
        self.role = role
        self.secret_hash = secret_hash
        self.removed = False

    @event("Removed")
    def remove(self, by: str) -> None:
        self.removed = True


class OperatorDirectory(Aggregate):
    """The names of every console account ever added (removed ones stay, flagged on the account)."""

    @staticmethod
    def create_id(**_: object) -> UUID:
        return DIRECTORY_ID

    @event("Created")
    def __init__(self) -> None:
        self.names: list[str] = []

    @event("NameAdded")
    def add_name(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)
