"""What an admin does to one party from the console: suspend, resume, retry, sync, check.

Each action calls the operator service the CLI calls and is recorded as an
``OperatorAction`` with the console operator's name (``console parties ...``).
"""

from __future__ import annotations

import falcon

from handlers.console.base import PREFIX, Page, back
from handlers.console.pages import PartyPage, party_name
from hub.services.console import ConsoleSession
from hub.services.operators import OperatorError, parties
from hub.services.operators.sync import sync

ACTIONS = ("suspend", "resume", "retry", "sync", "check")


class PartyAction(Page):
    def act(self, req: falcon.Request, resp: falcon.Response, session: ConsoleSession, form: dict,
            cc: str, pid: str, role: str, action: str) -> None:
        if action not in ACTIONS:
            raise falcon.HTTPNotFound()
        here = f"{PREFIX}/parties/{cc}/{pid}/{role}"
        record = self.gate.console.record
        try:
            name = party_name(cc, pid, role)
            if action == "check":
                self._check(req, resp, session, name, cc, pid, role)
                return
            notice = getattr(self, f"_{action}")(session, name, form)
        except OperatorError as exc:
            record(f"console parties {action}", {"party": f"{cc}/{pid}/{role}"}, session.operator, f"refused: {exc}")
            raise back(here, f"{action} not done: {exc}") from None
        raise back(here, notice)

    def _refresh(self, *_: object) -> None:
        """This process sees the change at once (other web processes within HUB_CACHE_MAX_AGE)."""
        ctx = self.gate.ctx
        ctx.log.catch_up(ctx.parties)
        if ctx.freshness is not None:
            ctx.freshness.invalidate()

    def _suspend(self, session: ConsoleSession, name, form: dict) -> str:
        reason = form.get("reason", "").strip()
        if not reason:
            raise OperatorError("give a reason for the suspension (it is kept in the log)")
        party = parties.suspend(self.app, name, f"{reason} (by {session.operator}, console)", self._refresh)
        self.gate.console.record("console parties suspend", {"party": party.key, "reason": reason},
                                 session.operator, "suspended")
        return f"{party.key} suspended: its requests are refused and nothing is delivered to it"

    def _resume(self, session: ConsoleSession, name, form: dict) -> str:
        party = parties.resume(self.app, name, self._refresh)
        self.gate.console.record("console parties resume", {"party": party.key}, session.operator,
                                 f"resumed: {party.state}")
        return f"{party.key} resumed ({party.state})"

    def _retry(self, session: ConsoleSession, name, form: dict) -> str:
        from hub.services.operators.deliveries import retry

        queue = self.gate.queue
        if queue is None:
            raise OperatorError("the delivery queue is not available in this process: use `hub deliveries retry`")
        ids = retry(self.app, queue.list_deliveries, queue.requeue, None, name, False)
        self.gate.console.record("console deliveries retry", {"party": str(name)}, session.operator,
                                 f"requeued {len(ids)}: {ids[:50]}")
        return f"requeued {len(ids)} parked deliveries" + (f" ({', '.join(map(str, ids[:20]))})" if ids else "")

    def _sync(self, session: ConsoleSession, name, form: dict) -> str:
        results = sync(self.app, self.gate.ctx.client, name)
        outcome = {r.module: {"state": r.state, "stored": r.stored, "refused": r.refused,
                              "correlation_id": r.correlation_id} for r in results}
        self.gate.console.record("console parties sync", {"party": str(name)}, session.operator, outcome,
                                 correlation_id=next((r.correlation_id for r in results if r.correlation_id), None))
        return "sync: " + (", ".join(f"{r.module} {r.state} ({r.stored} stored)" for r in results) or "nothing to pull")

    def _check(self, req, resp, session: ConsoleSession, name, cc: str, pid: str, role: str) -> None:
        try:
            from hub.services.operators.check import check
        except ImportError:
            raise back(f"{PREFIX}/parties/{name}", "check not available in this hub version") from None
        report = check(self.app, self.gate.ctx.client, name)
        self.gate.console.record("console parties check", {"party": str(name)}, session.operator,
                                 {"ok": report.ok, "failed": [r for r in report.rows if r.get("verdict") != "ok"][:20]})
        PartyPage(self.gate).on_get(req, resp, cc, pid, role, report=report,
                                    notice="check passed" if report.ok else "check found problems")
