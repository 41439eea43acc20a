"""``hub parties``: onboard partners, see their state, suspend and resume them.

A party's STATE is one of PLANNED, CONNECTED, OFFLINE, SUSPENDED, UNREGISTERED
(:data:`hub.domain.parties.PARTY_STATES`, docs/operations.md "Party states").
"""

from __future__ import annotations

import json
import os
import sys
from uuid import UUID

from hub.entrypoints.cli import check, sync
from hub.entrypoints.cli.output import Usage, add_party_argument, deprecated, emit, party_of, print_table
from hub.entrypoints.cli.runtime import Runtime
from hub.services.operators import parties
from hub.services.operators.names import ROLES, PartyName, parse_party_name

PARTY_COLUMNS = ["party", "name", "state", "platform_id", "last_seen_at"]
PARTNER_TOKEN_ENV = "HUB_PARTNER_TOKEN"


def party_row(row: dict) -> dict:
    """A ``list_parties`` row as operators see it (one state, no internal columns)."""
    out = {"party": f"{row['country_code']}/{row['party_id']}/{row['role']}",
           "country_code": row["country_code"], "party_id": row["party_id"], "role": row["role"],
           "name": row["name"], "state": row["state"], "platform_id": str(row["platform_id"]),
           "versions_url": row.get("versions_url")}
    for key in ("onboarded_at", "last_updated", "last_seen_at"):
        out[key] = row[key].isoformat() if row.get(key) is not None else None
    return out


def _rows(rt: Runtime, name: PartyName | None = None) -> list[dict]:
    from projections.queries import find_party, list_parties

    if name is None:
        return [party_row(r) for r in list_parties(rt.app.pool)]
    return [party_row(r) for r in find_party(rt.app.pool, name.country_code, name.party_id, name.role)]


def _added_name(args) -> PartyName:
    """``IN/ABC/CPO``, or (deprecated) ``--role CPO --country-code IN --party-id ABC``."""
    old = [args.role, args.country_code, args.party_id]
    if args.party and any(old):
        raise Usage("parties add: name the party once, as CC/PID/ROLE (IN/ABC/CPO)")
    if args.party:
        try:
            name = parse_party_name(args.party)
        except ValueError as exc:
            raise Usage(str(exc)) from None
        if not name.role:
            raise Usage(f"parties add {args.party}: add the role, {name.ids}/CPO (or {', '.join(ROLES[1:])})")
        return name
    if not all(old):
        raise Usage("parties add: name the party as CC/PID/ROLE, e.g. hub parties add IN/ABC/CPO --name NAME")
    role = args.role.upper()
    if role not in ROLES:
        raise Usage(f"--role {role}: must be one of {', '.join(ROLES)}")
    new = f"{args.country_code}/{args.party_id}/{role}".upper()
    deprecated(f"hub parties add --role {args.role} --country-code {args.country_code} --party-id"
               f" {args.party_id}", f"hub parties add {new}")
    return parse_party_name(new)


def cmd_add(args) -> int:
    name = _added_name(args)
    with Runtime() as rt:
        party, platform, token_a = parties.add(rt.app, name, args.name, args.platform, rt.catch_up)
        if args.test:
            party = parties.set_testing(rt.app, name, True, rt.catch_up)
        result = {"party": party.key, "country_code": party.country_code, "party_id": party.party_id,
                  "role": party.role, "name": party.name, "state": party.state,
                  "testing": party.testing, "platform_id": str(platform.id), "token_a": token_a,
                  "versions_url": rt.settings.versions_url}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print_table([result], ["party", "name", "state", "platform_id"])
    print()
    if token_a:
        print(f"Token A (give it to the partner over a secure channel; shown once):\n  {token_a}")
    print(f"Hub versions URL:\n  {result['versions_url']}")
    return 0


def cmd_list(args) -> int:
    with Runtime() as rt:
        emit(args, _rows(rt), PARTY_COLUMNS)
    return 0


def cmd_show(args) -> int:
    name = party_of(args, "parties show")
    with Runtime() as rt:
        party, platform = parties.describe(rt.app, name)
        rows = _rows(rt, PartyName(party.country_code, party.party_id, party.role))
        from hub.services.operators.sync import pulls_of

        pulls = pulls_of(rt.app, party)
    row = rows[0] if rows else {}
    row.update({"party": party.key, "name": party.name, "state": party.state,
                "client_info_status": party.status, "testing": party.testing, "platform_id": str(platform.id),
                "versions_url": platform.versions_url, "version": platform.ocpi_version,
                "endpoints": platform.endpoints, "pulls": pulls})
    if args.json:
        print(json.dumps(row, indent=2, default=str))
        return 0
    for key in ["party", "name", "state", "client_info_status", "testing", "platform_id", "versions_url", "version",
                "onboarded_at", "last_updated", "last_seen_at"]:
        print(f"{key:18} {row.get(key) if row.get(key) is not None else ''}")
    print("endpoints:")
    print_table(platform.endpoints, ["identifier", "role", "url"])
    if pulls:
        print("pulls (hub parties sync):")
        print_table(pulls, ["module", "last_success", "last_run", "last_state"])
    return 0


def cmd_suspend(args) -> int:
    name = party_of(args, "parties suspend")
    with Runtime() as rt:
        party = parties.suspend(rt.app, name, args.reason, rt.catch_up)
        emit(args, _rows(rt, PartyName(party.country_code, party.party_id, party.role))[0], PARTY_COLUMNS)
    return 0


def cmd_resume(args) -> int:
    name = party_of(args, "parties resume")
    with Runtime() as rt:
        party = parties.resume(rt.app, name, rt.catch_up)
        emit(args, _rows(rt, PartyName(party.country_code, party.party_id, party.role))[0], PARTY_COLUMNS)
    return 0


def cmd_test_mode(args) -> int:
    name = party_of(args, "parties test-mode")
    with Runtime() as rt:
        party = parties.set_testing(rt.app, name, args.mode == "on", rt.catch_up)
    emit(args, {"party": party.key, "name": party.name, "state": party.state, "testing": party.testing},
         ["party", "name", "state", "testing"])
    return 0


def _partner_token(args) -> str:
    """The token the partner issued: ``--token -`` reads it from stdin, no
    ``--token`` takes HUB_PARTNER_TOKEN (neither shows it in ps or shell history)."""
    if args.token == "-":
        return sys.stdin.readline().strip()
    if args.token is not None:
        return args.token.strip()
    return os.environ.get(PARTNER_TOKEN_ENV, "").strip()


def cmd_connect(args) -> int:
    from hub.infra.client import OcpiClient

    token = _partner_token(args)
    if not token:
        raise Usage(f"the partner's token is missing: set {PARTNER_TOKEN_ENV}, or pipe it to --token -")
    with Runtime() as rt:
        client = OcpiClient(read_timeout=rt.settings.forward_timeout, guard=rt.settings.outbound_guard())
        platform, connected = parties.connect(rt.app, client, args.versions_url, token, args.platform,
                                              rt.catch_up)
    rows = [{"party": p.key, "country_code": p.country_code, "party_id": p.party_id, "role": p.role,
             "name": p.name, "state": p.state, "platform_id": str(platform.id)} for p in connected]
    emit(args, rows, ["party", "name", "state", "platform_id"])
    return 0


def register(sub) -> None:
    group = sub.add_parser("parties", help="onboard and manage partners").add_subparsers(
        dest="action", required=True)
    p = group.add_parser("add", help="onboard a party; prints its token A and the versions URL")
    p.add_argument("party", nargs="?", metavar="CC/PID/ROLE", help="the party to onboard, IN/ABC/CPO")
    p.add_argument("--name", required=True)
    p.add_argument("--platform", type=UUID, help="add the party to this existing platform (no new token A)")
    p.add_argument("--role", help="deprecated: write CC/PID/ROLE")
    p.add_argument("--country-code", help="deprecated: write CC/PID/ROLE")
    p.add_argument("--party-id", help="deprecated: write CC/PID/ROLE")
    p.add_argument("--test", action="store_true",
                   help="mark it as a test party (`hub parties check --write` may send it test objects)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_add)
    p = group.add_parser("list", help="every party with its state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    for action, func, helptext in (("show", cmd_show, "one party and its platform's endpoints"),
                                   ("suspend", cmd_suspend, "refuse and stop delivering to a party"),
                                   ("resume", cmd_resume, "lift a suspension")):
        p = group.add_parser(action, help=helptext)
        add_party_argument(p)
        p.add_argument("--json", action="store_true")
        if action == "suspend":
            p.add_argument("--reason", default="suspended by the hub operator")
        p.set_defaults(func=func)
    p = group.add_parser("connect", help="start the credentials handshake towards a partner")
    p.add_argument("--versions-url", required=True)
    p.add_argument("--token", help="the token A the partner issued to the hub; '-' reads it from stdin;"
                   f" left out, it comes from {PARTNER_TOKEN_ENV} (either keeps it out of ps and history)")
    p.add_argument("--platform", type=UUID, help="reconnect this existing platform")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connect)
    p = group.add_parser("test-mode", help="mark a party as a test party (on) or not (off)")
    add_party_argument(p, role_option=False)
    p.add_argument("mode", choices=("on", "off"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_test_mode)
    sync.register(group)
    check.register(group)
