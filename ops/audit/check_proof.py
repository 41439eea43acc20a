"""Check a ``hub audit prove`` bundle with nothing but the hub's verifier key.

    python check_proof.py proof.json 'hub.example/audit+1a2b3c4d+AbC...'

An independent reimplementation (docs/audit.md, "Checking a proof yourself"): it
uses only hashlib, base64, json and an Ed25519 verifier, none of the hub's code.
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def event_digest(event: dict) -> bytes:  # 1. the event's own digest
    ident, topic, state = event["originator_id"].encode(), event["topic"].encode(), event["state"].encode()
    return sha256(len(ident).to_bytes(4, "big") + ident + int(event["version"]).to_bytes(8, "big")
                  + len(topic).to_bytes(4, "big") + topic + len(state).to_bytes(8, "big") + state)


def root_from_path(index: int, size: int, leaf: bytes, path: list) -> bytes:  # 3. RFC 9162, 2.1.3.2
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            sys.exit("FAILED: the proof is too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        sys.exit("FAILED: the proof is too short")
    return r


def open_checkpoint(note: str, vkey: str) -> tuple[int, bytes]:  # 4. C2SP signed note and checkpoint
    name, key_id, key = vkey.split("+", 2)
    key = base64.b64decode(key)
    if key[:1] != b"\x01" or sha256(name.encode() + b"\n" + key)[:4].hex() != key_id:
        sys.exit("FAILED: not an Ed25519 verifier key")
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    for line in signatures.splitlines():
        signer, signature = line.removeprefix("\u2014 ").rsplit(" ", 1)
        signature = base64.b64decode(signature)
        if signer == name and signature[:4].hex() == key_id:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(signature[4:], text.encode())  # raises if forged
            origin, size, root = text.splitlines()[:3]
            return int(size), base64.b64decode(root)
    sys.exit("FAILED: the checkpoint has no signature by this key")


def main(path: str, vkey: str) -> None:
    bundle = json.load(open(path))
    event = bundle["event"]
    leaf = sha256(b"\x00" + int(event["position"]).to_bytes(8, "big") + event_digest(event))  # 2. the leaf
    path_hashes = [base64.b64decode(h) for h in bundle["inclusion"]]
    size, root = open_checkpoint(bundle["checkpoint"], vkey)
    if size != bundle["tree_size"] or root_from_path(bundle["leaf_index"], size, leaf, path_hashes) != root:
        sys.exit(f"FAILED: event {event['position']} is not in the signed tree of size {size}")
    print(f"OK: event {event['position']} ({event['topic']}) is leaf {bundle['leaf_index']} of the signed"
          f" tree of size {size}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
