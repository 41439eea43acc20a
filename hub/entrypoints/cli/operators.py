"""``hub operators``: accounts of the web console (docs/console.md).

``add`` and ``reset`` print a generated secret once; the hub keeps only its hash.
"""

from __future__ import annotations

import json

from hub.domain.console import ROLES
from hub.entrypoints.cli.output import emit, print_table
from hub.entrypoints.cli.runtime import Runtime
from hub.services.operators import accounts

COLUMNS = ["name", "role", "added_by", "added_at", "changed_at"]


def _end_sessions(rt: Runtime):
    from hub.services.console import Console

    console = Console(rt.app, absolute=rt.settings.console_session_seconds, idle=rt.settings.console_idle_seconds)
    return console.end_sessions


def _with_secret(args, row: dict, secret: str, what: str) -> int:
    if args.json:
        print(json.dumps({**row, "secret": secret}, indent=2))
        return 0
    print_table([row], COLUMNS)
    print()
    print(f"{what} (give it to the operator over a secure channel; shown once):\n  {secret}")
    return 0


def cmd_add(args) -> int:
    with Runtime() as rt:
        row, secret = accounts.add(rt.app, args.name, args.role)
    return _with_secret(args, row, secret, "Secret")


def cmd_list(args) -> int:
    with Runtime() as rt:
        emit(args, accounts.listed(rt.app), COLUMNS)
    return 0


def cmd_remove(args) -> int:
    with Runtime() as rt:
        result = accounts.remove(rt.app, args.name, end_sessions=_end_sessions(rt))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"removed operator {args.name} (its console sessions ended; its history stays in the log)")
    return 0


def cmd_reset(args) -> int:
    with Runtime() as rt:
        row, secret = accounts.reset(rt.app, args.name, end_sessions=_end_sessions(rt))
    return _with_secret(args, row, secret, "New secret (its console sessions ended)")


def register(sub) -> None:
    group = sub.add_parser("operators", help="accounts of the web console").add_subparsers(
        dest="action", required=True)
    p = group.add_parser("add", help="add a console operator; prints its secret once")
    p.add_argument("name", help="the operator's login name, e.g. asha")
    p.add_argument("--role", choices=ROLES, required=True, help="viewer sees everything; admin may also act")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_add)
    p = group.add_parser("list", help="every console operator")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = group.add_parser("remove", help="remove an operator (its sessions end)")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_remove)
    p = group.add_parser("reset", help="a new secret for an operator (printed once; its sessions end)")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reset)
