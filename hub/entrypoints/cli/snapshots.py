"""``hub snapshots``: the snapshot cache beside the event log (status, rebuild, check)."""

from __future__ import annotations

import json
import sys
import time

from hub.entrypoints.cli.output import emit, print_table
from hub.entrypoints.cli.runtime import Runtime
from hub.services.operators import snapshots as operations


def _progress(args, label: str):
    show = sys.stderr.isatty() or args.progress
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if show and (done == total or done % 100 == 0):
            share = 100.0 if not total else 100.0 * done / total
            print(f"\r{label}: {done}/{total} ({share:5.1f}%, {time.monotonic() - started:.0f}s)",
                  end="\n" if done == total else "", file=sys.stderr, flush=True)

    return progress


def cmd_status(args) -> int:
    with Runtime() as rt:
        row = operations.status(rt.app)
    emit(args, row, ["snapshots", "aggregates", "bytes", "every", "cache_size"])
    return 0


def cmd_rebuild(args) -> int:
    """Fresh snapshots from the log (``--drop``: delete every snapshot first)."""
    started = time.monotonic()
    with Runtime() as rt:
        report = operations.rebuild(rt.app, drop=args.drop, progress=_progress(args, "snapshots"))
    done = {**report.as_dict(), "seconds": round(time.monotonic() - started, 2)}
    if args.json:
        print(json.dumps(done, indent=2))
    else:
        print((f"dropped {report.dropped} snapshots; " if args.drop else "")
              + f"{report.written} snapshots written from the log for {report.aggregates} aggregates"
              + (f" ({report.skipped} cannot be snapshotted)" if report.skipped else "")
              + f" in {done['seconds']:.1f}s")
    return 0


def cmd_check(args) -> int:
    """Exit 1 when a snapshot could not be used or disagreed with the log (each is named)."""
    with Runtime() as rt:
        report = operations.check(rt.app, replace=not args.no_replace, progress=_progress(args, "checked"))
    result = report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        if report.problems:
            print_table(result["problems"], ["aggregate_id", "kind", "version", "problem", "replaced_by"])
        print(f"{report.checked} snapshots checked against the log: {report.agreed} agree, "
              f"{result['disagreed']} do not" + (f", {result['replaced']} replaced" if report.problems else ""))
    return 1 if report.problems else 0


def register(sub) -> None:
    group = sub.add_parser("snapshots", help="the snapshot cache beside the event log").add_subparsers(
        dest="action", required=True)
    p = group.add_parser("status", help="how many snapshots, of how many aggregates, their size")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = group.add_parser("rebuild", help="snapshot again, from the event log, every aggregate with at least"
                         " HUB_SNAPSHOT_EVERY events")
    p.add_argument("--drop", action="store_true", help="delete every snapshot first")
    p.add_argument("--progress", action="store_true", help="show progress even without a terminal")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rebuild)
    p = group.add_parser("check", help="compare every snapshot with the log replayed to its version; name"
                         " and replace the ones that disagree or cannot be read (exit 1 if any)")
    p.add_argument("--no-replace", action="store_true", help="only report")
    p.add_argument("--progress", action="store_true", help="show progress even without a terminal")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)
