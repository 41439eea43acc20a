"""C2SP signed notes with Ed25519, and transparency-log checkpoints in them.

A checkpoint (c2sp.org/tlog-checkpoint) is the note text::

    <origin>\\n<tree size>\\n<base64 root hash>\\n

followed by a blank line and one signature line per key (c2sp.org/signed-note)::

    — <key name> base64(key ID (4 bytes) || Ed25519 signature of the note text)

``key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4]``. A verifier key is
written ``<name>+<key ID hex>+<base64(0x01 || public key)>``, a signer key
``PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || private seed)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = b"\x01"
DASH = "\u2014 "


class NoteError(ValueError):
    """A note, key or checkpoint that cannot be used; the message names what is wrong."""


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r}: expected a non-empty name without spaces or '+'")
    return name


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    name: str
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.public)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(ED25519 + self.public).decode()}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, text)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        parts = vkey.strip().split("+", 2)  # base64 may hold "+"
        if len(parts) != 3:
            raise NoteError("verifier key: expected <name>+<key id hex>+<base64 key>")
        name, ident, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
            wanted = bytes.fromhex(ident)
        except (binascii.Error, ValueError):
            raise NoteError("verifier key: the key id or the key is not valid hex/base64") from None
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("verifier key: not an Ed25519 key (type 0x01 and 32 bytes)")
        verifier = cls(_check_name(name), raw[1:])
        if verifier.id != wanted:
            raise NoteError("verifier key: the key id does not match the name and key")
        return verifier


@dataclass(frozen=True)
class Signer:
    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(_check_name(name), Ed25519PrivateKey.generate())

    @cached_property
    def verifier(self) -> Verifier:
        """Derived once (every receipt's signature line carries its key id)."""
        return Verifier(self.name, _raw_public(self.private.public_key()))

    @property
    def skey(self) -> str:
        seed = self.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                          serialization.NoEncryption())
        return (f"PRIVATE+KEY+{self.name}+{self.verifier.id.hex()}+"
                f"{base64.b64encode(ED25519 + seed).decode()}")

    @classmethod
    def parse(cls, skey: str) -> Signer:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("signing key: expected PRIVATE+KEY+<name>+<key id hex>+<base64 key>")
        try:
            raw = base64.b64decode(parts[4], validate=True)
        except binascii.Error:
            raise NoteError("signing key: the key is not valid base64") from None
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("signing key: not an Ed25519 key (type 0x01 and a 32-byte seed)")
        signer = cls(_check_name(parts[2]), Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.verifier.id.hex() != parts[3].lower():
            raise NoteError("signing key: the key id does not match the name and key")
        return signer

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end in a newline)."""
        data = text.encode()
        signature = self.private.sign(data)
        line = base64.b64encode(self.verifier.id + signature).decode()
        return f"{text}\n{DASH}{self.name} {line}\n"


def split_note(note: str) -> tuple[str, list[str]]:
    """A note's text (with its final newline) and its signature lines; NoteError if it has no such shape."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    lines = signatures[:-1].split("\n")
    bad = next((line for line in lines if not line.startswith(DASH)), None)
    if bad is not None:
        raise NoteError(f"not a signature line: {bad[:40]!r}")
    return text + "\n", lines


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, list[Verifier]]:
    """The text of a note and the known keys that signed it.

    Signatures of unknown keys are ignored; one from a known key that fails, or no
    valid signature from a known key, raises NoteError (forged, or signed by another key).
    """
    text, lines = split_note(note)
    known = {(v.name, v.id): v for v in verifiers}
    signed: list[Verifier] = []
    for line in lines:
        name, _, encoded = line[len(DASH):].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError(f"signature of {name}: not base64") from None
        verifier = known.get((name, raw[:4]))
        if verifier is None:
            continue
        if len(raw) != 68 or not verifier.verifies(text.encode(), raw[4:]):
            raise NoteError(f"the signature of {name} ({raw[:4].hex()}) does not verify (forged or altered)")
        signed.append(verifier)
    if not signed:
        raise NoteError("no signature from a known key (forged, or signed with a key you do not trust)")
    return text, signed


@dataclass(frozen=True)
class TreeHead:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> TreeHead:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("not a checkpoint: expected origin, tree size and root hash lines")
        origin, size, root = lines[:3]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"checkpoint tree size {size!r}: expected a decimal number")
        try:
            digest = base64.b64decode(root, validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) != 32:
            raise NoteError("checkpoint root hash: expected base64 of 32 bytes")
        return cls(origin, int(size), digest)


def open_checkpoint(note: str, verifiers: list[Verifier]) -> tuple[TreeHead, list[Verifier]]:
    text, signed = open_note(note, verifiers)
    return TreeHead.parse(text), signed
