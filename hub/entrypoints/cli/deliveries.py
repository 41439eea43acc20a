"""``hub deliveries``: what the hub owes partners; retry and replay.

The queue's own functions are the scheduler's (``scheduler.outbox``, ``scheduler.replay``); the
operator services in :mod:`hub.services.operators.deliveries` get them from here.
"""

from __future__ import annotations

import json

from hub.entrypoints.cli.output import Usage, deprecated, emit, optional_party, parse
from hub.entrypoints.cli.runtime import Runtime
from hub.services.operators import deliveries
from hub.services.operators.deliveries import REPLAY_MODULES

DELIVERY_COLUMNS = ["id", "state", "module", "method", "object_key", "recipient", "attempts",
                    "last_http_status", "last_status_code", "last_error"]
STATS_COLUMNS = ["party", "pending", "oldest_pending_s", "retries", "delivered", "failed", "failure_rate"]


def _plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "as_integer_ratio") and not isinstance(value, int):  # Decimal
        return float(value)
    return value


def cmd_list(args) -> int:
    from scheduler.outbox import list_deliveries

    party = optional_party(args.party)
    with Runtime() as rt:
        rows = deliveries.listed(list_deliveries, rt.app.pool, party, args.failed, args.limit)
    emit(args, [{k: _plain(v) for k, v in r.items()} for r in rows], DELIVERY_COLUMNS)
    return 0


def cmd_retry(args) -> int:
    from scheduler.outbox import list_deliveries, requeue

    party = optional_party(args.party)
    with Runtime() as rt:
        ids = deliveries.retry(rt.app, list_deliveries, requeue, args.ids, party, args.all_failed)
    if args.json:
        print(json.dumps({"requeued": ids}))
    else:
        print(f"requeued {len(ids)} deliveries" + (f": {', '.join(map(str, ids))}" if ids else ""))
    return 0


def cmd_stats(args) -> int:
    from scheduler.outbox import stats

    with Runtime() as rt:
        rows = [{k: _plain(v) for k, v in r.items()} for r in stats(rt.app.pool)]
    emit(args, rows, STATS_COLUMNS)
    return 0


def _replayed_party(args):
    """``replay IN/ABC[/ROLE]``; (deprecated) ``replay --party IN/ABC [--role ROLE]``."""
    if args.party and args.party_option:
        raise Usage("deliveries replay: name the party once, as CC/PID[/ROLE]")
    if args.party:
        name = parse(args.party)
    elif args.party_option:
        name = parse(args.party_option, "--party")
        deprecated(f"hub deliveries replay --party {args.party_option}", f"hub deliveries replay {name}")
    else:
        raise Usage("deliveries replay: name the party, e.g. hub deliveries replay IN/EMP")
    if args.role:
        deprecated(f"--role {args.role}", f"hub deliveries replay {name.ids}/{args.role.upper()}")
        name = parse(f"{name.ids}/{args.role}")
    return name


def cmd_replay(args) -> int:
    from hub.ocpi.envelope import parse_datetime
    from scheduler.replay import replay

    try:
        since = parse_datetime(args.since) if args.since else None
    except ValueError as exc:
        raise Usage(f"--since {args.since!r}: {exc}") from None
    party = _replayed_party(args)
    with Runtime() as rt:
        correlation_id, queued = deliveries.replay(rt.app, replay, party, args.module, since, args.since)
    if args.json:
        print(json.dumps({"correlation_id": correlation_id, "queued": queued}))
        return 0
    for key, counts in queued.items():
        print(f"{key}: queued " + ", ".join(f"{n} {m}" for m, n in counts.items())
              + f" (correlation id {correlation_id})")
    return 0


def register(sub) -> None:
    group = sub.add_parser("deliveries", help="what the hub owes partners").add_subparsers(
        dest="action", required=True)
    p = group.add_parser("list", help="recent deliveries, newest first")
    p.add_argument("--failed", action="store_true", help="only parked (failed) deliveries")
    p.add_argument("--party", metavar="CC/PID[/ROLE]", help="only to this recipient party")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = group.add_parser("retry", help="requeue failed deliveries")
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--party", metavar="CC/PID[/ROLE]", help="every failed delivery to this party")
    p.add_argument("--all-failed", action="store_true", help="every failed delivery")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retry)
    p = group.add_parser("stats", help="queue depth, oldest age and failure rate per party")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)
    p = group.add_parser("replay", help="resend the current state (and every CDR) to a partner")
    p.add_argument("party", nargs="?", metavar="CC/PID[/ROLE]", help="the receiving party, IN/EMP")
    p.add_argument("--party", dest="party_option", metavar="CC/PID", help="deprecated: name the party first")
    p.add_argument("--role", help="deprecated: write CC/PID/ROLE")
    p.add_argument("--module", choices=list(REPLAY_MODULES))
    p.add_argument("--since", help="only objects with last_updated at or after this DateTime")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)
