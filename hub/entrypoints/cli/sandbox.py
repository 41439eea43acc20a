"""``hub sandbox``: simulated partners registered with a local hub, and their faults.

- ``hub sandbox`` starts a hub of its own (``hub serve`` as a child process, data
  in ``HUB_DATA_DIR``, default ``var/sandbox``, loopback partners allowed for that
  child only) or attaches to ``--hub-url``; onboards the partners (token A, as
  ``hub parties add`` does), lets them register through the credentials
  handshake, and keeps them busy until Ctrl-C or SIGTERM.
- ``hub sandbox status`` / ``hub sandbox fault PARTY MODE`` talk to the running
  sandbox's control API on 127.0.0.1.
- ``hub sandbox partner`` runs one sample partner that registers nowhere by itself
  (docs/getting-started.md registers it by hand).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from hub.entrypoints.cli.output import Usage, emit, fail, parse, print_table
from hub.services.operators import OperatorError

LOOPBACK = "127.0.0.0/8,::1/128"
DEFAULT_DIR = "var/sandbox"
DEFAULT_BIND = "127.0.0.1:8100"
STATE_FILE = "sandbox-partners.json"
STATUS_COLUMNS = ["party", "role", "base_url", "token", "fault"]


def sandbox_dir() -> Path:
    return Path(os.environ.get("HUB_DATA_DIR") or DEFAULT_DIR).resolve()


def mark_testing(app, party) -> None:
    """Mark a sandbox party as a test party, where this hub knows test parties."""
    try:
        from hub.services.operators.parties import set_testing
    except ImportError:
        return
    for attempt in range(3):  # the party may change at the same moment (its registration settling)
        try:
            set_testing(app, party, True)
            return
        except OperatorError as exc:
            if attempt == 2:
                print(f"hub: warning: {party} is not marked as a test party ({exc})", file=sys.stderr)
            time.sleep(0.5)


# The hub -------------------------------------------------------------------
def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


class Stopped(Exception):
    """Ctrl-C or SIGTERM while the sandbox starts: stop what was started, exit 0."""


def _stop_now(*_: object) -> None:
    raise Stopped


def start_hub(bind: str, data_dir: Path, started: list) -> tuple[subprocess.Popen, str, Path]:
    """``hub serve`` as a child with its own data dir and loopback partners allowed; returns it, its
    base URL and its log file. The child goes into ``started`` at once (stopped whatever happens next)."""
    from hub.entrypoints.cli.server import _address_in_use

    if _address_in_use(bind):
        raise OperatorError(f"cannot start the sandbox's hub on {bind}: the address is in use;"
                            " pick another with --bind, or attach to a running hub with --hub-url")
    base_url = f"http://{bind}"
    env = {**os.environ, "HUB_DATA_DIR": str(data_dir), "HUB_BASE_URL": base_url,
           "HUB_PARTNER_NETWORKS_ALLOWED": LOOPBACK}
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "hub.log"
    with open(log_path, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--bind", bind, "--workers", "1"],
                                 env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # Ctrl-C reaches the sandbox, which stops it last
    started.append(child)
    deadline = time.monotonic() + 180
    while not _answers(f"{base_url}/health"):
        if child.poll() is not None or time.monotonic() > deadline:
            stop_child(child)
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-5:])
            raise OperatorError(f"the sandbox's hub did not start (log {log_path}):\n{tail}")
        time.sleep(0.5)
    return child, base_url, log_path


def stop_child(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# Partners ------------------------------------------------------------------
def _load_state(data_dir: Path) -> dict:
    path = data_dir / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(data_dir: Path, sandbox, hub_url: str) -> None:
    state = {"hub_url": hub_url, "partners": {p.key: {"port": p.port, "token_b": p.token_b, "token_c": p.token_c}
                                              for p in sandbox.partners}}
    path = data_dir / STATE_FILE
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def build_sandbox(data_dir: Path, hub_url: str, locations: int):
    """The partners, on the ports and with the tokens of the last run against this hub (if any)."""
    from hub.sandbox.runner import Sandbox

    state = _load_state(data_dir)
    known = state.get("partners", {}) if state.get("hub_url") == hub_url else {}
    sandbox = Sandbox(locations=locations, ports={k: v["port"] for k, v in known.items()})
    for partner in sandbox.partners:
        saved = known.get(partner.key)
        if saved:
            partner.token_b, partner.token_c = saved["token_b"], saved["token_c"]
    return sandbox


def onboard_and_register(sandbox, versions_url: str) -> None:
    """Onboard each partner not yet registered (token A) and run its side of the handshake."""
    from hub.entrypoints.cli.runtime import Runtime
    from hub.sandbox import client
    from hub.services.operators import parties

    with Runtime() as rt:
        for partner in sandbox.partners:
            name = parse(partner.key)
            if partner.token_c:
                client.discover(partner, versions_url)
            else:
                if parties.find(rt.app, name):
                    raise OperatorError(
                        f"{partner.key} is already on this hub but this sandbox has no token for it"
                        f" ({sandbox_dir() / STATE_FILE} is missing or for another hub): reset the sandbox"
                        f" (stop it and delete {sandbox_dir()}), or point HUB_DATA_DIR elsewhere")
                _party, _platform, token_a = parties.add(rt.app, name, partner.name, None, rt.catch_up)
                client.register(partner, versions_url, token_a)
            mark_testing(rt.app, name)
        rt.catch_up()


def print_start(args, sandbox, info: dict) -> None:
    rows = [p.status() for p in sandbox.partners]
    if args.json:
        print(json.dumps({**info, "partners": rows}, indent=2), flush=True)
        return
    print_table(rows, STATUS_COLUMNS)
    print(f"\nHub versions URL:\n  {info['versions_url']}")
    print(f"Control API (hub sandbox status / fault):\n  {info['control_url']}")
    print("Register your own implementation with this hub (another terminal, this directory):\n"
          f"  {info['add_command']}")
    print("Stop with Ctrl-C.", flush=True)


def cmd_start(args) -> int:
    from hub.sandbox import client
    from hub.sandbox.control import ControlServer

    data_dir = sandbox_dir()
    child, started = None, []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_now)
    try:
        if args.hub_url:
            hub_url = args.hub_url.rstrip("/")
            print(f"Attaching to the hub at {hub_url}. Its operator must allow this machine's partners"
                  f" (HUB_PARTNER_NETWORKS_ALLOWED={LOOPBACK} for that hub), or registration answers 3001.",
                  file=sys.stderr)
        else:
            print(f"Starting a hub of its own on {args.bind} (data {data_dir}; HUB_PARTNER_NETWORKS_ALLOWED="
                  f"{LOOPBACK} for that hub only, because the sandbox's partners listen on 127.0.0.1)...",
                  file=sys.stderr, flush=True)
            child, hub_url, log_path = start_hub(args.bind, data_dir, started)
            os.environ.update({"HUB_DATA_DIR": str(data_dir), "HUB_BASE_URL": hub_url})
            print(f"Hub up at {hub_url} (its log: {log_path}).", file=sys.stderr, flush=True)
        versions_url = f"{hub_url}/ocpi/versions"
        try:
            sandbox = build_sandbox(data_dir, hub_url, args.locations).start()
        except OSError as exc:
            raise OperatorError(f"cannot start the sandbox's partners ({exc}): a port of the last run is"
                                f" taken; free it, or reset the sandbox (delete {data_dir})") from None
        try:
            onboard_and_register(sandbox, versions_url)
        except client.HubError as exc:
            sandbox.stop()
            raise OperatorError(f"a sandbox partner could not register: {exc} (a hub reset since the last run?"
                                f" then delete {data_dir / STATE_FILE})") from None
        _save_state(data_dir, sandbox, hub_url)
        sandbox.publish()
        sandbox.run(args.interval)
        env = "" if args.hub_url else f"HUB_DATA_DIR={data_dir} HUB_BASE_URL={hub_url} "
        info = {"hub_url": hub_url, "versions_url": versions_url, "own_hub": child is not None,
                "add_command": f'{env}hub parties add IN/ABC/CPO --name "ABC Charging"'}
        control = ControlServer(sandbox, info, args.control_port)
        info["control_url"] = control.url
        control.start(data_dir)
        print_start(args, sandbox, info)
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        while not stopping.wait(0.5):
            if child is not None and child.poll() is not None:
                control.stop(data_dir)
                sandbox.stop()
                return fail(f"the sandbox's hub stopped (exit {child.returncode}); see {data_dir / 'hub.log'}")
        control.stop(data_dir)
        sandbox.stop()
        print("sandbox stopped", file=sys.stderr)
        return 0
    except Stopped:
        print("sandbox stopped while starting", file=sys.stderr)
        return 0
    finally:
        for each in started:
            stop_child(each)


def cmd_status(args) -> int:
    from hub.sandbox.control import ControlError, control_url, get_status

    try:
        status = get_status(control_url(sandbox_dir(), args.control))
    except ControlError as exc:
        raise OperatorError(str(exc)) from None
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    emit(args, status["partners"], STATUS_COLUMNS)
    print(f"\nHub versions URL: {status['versions_url']}")
    return 0


def cmd_fault(args) -> int:
    from hub.sandbox.control import ControlError, control_url, set_fault

    try:
        row = set_fault(control_url(sandbox_dir(), args.control), args.party, args.mode, args.seconds)
    except ControlError as exc:
        raise OperatorError(str(exc)) from None
    emit(args, row, STATUS_COLUMNS)
    return 0


def cmd_partner(args) -> int:
    """One sample partner in the foreground, for a walkthrough or a quick test."""
    from hub.sandbox.partner import Partner

    name = parse(args.party)
    if name.role and name.role != args.role.upper():
        raise Usage(f"{args.party}: the role is given twice; write {name.ids} with --role {args.role}")
    token = args.token or os.environ.get("HUB_SANDBOX_TOKEN_B")
    if not token:
        raise Usage("hub sandbox partner: give the token B the hub must send it, --token or HUB_SANDBOX_TOKEN_B")
    try:
        partner = Partner(args.role, name.country_code, name.party_id, args.name or f"{name.party_id} sample",
                          port=args.port, token_b=token).start()
    except OSError:
        raise OperatorError(f"cannot listen on 127.0.0.1:{args.port}: the port is in use (another program"
                            " runs there; pick another with --port)") from None
    print(f"sample {partner.key} serving {partner.versions_url}; Ctrl-C stops it", flush=True)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    partner.stop()
    return 0


def register(sub) -> None:
    p = sub.add_parser("sandbox", help="simulated CPOs and eMSPs registered with a local hub")
    p.add_argument("--hub-url", help="attach to this hub instead of starting one (its operator allows loopback)")
    p.add_argument("--bind", default=DEFAULT_BIND, help=f"where the sandbox's own hub listens ({DEFAULT_BIND})")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between partner activity (10)")
    p.add_argument("--locations", type=int, default=6, help="Locations per CPO (6)")
    p.add_argument("--control-port", type=int, default=0, help="control API port (default: any free port)")
    p.add_argument("--json", action="store_true", help="print the partners as JSON once registered")
    p.set_defaults(func=cmd_start)
    group = p.add_subparsers(dest="action")
    s = group.add_parser("status", help="the running sandbox's partners and faults")
    s.add_argument("--control", help="the control API URL (default: from HUB_DATA_DIR, var/sandbox)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    s = group.add_parser("fault", help="switch a partner's fault mode: slow, 5xx, 429, timeout, invalid,"
                         " pagination, or off")
    s.add_argument("party", metavar="CC/PID[/ROLE]")
    s.add_argument("mode")
    s.add_argument("--seconds", type=float, help="for slow, 429 (Retry-After) and timeout")
    s.add_argument("--control", help="the control API URL (default: from HUB_DATA_DIR, var/sandbox)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_fault)
    s = group.add_parser("partner", help="one sample partner (versions, details, modules) on 127.0.0.1")
    s.add_argument("--role", required=True, choices=["CPO", "EMSP", "cpo", "emsp"])
    s.add_argument("--party", required=True, metavar="CC/PID", help="its ids, IN/ABC")
    s.add_argument("--name")
    s.add_argument("--port", type=int, default=9000)
    s.add_argument("--token", help="the token B the hub must send (or HUB_SANDBOX_TOKEN_B)")
    s.set_defaults(func=cmd_partner)
