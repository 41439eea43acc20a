"""Logging in and out of the console, and its two static files."""

from __future__ import annotations

from pathlib import Path

import falcon

from handlers.console.base import PREFIX, SECURITY_HEADERS, Page, Refused, read_form
from hub.services.console import LoginRefused

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {"console.js": "application/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}


def _safe_next(target: str | None) -> str:
    """Only a console path (no other host, no scheme-relative URL) is followed after login."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


class Login(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.gate.session(req) is not None:
            raise falcon.HTTPSeeOther(_safe_next(req.get_param("next")))
        self.gate.render(resp, "login.html", next=_safe_next(req.get_param("next")), error=None)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            form = read_form(req)
        except Refused as exc:
            self.gate.refused(resp, exc)
            return
        target = _safe_next(form.get("next"))
        try:
            session = self.gate.console.login(form.get("name", ""), form.get("secret", ""), req.remote_addr)
        except LoginRefused as exc:
            status = "429 Too Many Requests" if "too many" in str(exc) else "401 Unauthorized"
            self.gate.render(resp, "login.html", status=status, next=target, error=str(exc))
            return
        self.gate.set_cookie(resp, session.session_id)
        raise falcon.HTTPSeeOther(target)


class Logout(Page):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Any live session may log itself out (viewers too), with its CSRF token."""
        form = read_form(req)
        session = self.gate.session(req)
        if session is not None and self.gate.console.csrf_ok(session, form.get("csrf")):
            self.gate.console.logout(session)
            self.gate.clear_cookie(resp)
        elif session is not None:
            self.gate.refused(resp, Refused("403 Forbidden", "log out from the console's own button"), session)
            return
        raise falcon.HTTPSeeOther(f"{PREFIX}/login")


class Static(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in STATIC_TYPES:
            raise falcon.HTTPNotFound()
        resp.content_type = STATIC_TYPES[name]
        resp.data = (STATIC / name).read_bytes()
        resp.set_header("Cache-Control", "max-age=300")
        resp.set_header("X-Content-Type-Options", SECURITY_HEADERS["X-Content-Type-Options"])
