"""The ``hub`` command: run the hub and operate it.

One module per command group (:mod:`.server`, :mod:`.parties`, :mod:`.routing`,
:mod:`.deliveries`, :mod:`.projections`, :mod:`.audit`,
:mod:`.snapshots`); each parses its
arguments, calls one operator service (:mod:`hub.services.operators`, or a
read model's query) and prints: tables for people, ``--json`` for scripts.
A party is named ``CC/PID`` or ``CC/PID/ROLE`` everywhere (:mod:`.output`).
A command that cannot go ahead prints one ``hub: ...`` line naming the fix and
exits 1 (2 for a command line that cannot be used as written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hub.entrypoints.cli import (
    audit,
    deliveries,
    operators,
    parties,
    projections,
    routing,
    sandbox,
    server,
    snapshots,
)
from hub.entrypoints.cli.output import Usage, fail
from hub.entrypoints.cli.runtime import Runtime
from hub.infra.database import NoHubDatabase
from hub.infra.logs import configure_logging
from hub.services.operators import OperatorError

__all__ = ["Runtime", "build_parser", "main"]

SERVER_COMMANDS = ("serve", "web", "worker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="ChargeIndia Hub: OCPI 2.2.1 roaming hub")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (server, parties, routing, deliveries, audit, projections, snapshots, operators, sandbox):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = args.command not in SERVER_COMMANDS
    configure_logging(os.environ.get("HUB_LOG_LEVEL") or ("WARNING" if quiet else "INFO"),
                      background=args.command == "worker")  # its lanes log a line per delivery attempt
    try:
        return args.func(args) or 0
    except Usage as exc:
        return fail(str(exc), 2)
    except (OperatorError, NoHubDatabase) as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
