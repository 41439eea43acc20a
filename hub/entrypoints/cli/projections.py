"""``hub projections``: how far each read model is, and rebuilding one beside the live one."""

from __future__ import annotations

import json
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

    if args.processes < 1:
        return fail("--processes must be 1 or more (the cores the database and this machine can spare)", 2)
    chosen = operations.chosen(all_projections(), args.name)
    show = sys.stderr.isatty() or args.progress
    refused, results = 0, []
    with Runtime() as rt:
        for projection in chosen:
            started = time.perf_counter()
            progress = Progress(projection.name, started) if show else None
            try:
                done = operations.rebuild(rt.app, projection, progress, processes=args.processes)
            except OperatorError as exc:
                refused += 1
                fail(str(exc))
                continue
            finally:
                if show:
                    print(file=sys.stderr)
            took = time.perf_counter() - started
            seconds = {k: round(v, 2) for k, v in (done.seconds or {}).items()}
            results.append({"name": projection.name, "events": done.events, "seconds": round(took, 2),
                            "events_per_second": round(done.events / took) if took else None,
                            "rows_changed": done.rows_changed, "processes": done.processes, "split": seconds})
            if not args.json:
                split = ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
                print(f"{projection.name}: rebuilt from {done.events} events in {took:.2f}s"
                      f"{f' in {done.processes} processes' if done.processes > 1 else ''};"
                      f" swapped in, {done.rows_changed} rows differed from the live view ({split})")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if refused else 0


class Progress:
    """One line on stderr, rewritten: position in the log, events/s and the time left."""

    def __init__(self, name: str, started: float) -> None:
        self.name, self.started, self.shown = name, started, 0.0

    def __call__(self, position: int, head: int, events: int) -> None:
        now = time.perf_counter()
        if now - self.shown < 0.5 and position < head:
            return
        self.shown = now
        elapsed = max(now - self.started, 1e-9)
        share = 100.0 if not head else min(100.0, 100.0 * position / head)
        left = (head - position) * elapsed / position if position else None
        eta = "--:--" if left is None else f"{int(left // 60)}:{int(left % 60):02d}"
        print(f"\r{self.name}: {position:,}/{head:,} ({share:5.1f}%) {events / elapsed:,.0f} events/s,"
              f" ETA {eta}  ", end="", file=sys.stderr, flush=True)


def register(sub) -> None:
    group = sub.add_parser("projections", help="read models").add_subparsers(dest="action", required=True)
    p = group.add_parser("status", help="position and lag of every follower")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = group.add_parser("rebuild", help="build projections afresh from the event log beside the live"
                         " views, then swap them in (reads keep working)")
    p.add_argument("name", nargs="?")
    p.add_argument("--progress", action="store_true", help="show progress even without a terminal")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="build objects, commands and rules in N processes, the log split by object"
                        " (each object's events stay in order); parties always in one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rebuild)
