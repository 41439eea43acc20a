"""``hub audit``: the tamper-evident history, its checks and its reads.

Objects are named by their owner party and id: ``hub audit history sessions IN/ECP S1``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from hub.domain.rules import MODULES
from hub.entrypoints.cli import tlog
from hub.entrypoints.cli.output import Usage, deprecated, emit, fail, lazy, optional_party, parse, print_table
from hub.entrypoints.cli.runtime import Runtime
from hub.infra.config import Settings
from hub.services.operators import OperatorError

chain = lazy("hub.services.operators.audit")

OBJECT_MODULES = ["locations", "tariffs", "sessions", "cdrs", "tokens"]
TIMELINE_COLUMNS = ["at", "position", "step", "who", "what", "outcome"]


def _moment(text: str | None, option: str):
    from hub.audit.records import parse_moment

    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise OperatorError(f"{option} {text!r}: {exc}") from None


def _object(args, command: str) -> tuple[str, str, str]:
    """The owner's country code and party id and the object id: ``IN/ECP ID``
    (or, deprecated, ``IN ECP ID``)."""
    words = args.object
    if len(words) == 2:
        name = parse(words[0])
        return name.country_code, name.party_id, words[1]
    if len(words) == 3 and "/" not in words[0]:
        deprecated(f"hub audit {command} {args.module} {' '.join(words)}",
                   f"hub audit {command} {args.module} {words[0].upper()}/{words[1].upper()} {words[2]}")
        name = parse(f"{words[0]}/{words[1]}")
        return name.country_code, name.party_id, words[2]
    raise Usage(f"audit {command}: expected the owner and the object id, CC/PID ID (IN/ECP S1)")


def _timeline(args, steps: list[dict]) -> None:
    if args.json:
        print(json.dumps(steps, indent=2))
    else:
        print_table(steps, TIMELINE_COLUMNS)


def cmd_verify(args) -> int:
    from hub.infra.chain import Checkpoint
    from hub.infra.notes import TreeHead, split_note

    if args.receipt:
        return tlog.verify_receipt(args)
    if args.proof:
        if args.checkpoint or args.from_position:
            raise Usage("--proof checks one bundle on its own: leave out --from and --checkpoint")
        return _verify_proof(args)

    def refuse(message: str) -> int:
        """Bad input or an unreadable file: exit 2 (under --json, also a JSON answer)."""
        if args.json:
            print(json.dumps({"ok": False, "error": message}))
        return fail(message, 2)

    if args.from_position < 0:
        return refuse(f"--from {args.from_position}: expected a position, 0 or more")
    files, notes = [], []
    for path in args.checkpoint or []:
        try:
            raw = Path(path).read_bytes()
            if raw.lstrip()[:1] in (b"{", b"["):  # JSON: an HMAC checkpoint of the retired kind
                files.append(Checkpoint.from_json(raw))
            else:
                note = raw.decode("utf-8")
                TreeHead.parse(split_note(note)[0])  # the shape; the signature is the verdict's
                notes.append((f"checkpoint file {path}", note))
        except OSError as exc:
            return refuse(f"cannot read checkpoint {path}: {exc.strerror or exc}")
        except ValueError as exc:
            return refuse(f"checkpoint {path} is unreadable: {exc}")
    trusted = tlog.trusted_keys(args)
    shown: list[int] = []

    def progress(position: int) -> None:
        if sys.stderr.isatty() or args.progress:
            shown.append(position)
            print(f"\rverified up to {position}", end="", file=sys.stderr)

    try:
        with Runtime() as rt:
            verdict = chain.verify_chain(rt.settings, rt.require_hub(), args.from_position, files, notes,
                                         trusted, progress)
    except chain.BadInput as exc:
        return refuse(str(exc))
    if shown:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(verdict.as_dict()))
    elif verdict.ok:
        print(f"OK: {verdict.checked} events verified up to position {verdict.head_position}, "
              f"Merkle tree of {verdict.tree_size} leaves, {verdict.checkpoints} signed checkpoints hold")
    elif verdict.break_position is None:
        print(f"FAILED: {verdict.problem}", file=sys.stderr)
    else:
        print(f"FAILED at position {verdict.break_position}: {verdict.problem}", file=sys.stderr)
    return 0 if verdict.ok else 1


def _proof_key(settings: Settings) -> bytes | None:
    """The checkpoint key as the hub takes it, without creating one (None: no key here)."""
    if settings.audit_key or settings.existing_secret_key():
        return settings.checkpoint_key()
    return None


def _verify_proof(args) -> int:
    """``hub audit verify --proof FILE``: from the file and the key alone, no database."""
    from hub.audit.proof import Check, verify_cdr_proof

    try:
        bundle = json.loads(Path(args.proof).read_bytes())
    except (OSError, ValueError) as exc:
        checks = [Check("bundle", False, f"cannot read {args.proof}: {exc}")]
    else:
        code = tlog.verify_bundle_offline(args, bundle)
        if code is not None:
            return code
        checks = verify_cdr_proof(bundle, _proof_key(Settings.from_env()), tlog.offline_verifiers(args))
    failed = [c for c in checks if not c.ok]
    if args.json:
        cdr = bundle["cdr"] if checks[0].ok else None  # the first check: the bundle is readable
        print(json.dumps({"ok": not failed, "proof": args.proof,
                          "cdr": cdr and {k: cdr.get(k) for k in ("country_code", "party_id", "id")},
                          "checks": [c.__dict__ for c in checks], "failed": [c.check for c in failed]}, indent=2))
    else:
        print_table([{"check": c.check, "result": "ok" if c.ok else "FAILED", "detail": c.detail} for c in checks],
                    ["check", "result", "detail"])
        if failed:
            print("FAILED: " + "; ".join(f"{c.check}: {c.detail}" for c in failed), file=sys.stderr)
        else:
            print(f"OK: the proof holds ({len(checks)} checks)")
    return 1 if failed else 0


def cmd_proof(args) -> int:
    """``hub audit proof cdrs IN/ECP CDR_ID``: a dispute bundle, checkable without the database."""
    from datetime import UTC, datetime

    import orjson

    from hub.audit.proof import ProofError, make_cdr_proof
    from hub.ocpi.envelope import format_datetime

    country_code, party_id, object_id = _object(args, "proof")
    with Runtime() as rt:
        try:
            bundle, taken = make_cdr_proof(rt.app, rt.settings.audit_signer(), rt.settings.log_origin,
                                           country_code, party_id, object_id,
                                           now=format_datetime(datetime.now(UTC)))
        except (LookupError, ProofError) as exc:
            return fail(str(exc.args[0]))
    data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n"
    if not args.out:
        sys.stdout.buffer.write(data)
        return 0
    Path(args.out).write_bytes(data)
    summary = {"out": args.out, "cdr": "/".join(bundle["cdr"][k] for k in ("country_code", "party_id", "id")),
               "position": bundle["event"]["position"], "receipts": len(bundle["receipts"]),
               "proofs": len(bundle["inclusion"]), "checkpoint_size": int(bundle["checkpoint"].split("\n")[1]),
               "bytes": len(data), "new_checkpoint": taken}
    emit(args, summary, ["out", "cdr", "position", "receipts", "proofs", "checkpoint_size", "bytes", "new_checkpoint"])
    return 0


def cmd_export(args) -> int:
    """The history as JSON lines on stdout, secrets removed; progress on stderr."""
    import orjson

    from hub.audit.events import object_uuid_of
    from hub.audit.export import Filters
    from hub.audit.history import AuditLog

    since, until = _moment(args.since, "--since"), _moment(args.until, "--until")
    party = optional_party(args.party)
    object_uuid = None
    if args.object:
        if not args.module:
            raise OperatorError("--object needs --module (locations, tariffs, sessions, cdrs or tokens)")
        try:
            object_uuid = object_uuid_of(args.module, args.object, args.type)
        except ValueError as exc:
            raise OperatorError(str(exc)) from None
    filters = Filters(party=str(party) if party else None, module=args.module, object_uuid=object_uuid,
                      correlation_id=args.correlation_id, since=since, until=until)
    show = args.progress or sys.stderr.isatty()

    def progress(position: int, head: int) -> None:
        print(f"\r{position}/{head} events", end="", file=sys.stderr, flush=True)

    written = 0
    with Runtime() as rt:
        try:
            out = sys.stdout.buffer
            for record in AuditLog(rt.app).records(filters, progress if show else None):
                out.write(orjson.dumps(record) + b"\n")
                written += 1
            out.flush()
        except BrokenPipeError:  # the reader stopped early (| head): not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if show:
        print(f"\n{written} records", file=sys.stderr)
    return 0


def cmd_trace(args) -> int:
    from hub.audit.history import AuditLog

    with Runtime() as rt:
        steps = AuditLog(rt.app).trace(args.correlation_id)
    if not steps:
        return fail(f"no record carries correlation id {args.correlation_id}")
    _timeline(args, steps)
    return 0


def cmd_history(args) -> int:
    from hub.audit.events import object_id_for
    from hub.audit.history import AuditLog

    country_code, party_id, object_id = _object(args, "history")
    with Runtime() as rt:
        try:
            steps = AuditLog(rt.app).history(args.module, country_code, party_id,
                                             object_id_for(args.module, object_id, args.type))
        except LookupError as exc:
            return fail(str(exc.args[0]))
    _timeline(args, steps)
    return 0


def cmd_state(args) -> int:
    from datetime import UTC, datetime

    from hub.audit.events import object_id_for
    from hub.audit.history import AuditLog
    from projections.objects import body_after

    country_code, party_id, object_id = _object(args, "state")
    at = _moment(args.at, "--at") or datetime.now(UTC)
    delivered_to = optional_party(args.as_delivered_to, "--as-delivered-to")
    with Runtime() as rt:
        try:
            state = AuditLog(rt.app).state(
                args.module, country_code, party_id, object_id_for(args.module, object_id, args.type),
                at=at, body_after=body_after, delivered_to=str(delivered_to) if delivered_to else None)
        except (LookupError, ValueError) as exc:
            return fail(str(exc.args[0]))
    if args.json:
        print(json.dumps(state, indent=2, default=str))
        return 0
    if state["body"] is None:
        return fail(f"nothing of this object had reached {state['as_delivered_to']} by {state['at']}")
    print(json.dumps(state["body"], indent=2, default=str))
    if state["deleted"]:
        print(f"hub: note: deleted (version {state['version']}, {state['recorded_at']})", file=sys.stderr)
    return 0


def register(sub) -> None:
    group = sub.add_parser("audit", help="the tamper-evident history").add_subparsers(
        dest="action", required=True)
    p = group.add_parser("verify", help="recompute the hash chain and the Merkle tree; exit 1 naming the first break")
    p.add_argument("--from", dest="from_position", type=int, default=0, help="start after this position")
    p.add_argument("--checkpoint", action="append", help="a signed checkpoint file kept outside the hub")
    p.add_argument("--key", action="append", metavar="VKEY|FILE",
                   help="trust only this verifier key (or the keys in this file); default: the hub's own list")
    p.add_argument("--proof", metavar="FILE",
                   help="check a bundle of hub audit proof, prove or consistency instead, from the file and the"
                        " public key alone (no database)")
    p.add_argument("--receipt", metavar="VALUE|FILE",
                   help="check a Hub-Receipt header value instead, with the public key alone (no database)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)
    p = group.add_parser("proof", help="a dispute bundle of one CDR, checkable by hub audit verify --proof")
    p.add_argument("module", choices=["cdrs"], type=str.lower, metavar="MODULE", help="cdrs")
    p.add_argument("object", nargs="+", metavar="CC/PID CDR_ID", help="the CDR's owner and id: IN/ECP CDR1")
    p.add_argument("--out", metavar="FILE", help="write the bundle here (default: standard output)")
    p.add_argument("--json", action="store_true", help="with --out: the summary as JSON")
    p.set_defaults(func=cmd_proof)
    tlog.register(group)
    p = group.add_parser("export", help="the history as JSON lines (secrets removed), filtered")
    p.add_argument("--party", metavar="CC/PID[/ROLE]", help="sender, addressee, owner or recipient")
    p.add_argument("--module", type=str.lower, choices=[*MODULES, "credentials", "versions"],
                   help="the OCPI module of the record")
    p.add_argument("--object", metavar="CC/PID/ID", help="one object's events (needs --module)")
    p.add_argument("--type", default="RFID", help="token type for --object of tokens (default RFID)")
    p.add_argument("--correlation-id")
    p.add_argument("--since", help="events recorded at or after this DateTime")
    p.add_argument("--until", help="events recorded before this DateTime")
    p.add_argument("--progress", action="store_true", help="progress on stderr even without a terminal")
    p.set_defaults(func=cmd_export)
    p = group.add_parser("trace", help="the story of one exchange, by correlation id")
    p.add_argument("correlation_id", metavar="CORRELATION_ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trace)
    for name, helptext in (("history", "one object over its life: pushes, stored events, deliveries"),
                           ("state", "one object as the hub knew it (or a party had received it) at a time")):
        p = group.add_parser(name, help=helptext)
        p.add_argument("module", choices=OBJECT_MODULES, type=str.lower, metavar="MODULE")
        p.add_argument("object", nargs="+", metavar="CC/PID ID", help="the owner and the object's id"
                       " (a token's UID): IN/ECP S1")
        p.add_argument("--type", default="RFID", help="token type (default RFID)")
        if name == "state":
            p.add_argument("--at", help="a DateTime (default: now)")
            p.add_argument("--as-delivered-to", metavar="CC/PID[/ROLE]",
                           help="as this party had received it (see docs/audit.md for the approximation)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_history if name == "history" else cmd_state)
