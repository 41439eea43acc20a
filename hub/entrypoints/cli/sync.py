"""``hub parties sync CC/PID [--module M]... [--full] [--json]``: pull a partner's Sender
interfaces now, page by page, with progress on stderr (docs/operations.md "Pulling partners")."""

from __future__ import annotations

import json
import sys

from hub.entrypoints.cli.output import add_party_argument, party_of, print_table
from hub.entrypoints.cli.runtime import Runtime

COLUMNS = ["module", "state", "date_from", "pages", "received", "stored", "unchanged", "stale", "refused",
           "error"]


def cmd_sync(args) -> int:
    from hub.infra.client import OcpiClient
    from hub.services.operators.sync import sync
    from projections.sync import pull_acceptance

    name = party_of(args, "parties sync")

    def progress(result) -> None:
        if result.state == "running":
            of = f" of {result.total}" if result.total is not None else ""
            print(f"{result.party} {result.module}: page {result.pages}, {result.received}{of} objects"
                  f" ({result.stored} stored, {result.unchanged} unchanged, {result.stale} stale,"
                  f" {result.refused} refused)", file=sys.stderr)
        else:
            print(f"{result.party} {result.module}: {result.state}"
                  + (f": {result.error}" if result.error else ""), file=sys.stderr)

    with Runtime() as rt:
        client = OcpiClient(read_timeout=max(rt.settings.forward_timeout, 30.0),
                            guard=rt.settings.outbound_guard())
        try:
            results = sync(rt.app, client, name, args.module or (), full=args.full,
                           progress=None if args.quiet else progress, accept=pull_acceptance(rt.app.pool), by_operator=True)
        finally:
            client.close()
        rt.catch_up()
    rows = [r.as_dict() for r in results]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, COLUMNS)
        for row in rows:
            for reason in row["refusals"]:
                print(f"refused: {reason}")
    return 0 if all(r.state in ("completed", "skipped") for r in results) else 1


def register(group) -> None:
    p = group.add_parser("sync", help="pull a CPO's or eMSP's Sender interfaces now (incremental)")
    add_party_argument(p, role_option=False)
    p.add_argument("--module", action="append", type=str.lower, metavar="M",
                   help="a module to pull (repeatable); default: all the party's role offers"
                        " (CPO: locations, tariffs, sessions, cdrs; EMSP: tokens)")
    p.add_argument("--full", action="store_true",
                   help="pull everything, not only what changed since the last successful pull")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sync)
