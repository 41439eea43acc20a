"""``hub parties check CC/PID [--role ROLE] [--write] [--module M]... [--json]``: probe a registered
partner's OCPI 2.2.1 interfaces, one row per check, progress on stderr (docs/operations.md
"Checking a partner before it goes live"). Exit 0: everything conforms; 1: a check failed (or the
check could not run: one ``hub: ...`` line); 2: a command line that cannot be used."""

from __future__ import annotations

import json
import sys

from hub.entrypoints.cli.output import add_party_argument, party_of, print_table
from hub.entrypoints.cli.runtime import Runtime

COLUMNS = ["step", "module", "interface", "verdict", "ms", "detail"]


def _progress(row: dict) -> None:
    what = " ".join(str(p) for p in (row["step"], row["module"], row["interface"]) if p)
    took = f" ({row['ms']} ms)" if row["ms"] is not None else ""
    print(f"{what}: {row['verdict']}{took}", file=sys.stderr)


def cmd_check(args) -> int:
    from hub.infra.client import OcpiClient
    from hub.services.operators import operator_name
    from hub.services.operators.check import check

    name = party_of(args, "parties check")
    with Runtime() as rt:
        client = OcpiClient(read_timeout=max(rt.settings.forward_timeout, 30.0),
                            guard=rt.settings.outbound_guard())
        try:
            report = check(rt.app, client, name, role=args.check_role, write=args.write, modules=args.module or (),
                           progress=None if args.quiet else _progress, by_operator=operator_name())
        finally:
            client.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_table(report.rows, COLUMNS)
        counts = report.counts()
        print(f"\n{report.party}: {'conforms' if report.ok else 'does NOT conform'} ({counts['pass']} passed,"
              f" {counts['fail']} failed, {counts['warn']} warnings, {counts['skip']} skipped;"
              f" hub audit trace {report.correlation_id})")
    return 0 if report.ok else 1


def register(group) -> None:
    p = group.add_parser("check", help="probe a registered partner's OCPI 2.2.1 interfaces (conformance)")
    add_party_argument(p, role_option=False)
    p.add_argument("--role", dest="check_role", type=str.upper, help="which role of the ids to check (or write CC/PID/ROLE)")
    p.add_argument("--write", action="store_true",
                   help="also send test objects to its Receivers (only a party in test mode)")
    p.add_argument("--module", action="append", type=str.lower, metavar="M",
                   help="probe only this module's interfaces (repeatable); versions, details and roles always")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)
