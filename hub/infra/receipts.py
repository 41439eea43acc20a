"""Signed receipts: the hub's promise, in its answer to a push, that the push's record is in the log.

A receipt is a C2SP signed note (:mod:`hub.infra.notes`) whose text is::

    chargeindia-hub/receipt/1
    <origin>
    <log position of the request's Request.Answered record>
    <base64 leaf hash of that record: SHA-256(0x00 || position || event digest)>
    <time, RFC 3339 UTC>

signed with the checkpoint key. The ``Hub-Receipt`` response header carries the whole
note in base64 (one line). Once a checkpoint covers the position, ``hub audit prove
POSITION`` gives the inclusion proof whose leaf hash must be the receipt's.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from hub.infra.notes import NoteError, Signer, Verifier, open_note

HEADER = "Hub-Receipt"
KIND = "chargeindia-hub/receipt/1"


@dataclass(frozen=True)
class Receipt:
    origin: str
    position: int
    leaf_hash: bytes
    time: str

    def text(self) -> str:
        return (f"{KIND}\n{self.origin}\n{self.position}\n{base64.b64encode(self.leaf_hash).decode()}\n"
                f"{self.time}\n")


def make_receipt(signer: Signer, receipt: Receipt) -> str:
    """The header value: the signed note in base64."""
    return base64.b64encode(signer.sign(receipt.text()).encode()).decode()


def open_receipt(value: str, verifiers: list[Verifier]) -> tuple[Receipt, list[Verifier]]:
    """The receipt in a header value, once a known key's signature verifies; NoteError otherwise."""
    try:
        note = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise NoteError("not a receipt: expected the base64 of a signed note") from None
    text, signers = open_note(note, verifiers)
    lines = text.split("\n")
    if len(lines) != 6 or lines[0] != KIND or not lines[2].isdigit():
        raise NoteError(f"not a receipt: expected the lines of {KIND}")
    try:
        leaf = base64.b64decode(lines[3], validate=True)
    except binascii.Error:
        leaf = b""
    if len(leaf) != 32:
        raise NoteError("receipt leaf hash: expected base64 of 32 bytes")
    return Receipt(lines[1], int(lines[2]), leaf, lines[4]), signers
