"""``hub routing``: rules between CPOs and eMSP-side parties, and why a message would pass."""

from __future__ import annotations

import json

from hub.domain.rules import MODULES
from hub.entrypoints.cli.output import emit, parse, print_table
from hub.entrypoints.cli.runtime import Runtime
from hub.services.operators import routing_rules

RULE_LIST_COLUMNS = ["cpo", "emsp", "module", "effect", "reason", "updated_at"]


def cmd_set(args) -> int:
    cpo, emsp = parse(args.cpo), parse(args.emsp)
    with Runtime() as rt:
        row, changed = routing_rules.set_rule(rt.app, cpo, emsp, args.module, args.effect, args.reason,
                                              rt.catch_up)
    if args.json:
        print(json.dumps({**row, "changed": changed}, indent=2))
        return 0
    print_table([row], RULE_LIST_COLUMNS)
    if not changed:
        print("(unchanged: this rule was already in force)")
    return 0


def cmd_remove(args) -> int:
    cpo, emsp = parse(args.cpo), parse(args.emsp)
    with Runtime() as rt:
        cpo_key, emsp_key = routing_rules.remove_rule(rt.app, cpo, emsp, args.module, rt.catch_up)
    if args.json:
        print(json.dumps({"cpo": cpo_key, "emsp": emsp_key, "module": args.module, "removed": True}, indent=2))
    else:
        scope = "all modules" if args.module == "*" else args.module
        print(f"removed the rule for {cpo_key} / {emsp_key} ({scope})")
    return 0


def cmd_list(args) -> int:
    from projections.rules import list_rules

    with Runtime() as rt:
        rows = [{**r, "updated_at": r["updated_at"].isoformat()} for r in list_rules(rt.app.pool)]
    emit(args, rows, RULE_LIST_COLUMNS)
    return 0


def cmd_explain(args) -> int:
    from projections.recipients import explain

    sender, receiver = parse(args.sender), parse(args.receiver)
    with Runtime() as rt:
        result = routing_rules.explain(rt.app, lambda cpo, emsp, module: explain(rt.app.pool, cpo, emsp, module),
                                       sender, receiver, args.module)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    verdict = "delivered" if result["delivered"] else "NOT delivered"
    print(f"{result['sender']} -> {result['receiver']} ({args.module}): {verdict}")
    print(f"decided by: {result['reason']}")
    if result["rules"]["reason"] != result["reason"]:
        allowed = "allow" if result["rules"]["allowed"] else "deny"
        print(f"routing rules alone: {allowed} ({result['rules']['reason']})")
    if result["rule"]:
        print(f"rule set by {result['rule']['set_by']} at {result['rule']['updated_at']}")
    return 0


def register(sub) -> None:
    group = sub.add_parser("routing", help="routing rules between CPOs and eMSPs").add_subparsers(
        dest="action", required=True)
    for effect in ("allow", "deny"):
        p = group.add_parser(effect, help=f"{effect} traffic between a CPO and an eMSP-side party")
        p.add_argument("cpo", metavar="CPO_PARTY", help="the CPO party, IN/ABC (or IN/ABC/CPO)")
        p.add_argument("emsp", metavar="EMSP_PARTY", help="the eMSP-side party, IN/EMP (or IN/EMP/ROLE)")
        p.add_argument("--module", type=str.lower, choices=[*MODULES, "*"], default="*",
                       help="only this module (default: every module)")
        p.add_argument("--reason", default="", help="why (kept in the rule and the event log)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_set, effect=effect)
    p = group.add_parser("remove", help="remove a rule (its history stays in the event log)")
    p.add_argument("cpo", metavar="CPO_PARTY")
    p.add_argument("emsp", metavar="EMSP_PARTY")
    p.add_argument("--module", type=str.lower, choices=[*MODULES, "*"], default="*")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_remove)
    p = group.add_parser("list", help="every rule in force")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = group.add_parser("explain", help="would a message pass, and which rule decides")
    p.add_argument("sender", metavar="SENDER", help="IN/ABC (or IN/ABC/ROLE)")
    p.add_argument("receiver", metavar="RECEIVER", help="IN/EMP (or IN/EMP/ROLE)")
    p.add_argument("--module", type=str.lower, choices=MODULES, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)
