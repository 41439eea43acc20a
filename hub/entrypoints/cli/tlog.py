"""``hub audit public-key``, ``checkpoint``, ``prove``, ``consistency``: the transparency log's commands.

``hub audit verify`` (hub/entrypoints/cli/audit.py) reads checkpoint files and
proof bundles with the helpers here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hub.entrypoints.cli.output import Usage, fail, lazy, print_table
from hub.entrypoints.cli.runtime import Runtime
from hub.infra.config import Settings

operators = lazy("hub.services.operators.audit")


def cmd_public_key(args) -> int:
    if args.new_key:
        from hub.infra.notes import NoteError, Signer

        try:
            signer = Signer.generate(args.new_key)
        except NoteError as exc:
            raise Usage(str(exc)) from None
        print(signer.skey)
        print(f"verifier key: {signer.verifier.vkey}", file=sys.stderr)
        return 0
    settings = Settings.from_env()
    url = None
    if args.all:
        with Runtime() as rt:
            url = rt.require_hub()
            settings = rt.settings
    rows = operators.public_keys(settings, url)
    if args.json:
        print(json.dumps(rows if args.all else rows[0], indent=2))
    elif args.all:
        print_table(rows, ["status", "first_used_at", "vkey"])
    else:
        print(rows[0]["vkey"])
    return 0


def cmd_checkpoint(args) -> int:
    with Runtime() as rt:
        head, note = operators.checkpoint(rt.settings, rt.require_hub())
    if args.out:
        Path(args.out).write_text(note)
    if args.json:
        print(json.dumps({"origin": head.origin, "size": head.size, "root": _b64(head.root), "note": note}))
    elif args.note:
        sys.stdout.write(note)
    else:
        print(f"signed checkpoint of size {head.size}, root {_b64(head.root)}"
              + (f", written to {args.out}" if args.out else ""))
    return 0


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


def _bundle(args, make) -> int:
    from hub.audit.transparency import ProofUnavailable
    from hub.infra.database import connect

    with Runtime() as rt:
        with connect(rt.require_hub(), rt.settings.database_schema) as conn:
            try:
                bundle = make(conn)
            except ProofUnavailable as exc:
                return fail(str(exc))
    data = json.dumps(bundle, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(data)
        print(f"written to {args.out}" + ("" if bundle.get("checkpoint", bundle.get("new_checkpoint"))
                                          else " (no signed checkpoint of that size: the proof is unsigned)"))
    else:
        sys.stdout.write(data)
    return 0


def cmd_prove(args) -> int:
    from hub.audit.transparency import inclusion_bundle

    if args.position < 1:
        raise Usage(f"POSITION {args.position}: expected a log position (1 or more), as hub audit export shows")
    return _bundle(args, lambda conn: inclusion_bundle(conn, args.position, args.size))


def cmd_consistency(args) -> int:
    from hub.audit.transparency import consistency_bundle

    return _bundle(args, lambda conn: consistency_bundle(conn, args.old_size, args.new_size))


# Used by hub audit verify ----------------------------------------------------------
def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # a value too long to be a path: the value itself
        return False


def trusted_keys(args) -> list | None:
    """The verifier keys of ``--key`` (a key, or a file of keys one a line); None: none given."""
    from hub.infra.notes import NoteError, Verifier

    if not args.key:
        return None
    keys = []
    for item in args.key:
        lines = Path(item).read_text().split() if _is_file(item) else [item]
        for line in lines:
            try:
                keys.append(Verifier.parse(line))
            except NoteError as exc:
                raise Usage(f"--key {line[:40]}: {exc}") from None
    return keys


def offline_verifiers(args) -> list:
    """``--key``, else the hub's own key when this machine has one (never generates one)."""
    keys = trusted_keys(args)
    if keys is not None:
        return keys
    settings = Settings.from_env()
    path = settings.audit_signing_key_file or settings.data_dir / "audit_signing_key"
    if settings.audit_signing_key or path.exists():
        return [settings.audit_signer().verifier]
    return []


def verify_bundle_offline(args, bundle) -> int | None:
    """Check an inclusion or consistency bundle with the public key(s) alone; None: not such a bundle."""
    from hub.audit.transparency import CONSISTENCY, INCLUSION, check_bundle

    if not isinstance(bundle, dict) or bundle.get("format") not in (INCLUSION, CONSISTENCY):
        return None
    checks = check_bundle(bundle, offline_verifiers(args))
    failed = [c for c in checks if not c.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "proof": args.proof, "checks": [c.__dict__ for c in checks],
                          "failed": [c.check for c in failed]}, indent=2))
    else:
        print_table([{"check": c.check, "result": "ok" if c.ok else "FAILED", "detail": c.detail} for c in checks],
                    ["check", "result", "detail"])
        if failed:
            print("FAILED: " + "; ".join(f"{c.check}: {c.detail}" for c in failed), file=sys.stderr)
        else:
            print(f"OK: the proof holds ({len(checks)} checks)")
    return 1 if failed else 0


def verify_receipt(args) -> int:
    """``hub audit verify --receipt VALUE|FILE``: a Hub-Receipt header value, with the public key alone."""
    from hub.infra.notes import NoteError
    from hub.infra.receipts import open_receipt

    value = Path(args.receipt).read_text() if _is_file(args.receipt) else args.receipt
    try:
        receipt, signers = open_receipt(value, offline_verifiers(args))
    except NoteError as exc:
        if args.json:
            print(json.dumps({"ok": False, "problem": str(exc)}))
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    answer = {"ok": True, "origin": receipt.origin, "position": receipt.position,
              "leaf_hash": _b64(receipt.leaf_hash), "time": receipt.time,
              "signed_by": [f"{v.name}+{v.id.hex()}" for v in signers]}
    if args.json:
        print(json.dumps(answer))
    else:
        print(f"OK: the hub promised at {receipt.time} that its record at position {receipt.position}"
              f" (leaf {answer['leaf_hash']}) is in the log {receipt.origin}")
    return 0


SUBSCRIPTION_COLUMNS = ["party", "url", "delivered", "pending", "failed", "last_size_delivered"]


def cmd_subscribe(args) -> int:
    from hub.entrypoints.cli.output import parse
    from hub.services.operators import operator_name

    with Runtime() as rt:
        platform_id, party = operators.platform_of(rt.app, parse(args.party))
        done = operators.subscribe(rt.app, rt.settings.outbound_guard(), platform_id, party, args.url,
                                   by=operator_name())
    if args.json:
        print(json.dumps({**done, "platform_id": platform_id}))
    else:
        print(f"{party}'s platform gets every new checkpoint by POST to {args.url}"
              " (the worker queues them; `hub audit subscriptions` shows how they stand)")
    return 0


def cmd_unsubscribe(args) -> int:
    from hub.entrypoints.cli.output import parse
    from hub.services.operators import operator_name

    with Runtime() as rt:
        platform_id, party = operators.platform_of(rt.app, parse(args.party))
        was = operators.unsubscribe(rt.app, platform_id, by=operator_name())
    if args.json:
        print(json.dumps({"party": party, "platform_id": platform_id, "was_subscribed": was}))
    elif was:
        print(f"{party}'s platform gets no more checkpoints by push (queued ones are dropped)")
    else:
        print(f"{party}'s platform was not subscribed to checkpoints; nothing changed")
    return 0


def cmd_subscriptions(args) -> int:
    with Runtime() as rt:
        rows = operators.subscriptions(rt.app)
    if args.json:
        print(json.dumps(rows))
    else:
        print_table(rows, SUBSCRIPTION_COLUMNS)
    return 0


def register(group) -> None:
    p = group.add_parser("public-key", help="the verifier key of the checkpoints (C2SP signed-note form)")
    p.add_argument("--all", action="store_true", help="also every older key the hub signed with")
    p.add_argument("--new-key", metavar="NAME", help="print a new signing key (for HUB_AUDIT_SIGNING_KEY)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_public_key)
    p = group.add_parser("checkpoint", help="bring the Merkle tree up to the log and sign its head now")
    p.add_argument("--out", help="also write the signed checkpoint (C2SP note) to this file")
    p.add_argument("--note", action="store_true", help="print the signed note itself")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_checkpoint)
    p = group.add_parser("prove", help="an inclusion proof of the event at a log position")
    p.add_argument("position", type=int, metavar="POSITION", help="the event's position (hub audit export)")
    p.add_argument("--size", type=int, help="the tree size to prove against (default: the latest checkpoint)")
    p.add_argument("--out", metavar="FILE", help="write the bundle here (default: standard output)")
    p.set_defaults(func=cmd_prove)
    p = group.add_parser("consistency", help="a consistency proof between two tree sizes")
    p.add_argument("old_size", type=int, metavar="OLD_SIZE")
    p.add_argument("new_size", type=int, metavar="NEW_SIZE")
    p.add_argument("--out", metavar="FILE", help="write the bundle here (default: standard output)")
    p.set_defaults(func=cmd_consistency)
    p = group.add_parser("subscribe", help="push every new checkpoint to a partner (a witness) at this URL")
    p.add_argument("party", metavar="CC/PID[/ROLE]", help="a party of the partner's platform")
    p.add_argument("url", metavar="URL", help="where the hub POSTs each checkpoint (passes the outbound guard)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_subscribe)
    p = group.add_parser("unsubscribe", help="stop pushing checkpoints to a partner")
    p.add_argument("party", metavar="CC/PID[/ROLE]")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_unsubscribe)
    p = group.add_parser("subscriptions", help="the partners that get checkpoints by push, and how it stands")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_subscriptions)
