"""What every console page shares: the session cookie, CSRF, roles, forms and templates.

Console resources are ``public`` to the OCPI middleware (no partner token is ever
looked at here): their own gate is the console session (:class:`Gate`). A GET
without a live session is sent to the login page; a POST needs a live session,
the session's CSRF token, and the admin role (else 403 and nothing happens).
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, quote

import falcon
import jinja2

from hub.services.console import Console, ConsoleSession

log = logging.getLogger("hub.console")

COOKIE = "hub_console"
PREFIX = "/console"
MAX_FORM_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
                               " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)  # a missing value renders empty, not a 500


class Refused(Exception):
    """A console request refused: ``status`` and the sentence shown."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Gate:
    """The console's sessions for one web process, and its page helpers."""

    def __init__(self, ctx, queue=None) -> None:
        self.ctx = ctx
        self.queue = queue  # scheduler.outbox's functions, handed in by the entry point (or None)
        self.console = Console(ctx.app, absolute=ctx.settings.console_session_seconds,
                               idle=ctx.settings.console_idle_seconds)
        self.secure = ctx.settings.base_url.startswith("https://")

    # Sessions ---------------------------------------------------------------------
    def session(self, req: falcon.Request) -> ConsoleSession | None:
        values = req.get_cookie_values(COOKIE) or []
        return self.console.session(values[0]) if values else None

    def set_cookie(self, resp: falcon.Response, session_id: str) -> None:
        resp.set_cookie(COOKIE, session_id, path=PREFIX, secure=self.secure, http_only=True, same_site="Strict",
                        max_age=int(self.ctx.settings.console_session_seconds))

    def clear_cookie(self, resp: falcon.Response) -> None:
        resp.unset_cookie(COOKIE, same_site="Strict", path=PREFIX)

    def viewer(self, req: falcon.Request) -> ConsoleSession:
        """The session of a GET; no live session: to the login page."""
        session = self.session(req)
        if session is None:
            target = quote(req.relative_uri, safe="")
            raise falcon.HTTPSeeOther(f"{PREFIX}/login?next={target}")
        return session

    def actor(self, req: falcon.Request, form: dict) -> ConsoleSession:
        """The session of a POST that changes something: live, right CSRF token, admin."""
        session = self.session(req)
        if session is None:
            raise Refused("401 Unauthorized", "your console session has ended: log in again")
        if not self.console.csrf_ok(session, form.get("csrf")):
            log.warning("console: POST %s by %s refused: CSRF token missing or wrong", req.path, session.operator)
            raise Refused("403 Forbidden", "this form is stale or was not sent by the console (CSRF token"
                                           " missing or wrong): reload the page and try again")
        if not session.admin:
            raise Refused("403 Forbidden", f"{session.operator} is a viewer: only an admin may change anything"
                                           " (`hub operators add NAME --role admin`)")
        return session

    # Pages ------------------------------------------------------------------------
    def render(self, resp: falcon.Response, template: str, session: ConsoleSession | None = None,
               status: str = "200 OK", **values) -> None:
        resp.status = status
        resp.content_type = "text/html; charset=utf-8"
        for name, value in SECURITY_HEADERS.items():
            resp.set_header(name, value)
        resp.text = _templates.get_template(template).render(
            session=session, prefix=PREFIX, notice=values.pop("notice", None), **values)

    def refused(self, resp: falcon.Response, exc: Refused, session: ConsoleSession | None = None) -> None:
        self.render(resp, "refused.html", session, status=exc.status, message=exc.message)


def read_form(req: falcon.Request) -> dict[str, str]:
    """The urlencoded body (the app's media handlers take every body as JSON, so read it here)."""
    length = req.content_length or 0
    if length > MAX_FORM_BYTES:
        raise Refused("413 Payload Too Large", "the form is too large")
    raw = req.bounded_stream.read(length).decode("utf-8", "replace") if length else ""
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def back(to: str, notice: str) -> falcon.HTTPSeeOther:
    """Post/redirect/get: to ``to`` with a one-line notice shown there."""
    joiner = "&" if "?" in to else "?"
    return falcon.HTTPSeeOther(f"{to}{joiner}notice={quote(notice[:300], safe='')}")


class Page:
    """A console resource (public to the OCPI middleware: the gate is the console session)."""

    public = True

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    @property
    def app(self):
        return self.gate.ctx.app

    def on_post(self, req: falcon.Request, resp: falcon.Response, **params) -> None:
        try:
            form = read_form(req)
            session = self.gate.actor(req, form)
        except Refused as exc:
            self.gate.refused(resp, exc, self.gate.session(req))
            return
        self.act(req, resp, session, form, **params)

    def act(self, req, resp, session: ConsoleSession, form: dict, **params) -> None:
        raise falcon.HTTPMethodNotAllowed(["GET"])
