"""``hub serve``, ``web``, ``worker`` and ``migrate``: running the hub."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from hub.entrypoints.cli.output import fail
from hub.entrypoints.cli.runtime import Runtime
from hub.infra.config import Settings

log = logging.getLogger("hub.serve")

#: A child that exits this soon after starting did not start; this many in a row and serve gives up.
QUICK_EXIT_SECONDS = 20.0
QUICK_EXITS_TO_GIVE_UP = 3


def cmd_migrate(args) -> int:
    with Runtime(create=True) as rt:
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
            # gunicorn_config.py decides every setting; the command line picks bind and size.
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


def ready_line(settings: Settings, bind: str) -> tuple[str, dict]:
    """What ``hub serve`` says once it serves: where partners connect, and what to do next."""
    next_step = 'hub parties add IN/ABC/CPO --name "ABC Charging"'
    message = (f"hub serving {settings.versions_url} on {bind}; next: onboard a partner with"
               f" `{next_step}` (in another terminal, same directory), see docs/getting-started.md")
    return message, {"versions_url": settings.versions_url, "bind": bind, "next": next_step}


def cmd_serve(args) -> int:
    """Database, schema, then one web and one worker process, supervised.

    "hub serving" is logged once ``/health`` answers. A child that keeps
    failing as it starts (a port already taken, a bad setting) is not
    restarted for ever: serve stops and exits non-zero.
    """
    if _address_in_use(args.bind):
        return fail(f"cannot listen on {args.bind}: the address is already in use"
                    " (another hub or program runs there; pick another with --bind)")
    from contextlib import ExitStack

    from hub.infra.metrics import MULTIPROC_ENV, multiprocess_directory

    rt = Runtime(create=True)
    rt.migrate()
    env = dict(os.environ)
    env["HUB_DATABASE_URL"] = rt.database_url
    env["HUB_SECRET_KEY"] = rt.settings.resolved_secret_key()
    env["HUB_DATA_DIR"] = str(rt.settings.data_dir)
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
            message, extra = ready_line(rt.settings, args.bind)
            log.info(message, extra=extra)
        time.sleep(0.2)
        for name, child in list(children.items()):
            if stopping or child.poll() is None:
                continue
            quick = time.monotonic() - started[name] < QUICK_EXIT_SECONDS
            quick_exits[name] = quick_exits[name] + 1 if quick else 0
            if quick_exits[name] >= QUICK_EXITS_TO_GIVE_UP:
                given_up = name
                break
            log.warning(f"{name} exited with {child.returncode}; restarting")
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
    log.info("hub stopped")
    return 0


def register(sub) -> None:
    sub.add_parser("migrate", help="create or upgrade the database schema (and, embedded, the database)"
                   ).set_defaults(func=cmd_migrate)

    def server_options(p) -> None:
        p.add_argument("--bind", default=os.environ.get("HUB_BIND", "127.0.0.1:8000"))
        p.add_argument("--workers", type=int,
                       default=int(os.environ.get("HUB_WEB_WORKERS") or os.environ.get("WEB_CONCURRENCY") or 2))
        p.add_argument("--threads", type=int, default=int(os.environ.get("HUB_WEB_THREADS", "16")),
                       help="threads per worker (default 8, gthread; 1: sync workers)")

    p = sub.add_parser("serve", help="everything in one: database, schema, web and worker")
    server_options(p)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("web", help="gunicorn serving the OCPI endpoints")
    server_options(p)
    p.set_defaults(func=cmd_web)
    sub.add_parser("worker", help="projections, dispatcher and periodic jobs").set_defaults(func=cmd_worker)
