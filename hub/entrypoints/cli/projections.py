"""``hub projections``: how far each read model is, and rebuilding one beside the live one."""

from __future__ import annotations

import sys
import time

from hub.entrypoints.cli.output import emit, fail
from hub.entrypoints.cli.runtime import Runtime
from hub.services.operators import OperatorError
from hub.services.operators import projections as operations


def cmd_status(args) -> int:
    from projections import all_projections
    from scheduler.worker import dispatchers

    with Runtime() as rt:
        rows = operations.status(rt.app, [*all_projections(), *dispatchers()])
    emit(args, rows, ["name", "position", "head", "lag"])
    return 0


def cmd_rebuild(args) -> int:
    """Each projection built afresh beside its live tables, then swapped in."""
    from projections import all_projections

    chosen = operations.chosen(all_projections(), args.name)
    show = sys.stderr.isatty() or args.progress
    refused = 0
    with Runtime() as rt:
        for projection in chosen:
            started = time.perf_counter()

            def progress(position: int, head: int, name=projection.name) -> None:
                if show:
                    share = 100.0 if not head else min(100.0, 100.0 * position / head)
                    print(f"\r{name}: {position}/{head} ({share:5.1f}%)", end="", file=sys.stderr)

            try:
                done = operations.rebuild(rt.app, projection, progress)
            except OperatorError as exc:
                refused += 1
                fail(str(exc))
                continue
            finally:
                if show:
                    print(file=sys.stderr)
            print(f"{projection.name}: rebuilt from {done.events} events in {time.perf_counter() - started:.2f}s;"
                  f" swapped in, {done.rows_changed} rows differed from the live view")
    return 1 if refused else 0


def register(sub) -> None:
    group = sub.add_parser("projections", help="read models").add_subparsers(dest="action", required=True)
    p = group.add_parser("status", help="position and lag of every follower")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = group.add_parser("rebuild", help="build projections afresh from the event log beside the live"
                         " views, then swap them in (reads keep working)")
    p.add_argument("name", nargs="?")
    p.add_argument("--progress", action="store_true", help="show progress even without a terminal")
    p.set_defaults(func=cmd_rebuild)
