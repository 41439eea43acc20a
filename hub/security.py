"""Credentials tokens: issuing, hashing, matching, encrypting.

- Tokens the hub issues (A, C, and the B it sends when it starts a handshake)
  are 32 random bytes (URL-safe text), stored only as SHA-256 hex digests.
  A digest of a 256-bit random token needs no slow hash; lookups are by digest
  and the final comparison is constant-time.
- Tokens partners issue to the hub are encrypted with a key derived from
  ``HUB_SECRET_KEY`` (Fernet: AES-128-CBC + HMAC-SHA256, authenticated).
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
