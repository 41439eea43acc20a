"""The ``hub`` command: run the hub and operate it.

Tables for people, ``--json`` for scripts. The wiring to ``handlers``,
``projections`` and ``scheduler`` is imported lazily here (``hub`` itself
imports none of them).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from uuid import UUID

from hub.infra.config import Settings
from hub.infra.logs import configure_logging


# Output ---------------------------------------------------------------------
def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def emit(args, rows, columns) -> None:
    if getattr(args, "json", False):
        print(json.dumps(rows, default=str, indent=2))
    else:
        print_table(rows if isinstance(rows, list) else [rows], columns)


def fail(message: str, code: int = 1) -> int:
    print(f"hub: {message}", file=sys.stderr)
    return code


# Database and application -----------------------------------------------------
class Runtime:
    """Settings, the database URL (embedded server if needed) and the application."""

    def __init__(self) -> None:
        from hub.infra.database import resolve_database_url

        self.settings = Settings.from_env()
        self.database_url, self.server = resolve_database_url(self.settings)
        self.settings = self.settings.with_database(self.database_url)
        self._app = None

    @property
    def app(self):
        if self._app is None:
            from hub.services.application import Hub

            self._app = Hub(self.settings, self.database_url)
        return self._app

    def catch_up(self, _position: int | None = None) -> None:
        """Bring the views up to date now (operator commands read their own writes)."""
        from hub.infra.eventlog import EventLog
        from projections import all_projections

        log = EventLog(self.app)
        for projection in all_projections():
            log.catch_up(projection)

    def migrate(self) -> None:
        from hub.services.schema import migrate
        from projections import all_projections
        from scheduler.outbox import DDL
        from scheduler.worker import dispatchers

        migrate(self.settings, self.database_url, [*all_projections(), *dispatchers()], DDL)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


# Commands ----------------------------------------------------------------------
def cmd_migrate(args) -> int:
    rt = Runtime()
    rt.migrate()
    print("schema is up to date")
    return 0


def cmd_web(args) -> int:
    from gunicorn.app.base import BaseApplication

    from hub.entrypoints.wsgi import LazyApp

    settings = Settings.from_env()
    if not settings.database_url:
        return fail("hub web needs HUB_DATABASE_URL (use hub serve for the embedded database)")

    class WebServer(BaseApplication):
        def load_config(self) -> None:
            # hub/gunicorn_config.py decides every setting; the command line picks bind and size.
            from hub.entrypoints import gunicorn_config

            for name, value in vars(gunicorn_config).items():
                if name in self.cfg.settings:
                    self.cfg.set(name, value)
            self.cfg.set("bind", [part.strip() for part in args.bind.split(",") if part.strip()])
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread" if args.threads > 1 else "sync")

        def load(self):
            return LazyApp(settings)

    WebServer().run()
    return 0


def cmd_worker(args) -> int:
    from scheduler.worker import Worker

    settings = Settings.from_env()
    if not settings.database_url:
        return fail("hub worker needs HUB_DATABASE_URL (use hub serve for the embedded database)")
    Worker(settings, settings.database_url).run_forever()
    return 0


#: A child that exits this soon after starting did not start; this many in a row and serve gives up.
QUICK_EXIT_SECONDS = 20.0
QUICK_EXITS_TO_GIVE_UP = 3


def _bind_host_port(bind: str) -> tuple[str, int] | None:
    """Host and port of a gunicorn ``--bind`` (None for a unix socket or file descriptor)."""
    bind = bind.split(",")[0].strip()
    if bind.startswith(("unix:", "fd://")):
        return None
    host, sep, port = bind.rpartition(":")
    if not sep:
        host, port = bind, "8000"
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def _address_in_use(bind: str) -> bool:
    import errno
    import socket

    address = _bind_host_port(bind)
    if address is None:
        return False
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _health_url(bind: str) -> str | None:
    """``/health`` of the web server as this machine reaches it (None: cannot tell)."""
    address = _bind_host_port(bind)
    if address is None:
        return None
    host, port = address
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}/health" if ":" in host else f"http://{host}:{port}/health"


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=0.5) as answer:
            return answer.status == 200
    except (OSError, ValueError):
        return False


def cmd_serve(args) -> int:
    """Database, schema, then one web and one worker process, supervised.

    "hub serving" is printed once ``/health`` answers. A child that keeps
    failing as it starts (a port already taken, a bad setting) is not
    restarted for ever: serve stops and exits non-zero.
    """
    if _address_in_use(args.bind):
        return fail(f"cannot listen on {args.bind}: the address is already in use"
                    " (another hub or program runs there; pick another with --bind)")
    rt = Runtime()
    rt.migrate()
    env = dict(os.environ)
    env["HUB_DATABASE_URL"] = rt.database_url
    env["HUB_SECRET_KEY"] = rt.settings.resolved_secret_key()
    env["HUB_DATA_DIR"] = str(rt.settings.data_dir)
    from contextlib import ExitStack

    from hub.infra.metrics import MULTIPROC_ENV, multiprocess_directory

    cleanup = ExitStack()  # the web server's Prometheus directory, for as long as we serve
    env[MULTIPROC_ENV] = str(cleanup.enter_context(multiprocess_directory(rt.settings.data_dir)))
    commands = {
        "web": [sys.executable, "-m", "hub", "web", "--bind", args.bind,
                "--workers", str(args.workers), "--threads", str(args.threads)],
        "worker": [sys.executable, "-m", "hub", "worker"],
    }
    children: dict[str, subprocess.Popen] = {}
    started: dict[str, float] = {}
    quick_exits = dict.fromkeys(commands, 0)
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    def launch(name: str) -> None:
        children[name] = subprocess.Popen(commands[name], env=env)
        started[name] = time.monotonic()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for name in commands:
        launch(name)
    health = _health_url(args.bind)
    announced, given_up = False, None
    while not stopping and given_up is None:
        if not announced and (health is None or _answers(health)):
            announced = True
            print(f"hub serving {rt.settings.base_url}/ocpi/versions on {args.bind}", file=sys.stderr,
                  flush=True)
        time.sleep(0.2)
        for name, child in list(children.items()):
            if stopping or child.poll() is None:
                continue
            quick = time.monotonic() - started[name] < QUICK_EXIT_SECONDS
            quick_exits[name] = quick_exits[name] + 1 if quick else 0
            if quick_exits[name] >= QUICK_EXITS_TO_GIVE_UP:
                given_up = name
                break
            print(f"hub: {name} exited with {child.returncode}; restarting", file=sys.stderr)
            time.sleep(1.0)
            launch(name)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    cleanup.close()
    rt.close()
    if given_up is not None:
        hint = f" (can it listen on {args.bind}?)" if given_up == "web" else ""
        return fail(f"{given_up} failed {QUICK_EXITS_TO_GIVE_UP} times in a row as it started{hint};"
                    " giving up, see its messages above")
    print("hub stopped", file=sys.stderr)
    return 0


PARTY_COLUMNS = ["country_code", "party_id", "role", "name", "status", "platform_state", "platform_id"]


def _party_rows(rt: Runtime) -> list[dict]:
    from projections.queries import list_parties

    rows = list_parties(rt.app.pool)
    for row in rows:
        for key in ("platform_id", "party_uuid"):
            row[key] = str(row[key])
        for key in ("last_updated", "onboarded_at", "last_seen_at"):
            if row.get(key) is not None:
                row[key] = row[key].isoformat()
    return rows


def _find_party_row(rt: Runtime, args) -> dict | None:
    role = getattr(args, "role", None)
    for row in _party_rows(rt):
        if (row["country_code"] == args.country_code.upper() and row["party_id"] == args.party_id.upper()
                and (role is None or row["role"] == role.upper())):
            return row
    return None


def cmd_parties_add(args) -> int:
    from hub.services.application import UnitOfWork

    rt = Runtime()
    uow = UnitOfWork(rt.app)
    platform_id = UUID(args.platform) if args.platform else None
    try:
        party, platform, token_a = rt.app.onboard(
            uow, role=args.role.upper(), country_code=args.country_code.upper(),
            party_id=args.party_id.upper(), name=args.name, platform_id=platform_id)
    except ValueError as exc:
        return fail(str(exc))
    uow.commit()
    rt.catch_up()
    result = {
        "country_code": party.country_code,
        "party_id": party.party_id,
        "role": party.role,
        "name": party.name,
        "status": party.status,
        "platform_id": str(platform.id),
        "token_a": token_a,
        "versions_url": rt.settings.versions_url,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table([result], ["country_code", "party_id", "role", "name", "status", "platform_id"])
        print()
        if token_a:
            print(f"Token A (give it to the partner over a secure channel; shown once):\n  {token_a}")
        print(f"Hub versions URL:\n  {result['versions_url']}")
    rt.close()
    return 0


def cmd_parties_list(args) -> int:
    rt = Runtime()
    emit(args, _party_rows(rt), PARTY_COLUMNS)
    rt.close()
    return 0


def cmd_parties_show(args) -> int:
    rt = Runtime()
    row = _find_party_row(rt, args)
    if row is None:
        return fail(f"no party {args.country_code}/{args.party_id}")
    platform = rt.app.platform(row["platform_id"])
    row["endpoints"] = platform.endpoints
    row["versions_url"] = platform.versions_url
    row["version"] = platform.ocpi_version
    if args.json:
        print(json.dumps(row, indent=2, default=str))
    else:
        for key in ["country_code", "party_id", "role", "name", "status", "platform_state",
                    "platform_id", "versions_url", "version", "onboarded_at", "last_updated",
                    "last_seen_at"]:
            print(f"{key:15} {row.get(key) if row.get(key) is not None else ''}")
        print("endpoints:")
        print_table(platform.endpoints, ["identifier", "role", "url"])
    rt.close()
    return 0


def _change_party(args, action: str) -> int:
    from hub.services.application import UnitOfWork

    rt = Runtime()
    row = _find_party_row(rt, args)
    if row is None:
        return fail(f"no party {args.country_code}/{args.party_id}")
    party = rt.app.party(row["country_code"], row["party_id"], row["role"])
    if action == "suspend":
        if party.suspended:
            return fail(f"{party.key} is already suspended")
        party.suspend(args.reason)
    else:
        if not party.suspended:
            return fail(f"{party.key} is not suspended")
        party.resume()
    uow = UnitOfWork(rt.app)
    uow.add(party)
    uow.commit()
    rt.catch_up()
    emit(args, _find_party_row(rt, args), PARTY_COLUMNS)
    rt.close()
    return 0


PARTNER_TOKEN_ENV = "HUB_PARTNER_TOKEN"


def _partner_token(args) -> str:
    """The token the partner issued: ``--token -`` reads it from stdin, no
    ``--token`` takes HUB_PARTNER_TOKEN (neither shows it in ps or shell history)."""
    if args.token == "-":
        return sys.stdin.readline().strip()
    if args.token is not None:
        return args.token.strip()
    return os.environ.get(PARTNER_TOKEN_ENV, "").strip()


def cmd_parties_connect(args) -> int:
    from hub.infra.client import OcpiClient
    from hub.ocpi.errors import OcpiError
    from hub.services.registration import Registration

    token = _partner_token(args)
    if not token:
        return fail(f"the partner's token is missing: set {PARTNER_TOKEN_ENV}, or pipe it to --token -", 2)
    rt = Runtime()
    client = OcpiClient(read_timeout=rt.settings.forward_timeout)
    try:
        platform, parties = Registration(rt.app, client).connect(
            args.versions_url, token, rt.catch_up,
            UUID(args.platform) if args.platform else None)
    except OcpiError as exc:
        return fail(f"handshake failed ({exc.status_code}): {exc.message}")
    rt.catch_up()
    rows = [
        {"country_code": p.country_code, "party_id": p.party_id, "role": p.role, "name": p.name,
         "status": p.status, "platform_id": str(platform.id)}
        for p in parties
    ]
    emit(args, rows, ["country_code", "party_id", "role", "name", "status", "platform_id"])
    rt.close()
    return 0


# Routing rules ------------------------------------------------------------------
RULE_LIST_COLUMNS = ["cpo", "emsp", "module", "effect", "reason", "updated_at"]


class _Refused(Exception):
    """An operator command that cannot go ahead (message for stderr, exit 1)."""


def cmd_deliveries_stats(args) -> int:
    from scheduler.outbox import stats

    rt = Runtime()
    rows = [{k: (float(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, int) else v)
             for k, v in r.items()} for r in stats(rt.app.pool)]
    emit(args, rows, ["party", "pending", "oldest_pending_s", "retries", "delivered", "failed", "failure_rate"])
    rt.close()
    return 0


def cmd_deliveries_replay(args) -> int:
    import uuid

    from hub.domain.audit import OperatorAction
    from hub.ocpi.envelope import parse_datetime
    from projections.queries import find_party
    from scheduler.replay import replay

    parts = args.party.upper().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return fail(f"--party {args.party!r}: expected CC/PID (or CC/PID/ROLE)", 2)
    cc, pid = parts[:2]
    role = (args.role or (parts[2] if len(parts) == 3 else "")).upper() or None
    try:
        since = parse_datetime(args.since) if args.since else None
    except ValueError as exc:
        return fail(f"--since {args.since!r}: {exc}", 2)
    rt = Runtime()
    rows = [r for r in find_party(rt.app.pool, cc, pid) if r["platform_state"] == "REGISTERED"]
    if role:
        rows = [r for r in rows if r["role"] == role]
    if not rows:
        rt.close()
        return fail(f"no registered party {cc}/{pid}" + (f"/{role}" if role else ""))
    modules = [args.module] if args.module else ["locations", "tariffs", "sessions", "cdrs", "tokens"]
    correlation_id = str(uuid.uuid4())
    result = {}
    for row in rows:
        result[f"{row['country_code']}/{row['party_id']}/{row['role']}"] = replay(
            rt.app.pool, row, modules=modules, since=since, correlation_id=correlation_id)
    rt.app.save(OperatorAction(command="deliveries replay",
                               arguments={"party": args.party, "role": args.role, "module": args.module,
                                          "since": args.since},
                               operator=_operator(), outcome=json.dumps(result), correlation_id=correlation_id))
    if args.json:
        print(json.dumps({"correlation_id": correlation_id, "queued": result}))
    else:
        for party, counts in result.items():
            print(f"{party}: queued " + ", ".join(f"{n} {m}" for m, n in counts.items())
                  + f" (correlation id {correlation_id})")
    rt.close()
    return 0


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _rule_rows(rt: Runtime) -> list[dict]:
    from projections.rules import list_rules

    rows = list_rules(rt.app.pool)
    for row in rows:
        row["updated_at"] = row["updated_at"].isoformat()
    return rows


def _party_candidates(rt: Runtime, text: str) -> tuple[str, list[dict]]:
    """``IN/ABC`` or ``IN/ABC/ROLE`` -> (the text upper-cased, its parties in the views)."""
    from projections.queries import find_party

    parts = [p.strip() for p in text.upper().split("/")]
    if len(parts) not in (2, 3) or not all(parts):
        raise _Refused(f"{text!r}: write a party as COUNTRY_CODE/PARTY_ID (IN/ABC) or IN/ABC/ROLE")
    rows = find_party(rt.app.pool, parts[0], parts[1], parts[2] if len(parts) == 3 else None)
    if not rows:
        raise _Refused(f"no party {'/'.join(parts)}")
    return "/".join(parts), rows


def _key(row: dict) -> str:
    return f"{row['country_code']}/{row['party_id']}/{row['role']}"


def _one(name: str, rows: list[dict], wanted: str, found: list[dict], position: str) -> dict:
    if not rows:
        roles = "/".join(sorted(r["role"] for r in found))
        raise _Refused(f"{name} is not a known {wanted} party (it is {roles}); "
                       f"the {position} party of a rule must be the {wanted} one")
    if len(rows) > 1:
        roles = ", ".join(sorted(r["role"] for r in rows))
        raise _Refused(f"{name} is ambiguous (roles {roles}); write it as {name}/ROLE")
    return rows[0]


def _rule_pair(rt: Runtime, args) -> tuple[str, str]:
    """The CPO and eMSP-side party keys a rule command names."""
    cpo_name, cpo_rows = _party_candidates(rt, args.cpo)
    emsp_name, emsp_rows = _party_candidates(rt, args.emsp)
    cpo = _one(cpo_name, [r for r in cpo_rows if r["role"] == "CPO"], "CPO", cpo_rows, "first")
    emsp = _one(emsp_name, [r for r in emsp_rows if r["role"] != "CPO"],
                "eMSP-side (EMSP, NSP, SCSP, OTHER…)", emsp_rows, "second")
    return _key(cpo), _key(emsp)


def cmd_routing_set(args) -> int:
    from eventsourcing.application import AggregateNotFoundError
    from eventsourcing.persistence import IntegrityError

    from hub.domain.rules import RoutingRule
    from hub.services.application import UnitOfWork

    rt = Runtime()
    try:
        cpo, emsp = _rule_pair(rt, args)
        try:
            rule = rt.app.repository.get(RoutingRule.create_id(cpo, emsp, args.module))
        except AggregateNotFoundError:
            rule = None
        changed = rule is None or rule.differs(args.effect, args.reason)
        if rule is None:
            rule = RoutingRule(cpo=cpo, emsp=emsp, module=args.module, effect=args.effect,
                               reason=args.reason, set_by=_operator())
        elif changed:
            rule.change(args.effect, args.reason, _operator())
        if changed:
            uow = UnitOfWork(rt.app)
            uow.add(rule)
            try:
                uow.commit()
            except IntegrityError:
                raise _Refused("the rule was changed at the same moment by someone else; try again") from None
            rt.catch_up()
        row = next(r for r in _rule_rows(rt)
                   if (r["cpo"], r["emsp"], r["module"]) == (cpo, emsp, args.module))
        if args.json:
            print(json.dumps({**row, "changed": changed}, indent=2))
        else:
            print_table([row], RULE_LIST_COLUMNS)
            if not changed:
                print("(unchanged: this rule was already in force)")
        return 0
    except _Refused as exc:
        return fail(str(exc))
    finally:
        rt.close()


def cmd_routing_remove(args) -> int:
    from eventsourcing.application import AggregateNotFoundError
    from eventsourcing.persistence import IntegrityError

    from hub.domain.rules import RoutingRule
    from hub.services.application import UnitOfWork

    rt = Runtime()
    try:
        cpo, emsp = _rule_pair(rt, args)
        scope = "all modules" if args.module == "*" else args.module
        try:
            rule = rt.app.repository.get(RoutingRule.create_id(cpo, emsp, args.module))
        except AggregateNotFoundError:
            rule = None
        if rule is None or rule.removed:
            raise _Refused(f"no rule for {cpo} / {emsp} ({scope})")
        rule.remove(_operator())
        uow = UnitOfWork(rt.app)
        uow.add(rule)
        try:
            uow.commit()
        except IntegrityError:
            raise _Refused("the rule was changed at the same moment by someone else; try again") from None
        rt.catch_up()
        if args.json:
            print(json.dumps({"cpo": cpo, "emsp": emsp, "module": args.module, "removed": True}, indent=2))
        else:
            print(f"removed the rule for {cpo} / {emsp} ({scope})")
        return 0
    except _Refused as exc:
        return fail(str(exc))
    finally:
        rt.close()


def cmd_routing_list(args) -> int:
    rt = Runtime()
    try:
        emit(args, _rule_rows(rt), RULE_LIST_COLUMNS)
    finally:
        rt.close()
    return 0


# The direction data of a module normally flows in: the CPO sends Locations,
# Tariffs, Sessions and CDRs; the eMSP sends Tokens and Commands. Used only to
# settle which roles a multi-role platform plays in `hub routing explain`.
_CPO_SENDS = {"locations", "tariffs", "sessions", "cdrs"}
_EMSP_SENDS = {"tokens", "commands"}


def _explain_pair(rt: Runtime, args) -> tuple[dict, dict]:
    """The sender and receiver parties of `explain`: one CPO, one eMSP-side party."""
    sender_name, senders = _party_candidates(rt, args.sender)
    receiver_name, receivers = _party_candidates(rt, args.receiver)
    pairs = [(s, r) for s in senders for r in receivers
             if (s["role"] == "CPO") != (r["role"] == "CPO")]
    if not pairs:
        roles = (f"{sender_name} is {'/'.join(sorted(r['role'] for r in senders))}, "
                 f"{receiver_name} is {'/'.join(sorted(r['role'] for r in receivers))}")
        raise _Refused(f"no CPO / eMSP-side pair ({roles}); routing rules apply between a CPO "
                       "and an eMSP-side party")
    if len(pairs) > 1:
        natural = [(s, r) for s, r in pairs
                   if (args.module in _CPO_SENDS and s["role"] == "CPO")
                   or (args.module in _EMSP_SENDS and r["role"] == "CPO")]
        pairs = natural or pairs
    if len(pairs) > 1:
        options = ", ".join(f"{_key(s)} -> {_key(r)}" for s, r in pairs)
        raise _Refused(f"ambiguous ({options}); write the parties as CC/PARTY_ID/ROLE")
    return pairs[0]


def cmd_routing_explain(args) -> int:
    from hub.domain.ruleset import DEFAULT_OPEN, RECEIVER_SUSPENDED, SENDER_SUSPENDED
    from projections.rules import load_rules

    rt = Runtime()
    try:
        sender, receiver = _explain_pair(rt, args)
        cpo, emsp = (sender, receiver) if sender["role"] == "CPO" else (receiver, sender)
        decision = load_rules(rt.app.pool).decide(
            _key(cpo), _key(emsp), args.module,
            sender_status=sender["status"], receiver_status=receiver["status"])
        reason = {SENDER_SUSPENDED: f"sender {_key(sender)} is suspended",
                  RECEIVER_SUSPENDED: f"receiver {_key(receiver)} is suspended"}.get(
                      decision.reason, decision.reason)
        rule = dict(decision.rule) if decision.rule else None
        if rule and hasattr(rule.get("updated_at"), "isoformat"):
            rule["updated_at"] = rule["updated_at"].isoformat()
        result = {
            "sender": _key(sender),
            "receiver": _key(receiver),
            "module": args.module,
            "cpo": _key(cpo),
            "emsp": _key(emsp),
            "delivered": decision.allowed,
            "decided_by": "rule" if rule else ("default" if decision.reason == DEFAULT_OPEN else "suspension"),
            "reason": reason,
            "rule": rule,
            "sender_status": sender["status"],
            "receiver_status": receiver["status"],
        }
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            verdict = "delivered" if decision.allowed else "NOT delivered"
            print(f"{result['sender']} -> {result['receiver']} ({args.module}): {verdict}")
            print(f"decided by: {reason}")
            if rule:
                print(f"rule set by {rule['set_by']} at {rule['updated_at']}")
        return 0
    except _Refused as exc:
        return fail(str(exc))
    finally:
        rt.close()


def cmd_projections_status(args) -> int:
    from hub.infra.eventlog import EventLog
    from projections import all_projections
    from scheduler.worker import dispatchers

    rt = Runtime()
    log = EventLog(rt.app)
    head = log.head()
    rows = []
    for follower in [*all_projections(), *dispatchers()]:
        position = log.position(follower.name)
        rows.append({"name": follower.name, "position": position, "head": head, "lag": head - position})
    emit(args, rows, ["name", "position", "head", "lag"])
    rt.close()
    return 0


def cmd_projections_rebuild(args) -> int:
    """Each projection built afresh beside its live tables, then swapped in (EventLog.rebuild)."""
    from hub.infra.eventlog import EventLog, RebuildRefused
    from projections import all_projections

    chosen = [p for p in all_projections() if args.name in (None, p.name)]
    if not chosen:
        return fail(f"no projection named {args.name}")
    show = sys.stderr.isatty() or args.progress
    rt = Runtime()
    refused = 0
    try:
        log = EventLog(rt.app)
        for projection in chosen:
            started = time.perf_counter()

            def progress(position: int, head: int, name=projection.name) -> None:
                if show:
                    share = 100.0 if not head else min(100.0, 100.0 * position / head)
                    print(f"\r{name}: {position}/{head} ({share:5.1f}%)", end="", file=sys.stderr)

            try:
                done = log.rebuild(projection, progress)
            except RebuildRefused as exc:
                refused += 1
                fail(str(exc))
                continue
            finally:
                if show:
                    print(file=sys.stderr)
            print(f"{projection.name}: rebuilt from {done.events} events in {time.perf_counter() - started:.2f}s;"
                  f" swapped in, {done.rows_changed} rows differed from the live view")
    finally:
        rt.close()
    return 1 if refused else 0


DELIVERY_COLUMNS = ["id", "state", "module", "method", "object_key", "recipient", "attempts",
                    "last_http_status", "last_status_code", "last_error"]


def cmd_deliveries_list(args) -> int:
    from scheduler.outbox import list_deliveries

    rt = Runtime()
    rows = list_deliveries(rt.app.pool, failed_only=args.failed, party=args.party, limit=args.limit)
    emit(args, [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in rows], DELIVERY_COLUMNS)
    rt.close()
    return 0


def cmd_deliveries_retry(args) -> int:
    from hub.domain.audit import OperatorAction
    from scheduler.outbox import requeue

    if not args.ids and not args.party and not args.all_failed:
        return fail("name delivery ids, --party CC/PID, or --all-failed")
    rt = Runtime()
    ids = requeue(rt.app.pool, ids=args.ids or None, party=args.party)
    rt.app.save(OperatorAction(command="deliveries retry",
                               arguments={"ids": args.ids, "party": args.party, "all_failed": args.all_failed},
                               operator=_operator(), outcome=f"requeued {len(ids)}: {ids[:50]}"))
    if args.json:
        print(json.dumps({"requeued": ids}))
    else:
        print(f"requeued {len(ids)} deliveries" + (f": {', '.join(map(str, ids))}" if ids else ""))
    rt.close()
    return 0


# Audit -------------------------------------------------------------------------
def cmd_audit_checkpoint(args) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from hub.infra.chain import take_checkpoint
    from hub.infra.database import connect
    from hub.ocpi.envelope import format_datetime

    rt = Runtime()
    with connect(rt.database_url, rt.settings.database_schema) as conn, conn.transaction():
        checkpoint = take_checkpoint(conn, rt.settings.checkpoint_key(), format_datetime(datetime.now(UTC)))
    if checkpoint is None:
        return fail("the log is empty: nothing to sign")
    if args.out:
        Path(args.out).write_bytes(checkpoint.to_json() + b"\n")
    if args.json:
        print(checkpoint.to_json().decode())
    else:
        print(f"signed checkpoint at position {checkpoint.position}, head {checkpoint.head[:16]}…"
              + (f", written to {args.out}" if args.out else ""))
    rt.close()
    return 0


def cmd_audit_verify(args) -> int:
    from pathlib import Path

    from hub.infra.chain import Checkpoint, checkpoint_valid, stored_checkpoints, verify
    from hub.infra.database import connect

    if args.proof:
        if args.checkpoint or args.from_position:
            return fail("--proof checks one bundle on its own: leave out --from and --checkpoint")
        return _verify_proof(args)
    def refuse(message: str) -> int:
        """Bad input or an unreadable file: exit 2 (under --json, also a JSON answer)."""
        if args.json:
            print(json.dumps({"ok": False, "error": message}))
        return fail(message, 2)

    if args.from_position < 0:
        return refuse(f"--from {args.from_position}: expected a position, 0 or more")
    files = []
    for path in args.checkpoint or []:
        try:
            files.append(Checkpoint.from_json(Path(path).read_bytes()))
        except OSError as exc:
            return refuse(f"cannot read checkpoint {path}: {exc.strerror or exc}")
        except ValueError as exc:
            return refuse(f"checkpoint {path} is unreadable: {exc}")
    shown: list[int] = []

    def progress(position: int) -> None:
        if sys.stderr.isatty() or args.progress:
            shown.append(position)
            print(f"\rverified up to {position}", end="", file=sys.stderr)

    rt = Runtime()
    try:
        key = rt.settings.checkpoint_key()
        with connect(rt.database_url, rt.settings.database_schema) as conn:
            (head,) = conn.execute("SELECT greatest((SELECT max(notification_id) FROM hub_events),"
                                   " (SELECT max(notification_id) FROM hub_audit_chain))").fetchone()
            if args.from_position > (head or 0):
                return refuse(f"--from {args.from_position} is past the log's head ({head or 0})")
            checkpoints = stored_checkpoints(conn) + files
            forged = next((c for c in checkpoints if not checkpoint_valid(key, c)), None)
            verdict = None if forged else verify(conn, start=args.from_position, checkpoints=checkpoints,
                                                 progress=progress)
    finally:
        rt.close()
    if shown:
        print(file=sys.stderr)
    if forged:
        problem = f"checkpoint at {forged.position} has an invalid signature (another key, or forged)"
        result = {"ok": False, "checked": 0, "head_position": None, "head": None,
                  "break_position": None, "problem": problem, "checkpoints": len(checkpoints)}
    else:
        result = {"ok": verdict.ok, "checked": verdict.checked, "head_position": verdict.head_position,
                  "head": verdict.head.hex(), "break_position": verdict.break_position,
                  "problem": verdict.problem, "checkpoints": len(checkpoints)}
    if args.json:
        print(json.dumps(result))
    elif result["ok"]:
        print(f"OK: {verdict.checked} events verified up to position {verdict.head_position}, "
              f"{len(checkpoints)} signed checkpoints hold")
    elif forged:
        print(f"FAILED: {problem}", file=sys.stderr)
    else:
        print(f"FAILED at position {verdict.break_position}: {verdict.problem}", file=sys.stderr)
    return 0 if result["ok"] else 1


def _proof_key(settings: Settings) -> bytes | None:
    """The checkpoint key as the hub takes it, without creating one (None: no key here)."""
    if settings.audit_key or settings.secret_key or (settings.data_dir / "secret_key").exists():
        return settings.checkpoint_key()
    return None


def _verify_proof(args) -> int:
    """``hub audit verify --proof FILE``: from the file and the key alone, no database."""
    from pathlib import Path

    from hub.audit.proof import Check, verify_cdr_proof

    try:
        bundle = json.loads(Path(args.proof).read_bytes())
    except (OSError, ValueError) as exc:
        checks = [Check("bundle", False, f"cannot read {args.proof}: {exc}")]
    else:
        checks = verify_cdr_proof(bundle, _proof_key(Settings.from_env()))
    failed = [c for c in checks if not c.ok]
    if args.json:
        cdr = bundle["cdr"] if checks[0].ok else None  # the first check: the bundle is readable
        print(json.dumps({"ok": not failed, "proof": args.proof,
                          "cdr": cdr and {k: cdr.get(k) for k in ("country_code", "party_id", "id")},
                          "checks": [c.__dict__ for c in checks], "failed": [c.check for c in failed]}, indent=2))
    else:
        print_table([{"check": c.check, "result": "ok" if c.ok else "FAILED", "detail": c.detail} for c in checks],
                    ["check", "result", "detail"])
        if failed:
            print("FAILED: " + "; ".join(f"{c.check}: {c.detail}" for c in failed), file=sys.stderr)
        else:
            print(f"OK: the proof holds ({len(checks)} checks)")
    return 1 if failed else 0


def cmd_audit_proof(args) -> int:
    """``hub audit proof cdrs CC PID ID``: a dispute bundle, checkable without the database."""
    from datetime import UTC, datetime
    from pathlib import Path

    import orjson

    from hub.audit.proof import ProofError, make_cdr_proof
    from hub.ocpi.envelope import format_datetime

    rt = Runtime()
    try:
        bundle, taken = make_cdr_proof(rt.app, rt.settings.checkpoint_key(), args.country_code, args.party_id,
                                       args.object_id, now=format_datetime(datetime.now(UTC)))
    except (LookupError, ProofError) as exc:
        return fail(str(exc.args[0]))
    finally:
        rt.close()
    data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n"
    if not args.out:
        sys.stdout.buffer.write(data)
        return 0
    Path(args.out).write_bytes(data)
    summary = {"out": args.out, "cdr": "/".join(bundle["cdr"][k] for k in ("country_code", "party_id", "id")),
               "position": bundle["event"]["position"], "hash": bundle["event"]["hash"],
               "receipts": len(bundle["receipts"]), "links": len(bundle["chain"]["links"]),
               "checkpoint_position": bundle["checkpoint"]["position"], "new_checkpoint": taken}
    emit(args, summary, ["out", "cdr", "position", "receipts", "links", "checkpoint_position", "new_checkpoint"])
    return 0


TIMELINE_COLUMNS = ["at", "position", "step", "who", "what", "outcome"]


def _audit_moment(text: str | None, option: str):
    from hub.audit.reads import parse_moment

    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise _Refused(f"{option} {text!r}: {exc}") from None


def _emit_timeline(args, steps: list[dict]) -> None:
    if args.json:
        print(json.dumps(steps, indent=2))
    else:
        print_table(steps, TIMELINE_COLUMNS)


def cmd_audit_export(args) -> int:
    """The history as JSON lines on stdout, secrets removed; progress on stderr."""
    from hub.audit.reads import AuditLog, Filters, object_uuid_of

    try:
        since, until = _audit_moment(args.since, "--since"), _audit_moment(args.until, "--until")
        object_uuid = None
        if args.object:
            if not args.module:
                raise _Refused("--object needs --module (locations, tariffs, sessions, cdrs or tokens)")
            object_uuid = object_uuid_of(args.module, args.object, args.type)
    except (_Refused, ValueError) as exc:
        return fail(str(exc))
    filters = Filters(party=args.party, module=args.module, object_uuid=object_uuid,
                      correlation_id=args.correlation_id, since=since, until=until)
    show = args.progress or sys.stderr.isatty()

    def progress(position: int, head: int) -> None:
        print(f"\r{position}/{head} events", end="", file=sys.stderr, flush=True)

    import orjson

    rt = Runtime()
    written = 0
    try:
        out = sys.stdout.buffer
        for record in AuditLog(rt.app).records(filters, progress if show else None):
            out.write(orjson.dumps(record) + b"\n")
            written += 1
        out.flush()
    except BrokenPipeError:  # the reader stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        rt.close()
    if show:
        print(f"\n{written} records", file=sys.stderr)
    return 0


def cmd_audit_trace(args) -> int:
    from hub.audit.reads import AuditLog

    rt = Runtime()
    try:
        steps = AuditLog(rt.app).trace(args.correlation_id)
    finally:
        rt.close()
    if not steps:
        return fail(f"no record carries correlation id {args.correlation_id}")
    _emit_timeline(args, steps)
    return 0


def cmd_audit_history(args) -> int:
    from hub.audit.reads import AuditLog, object_id_for

    rt = Runtime()
    try:
        steps = AuditLog(rt.app).history(args.module, args.country_code, args.party_id,
                                         object_id_for(args.module, args.object_id, args.type))
    except LookupError as exc:
        return fail(str(exc.args[0]))
    finally:
        rt.close()
    _emit_timeline(args, steps)
    return 0


def cmd_audit_state(args) -> int:
    from datetime import UTC, datetime

    from hub.audit.reads import AuditLog, object_id_for
    from projections.objects import body_after

    try:
        at = _audit_moment(args.at, "--at") or datetime.now(UTC)
    except _Refused as exc:
        return fail(str(exc))
    rt = Runtime()
    try:
        state = AuditLog(rt.app).state(
            args.module, args.country_code, args.party_id,
            object_id_for(args.module, args.object_id, args.type), at=at, body_after=body_after,
            delivered_to=args.as_delivered_to)
    except (LookupError, ValueError) as exc:
        return fail(str(exc.args[0]))
    finally:
        rt.close()
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    if state["body"] is None:
        return fail(f"nothing of this object had reached {state['as_delivered_to']} by {state['at']}")
    print(json.dumps(state["body"], indent=2))
    if state["deleted"]:
        print(f"hub: note: deleted (version {state['version']}, {state['recorded_at']})", file=sys.stderr)
    return 0


# Parser -----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="ChargeIndia Hub: OCPI 2.2.1 roaming hub")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(func=cmd_migrate)

    def server_options(p) -> None:
        p.add_argument("--bind", default=os.environ.get("HUB_BIND", "127.0.0.1:8000"))
        p.add_argument("--workers", type=int,
                       default=int(os.environ.get("HUB_WEB_WORKERS") or os.environ.get("WEB_CONCURRENCY") or 2))
        p.add_argument("--threads", type=int, default=int(os.environ.get("HUB_WEB_THREADS", "8")),
                       help="threads per worker (default 8, gthread; 1: sync workers)")

    p = sub.add_parser("serve", help="everything in one: database, schema, web and worker")
    server_options(p)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("web", help="gunicorn serving the OCPI endpoints")
    server_options(p)
    p.set_defaults(func=cmd_web)
    sub.add_parser("worker", help="projections, dispatcher and periodic jobs").set_defaults(func=cmd_worker)

    parties = sub.add_parser("parties", help="onboard and manage partners").add_subparsers(
        dest="action", required=True)
    p = parties.add_parser("add", help="onboard a party; prints its token A and the versions URL")
    p.add_argument("--role", required=True, type=str.upper, choices=["CPO", "EMSP", "NSP", "NAP", "SCSP", "OTHER"])
    p.add_argument("--country-code", required=True)
    p.add_argument("--party-id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--platform", help="add the party to this existing platform (no new token A)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_parties_add)
    p = parties.add_parser("list", help="every party with its status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_parties_list)
    for name, func, helptext in (("show", cmd_parties_show, "one party and its platform's endpoints"),
                                 ("suspend", lambda a: _change_party(a, "suspend"), "refuse and stop delivering to a party"),
                                 ("resume", lambda a: _change_party(a, "resume"), "lift a suspension")):
        p = parties.add_parser(name, help=helptext)
        p.add_argument("country_code")
        p.add_argument("party_id")
        p.add_argument("--role", type=str.upper)
        p.add_argument("--json", action="store_true")
        if name == "suspend":
            p.add_argument("--reason", default="suspended by the hub operator")
        p.set_defaults(func=func)
    p = parties.add_parser("connect", help="start the credentials handshake towards a partner")
    p.add_argument("--versions-url", required=True)
    p.add_argument("--token", help="the token A the partner issued to the hub; '-' reads it from stdin;"
                   f" left out, it comes from {PARTNER_TOKEN_ENV} (either keeps it out of ps and history)")
    p.add_argument("--platform", help="reconnect this existing platform")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_parties_connect)

    from hub.domain.rules import MODULES

    routing = sub.add_parser("routing", help="routing rules between CPOs and eMSPs").add_subparsers(
        dest="action", required=True)
    for effect in ("allow", "deny"):
        p = routing.add_parser(effect, help=f"{effect} traffic between a CPO and an eMSP-side party")
        p.add_argument("cpo", metavar="CPO_PARTY", help="the CPO party, IN/ABC (or IN/ABC/CPO)")
        p.add_argument("emsp", metavar="EMSP_PARTY", help="the eMSP-side party, IN/EMP (or IN/EMP/ROLE)")
        p.add_argument("--module", type=str.lower, choices=[*MODULES, "*"], default="*",
                       help="only this module (default: every module)")
        p.add_argument("--reason", default="", help="why (kept in the rule and the event log)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_routing_set, effect=effect)
    p = routing.add_parser("remove", help="remove a rule (its history stays in the event log)")
    p.add_argument("cpo", metavar="CPO_PARTY")
    p.add_argument("emsp", metavar="EMSP_PARTY")
    p.add_argument("--module", type=str.lower, choices=[*MODULES, "*"], default="*")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_routing_remove)
    p = routing.add_parser("list", help="every rule in force")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_routing_list)
    p = routing.add_parser("explain", help="would a message pass, and which rule decides")
    p.add_argument("sender", metavar="SENDER", help="IN/ABC (or IN/ABC/ROLE)")
    p.add_argument("receiver", metavar="RECEIVER", help="IN/EMP (or IN/EMP/ROLE)")
    p.add_argument("--module", type=str.lower, choices=MODULES, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_routing_explain)

    deliveries = sub.add_parser("deliveries", help="what the hub owes partners").add_subparsers(
        dest="action", required=True)
    p = deliveries.add_parser("list", help="recent deliveries, newest first")
    p.add_argument("--failed", action="store_true", help="only parked (failed) deliveries")
    p.add_argument("--party", help="recipient party, CC/PID")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deliveries_list)
    p = deliveries.add_parser("retry", help="requeue failed deliveries")
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--party", help="every failed delivery to this party, CC/PID")
    p.add_argument("--all-failed", action="store_true", help="every failed delivery")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deliveries_retry)
    p = deliveries.add_parser("stats", help="queue depth, oldest age and failure rate per party")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deliveries_stats)
    p = deliveries.add_parser("replay", help="resend the current state (and every CDR) to a partner")
    p.add_argument("--party", required=True, help="CC/PID (or CC/PID/ROLE)")
    p.add_argument("--role", help="when the ids have several roles")
    p.add_argument("--module", choices=["locations", "tariffs", "sessions", "cdrs", "tokens"])
    p.add_argument("--since", help="only objects with last_updated at or after this DateTime")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deliveries_replay)

    audit = sub.add_parser("audit", help="the tamper-evident history").add_subparsers(
        dest="action", required=True)
    p = audit.add_parser("verify", help="recompute the hash chain; exit 1 naming the first break")
    p.add_argument("--from", dest="from_position", type=int, default=0, help="start after this position")
    p.add_argument("--checkpoint", action="append", help="a signed checkpoint file kept outside the hub")
    p.add_argument("--proof", metavar="FILE",
                   help="check a bundle of hub audit proof instead, from the file and the key alone (no database)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser("proof", help="a dispute bundle of one CDR, checkable by hub audit verify --proof")
    p.add_argument("module", choices=["cdrs"], type=str.lower, metavar="MODULE", help="cdrs")
    p.add_argument("country_code", metavar="COUNTRY")
    p.add_argument("party_id", metavar="PARTY")
    p.add_argument("object_id", metavar="CDR_ID")
    p.add_argument("--out", metavar="FILE", help="write the bundle here (default: standard output)")
    p.add_argument("--json", action="store_true", help="with --out: the summary as JSON")
    p.set_defaults(func=cmd_audit_proof)
    p = audit.add_parser("checkpoint", help="sign the chain head now")
    p.add_argument("--out", help="also write the checkpoint to this file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_checkpoint)
    p = audit.add_parser("export", help="the history as JSON lines (secrets removed), filtered")
    p.add_argument("--party", help="CC/PID (or CC/PID/ROLE): sender, addressee, owner, recipient")
    p.add_argument("--module", type=str.lower, choices=[*MODULES, "credentials", "versions"],
                   help="the OCPI module of the record")
    p.add_argument("--object", metavar="CC/PID/ID", help="one object's events (needs --module)")
    p.add_argument("--type", default="RFID", help="token type for --object of tokens (default RFID)")
    p.add_argument("--correlation-id")
    p.add_argument("--since", help="events recorded at or after this DateTime")
    p.add_argument("--until", help="events recorded before this DateTime")
    p.add_argument("--progress", action="store_true", help="progress on stderr even without a terminal")
    p.set_defaults(func=cmd_audit_export)
    p = audit.add_parser("trace", help="the story of one exchange, by correlation id")
    p.add_argument("correlation_id", metavar="CORRELATION_ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_trace)
    for name, helptext in (("history", "one object over its life: pushes, stored events, deliveries"),
                           ("state", "one object as the hub knew it (or a party had received it) at a time")):
        p = audit.add_parser(name, help=helptext)
        p.add_argument("module", choices=["locations", "tariffs", "sessions", "cdrs", "tokens"],
                       type=str.lower, metavar="MODULE")
        p.add_argument("country_code", metavar="COUNTRY")
        p.add_argument("party_id", metavar="PARTY")
        p.add_argument("object_id", metavar="ID", help="the object's id (a token's UID)")
        p.add_argument("--type", default="RFID", help="token type (default RFID)")
        if name == "state":
            p.add_argument("--at", help="a DateTime (default: now)")
            p.add_argument("--as-delivered-to", metavar="CC/PID",
                           help="as this party had received it (see hub/audit.py for the approximation)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_audit_history if name == "history" else cmd_audit_state)

    projections = sub.add_parser("projections", help="read models").add_subparsers(dest="action", required=True)
    p = projections.add_parser("status", help="position and lag of every follower")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_projections_status)
    p = projections.add_parser("rebuild", help="build projections afresh from the event log beside the live"
                               " views, then swap them in (reads keep working)")
    p.add_argument("name", nargs="?")
    p.add_argument("--progress", action="store_true", help="show progress even without a terminal")
    p.set_defaults(func=cmd_projections_rebuild)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = args.command not in ("serve", "web", "worker")
    configure_logging(os.environ.get("HUB_LOG_LEVEL") or ("WARNING" if quiet else "INFO"))
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
