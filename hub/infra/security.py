"""Credentials tokens: issuing, hashing, matching, encrypting.

- Tokens the hub issues (A, C, and the B it sends when it starts a handshake)
  are 32 random bytes (URL-safe text), stored only as SHA-256 hex digests.
  A digest of a 256-bit random token needs no slow hash; lookups are by digest
  and the final comparison is constant-time.
- Tokens partners issue to the hub are encrypted with a key derived from
  ``HUB_SECRET_KEY`` (Fernet: AES-128-CBC + HMAC-SHA256, authenticated).
- The key's fingerprint (an HMAC of a constant, never the key) is kept in the
  database by ``hub migrate``; every process compares its own key with it at
  start and refuses to run with another one, whose tokens nobody else could read.
- ``Authorization: Token <x>``: 2.2.1 says ``x`` is Base64 of the token; many
  2.1.1/2.2 clients send the raw token. Both candidates are tried.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken


def new_token() -> str:
    """A fresh credentials token: 32 random bytes, 43 printable ASCII chars."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def encode_header_token(token: str) -> str:
    """The Authorization header value for ``token`` as 2.2.1 prescribes."""
    return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def header_token_candidates(header: str | None) -> list[str]:
    """Possible tokens in an ``Authorization`` header, Base64 form first.

    Returns an empty list for a missing or malformed header.
    """
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "token":
        return []
    value = value.strip()
    if not value or len(value) > 512:
        return []
    candidates: list[str] = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if decoded and decoded.isprintable():
        candidates.append(decoded)
    if value not in candidates:
        candidates.append(value)
    return candidates


class TokenCipher:
    """Encrypts tokens partners gave the hub, with a key from HUB_SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(b"chargeindia-hub/partner-tokens\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode("utf-8")).decode("ascii")

    def decrypt(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ValueError("partner token cannot be decrypted: wrong HUB_SECRET_KEY?") from exc


# One key per database -------------------------------------------------------------
KEY_FINGERPRINT_DDL = """
CREATE TABLE IF NOT EXISTS hub_key_fingerprint (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fingerprint text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
)
"""


class SecretKeyMismatch(SystemExit):
    """This process's HUB_SECRET_KEY is not the one the database was set up with."""


def key_fingerprint(secret_key: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), b"chargeindia-hub/key-fingerprint",
                    hashlib.sha256).hexdigest()


def check_secret_key(conn, secret_key: str, *, record: bool = False) -> None:
    """Refuse a key other than the database's; ``record`` (``hub migrate``) keeps
    the fingerprint of the first key it sees.

    A schema not migrated with this check yet has nothing to compare with.
    """
    exists = conn.execute("SELECT to_regclass('hub_key_fingerprint') IS NOT NULL").fetchone()[0]
    if not exists:
        return
    fingerprint = key_fingerprint(secret_key)
    if record:
        conn.execute("INSERT INTO hub_key_fingerprint (fingerprint) VALUES (%s) ON CONFLICT DO NOTHING",
                     (fingerprint,))
    row = conn.execute("SELECT fingerprint FROM hub_key_fingerprint").fetchone()
    if row is not None and not hmac.compare_digest(row[0], fingerprint):
        raise SecretKeyMismatch(
            "hub: HUB_SECRET_KEY is not the key this database was set up with (partner tokens"
            " stored by the other hub processes could not be read); give every process the same"
            " HUB_SECRET_KEY")
