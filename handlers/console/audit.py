"""The console's trace, routing rules and audit pages."""

from __future__ import annotations

import falcon

from handlers.console.base import PREFIX, Page, back
from hub.domain.rules import MODULES
from hub.services.console import ConsoleSession
from hub.services.operators import OperatorError, routing_rules
from hub.services.operators.names import parse_party_name
from projections import console as reads
from projections.recipients import explain
from projections.rules import list_rules


class Trace(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from hub.audit.history import AuditLog

        session = self.gate.viewer(req)
        q = (req.get_param("q") or "").strip()
        steps, error, correlation_id = [], None, q
        words = q.split()
        if len(words) == 3:  # an object: MODULE CC/PID ID, its whole history (`hub audit history`)
            steps, error = self._history(*words)
            correlation_id = None
        elif q:
            steps = AuditLog(self.app).trace(q)
            if not steps:  # a request id: trace its exchange
                correlation_id = reads.correlation_of_request(self.app, q)
                steps = AuditLog(self.app).trace(correlation_id) if correlation_id else []
            if not steps:
                error = (f"no record carries correlation id or request id {q} (an object is written"
                         " MODULE CC/PID ID, e.g. locations IN/ECP L1)")
        self.gate.render(resp, "trace.html", session, q=q, steps=steps, error=error, correlation_id=correlation_id)

    def _history(self, module: str, owner: str, object_id: str) -> tuple[list[dict], str | None]:
        from hub.audit.events import OBJECT_MODULES, object_id_for
        from hub.audit.history import AuditLog

        if module.lower() not in OBJECT_MODULES:
            return [], f"{module}: an object's module is one of {', '.join(sorted(OBJECT_MODULES))}"
        try:
            name = parse_party_name(owner)
            return AuditLog(self.app).history(module.lower(), name.country_code, name.party_id,
                                              object_id_for(module.lower(), object_id)), None
        except ValueError as exc:
            return [], f"owner {owner}: {exc}"
        except LookupError as exc:
            return [], str(exc.args[0])


def _name(text: str, field: str):
    try:
        return parse_party_name(text.strip())
    except ValueError as exc:
        raise OperatorError(f"{field}: {exc}") from None


class Rules(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.viewer(req)
        sender, receiver = req.get_param("sender") or "", req.get_param("receiver") or ""
        module = req.get_param("module") or "locations"
        explained, error = None, None
        if sender and receiver:
            try:
                if module not in MODULES:
                    raise OperatorError(f"module {module!r}: one of {', '.join(MODULES)}")
                explained = routing_rules.explain(
                    self.app, lambda cpo, emsp, mod: explain(self.app.pool, cpo, emsp, mod),
                    _name(sender, "sender"), _name(receiver, "receiver"), module)
            except OperatorError as exc:
                error = str(exc)
        rows = [{**r, "updated_at": r["updated_at"].isoformat(timespec="seconds")} for r in list_rules(self.app.pool)]
        self.gate.render(resp, "rules.html", session, notice=req.get_param("notice"), rules=rows,
                         modules=MODULES, sender=sender, receiver=receiver, module=module,
                         explained=explained, error=error)

    def act(self, req, resp, session: ConsoleSession, form: dict) -> None:
        args = {k: form.get(k, "") for k in ("cpo", "emsp", "module", "effect", "reason")}
        try:
            if args["effect"] not in ("allow", "deny"):
                raise OperatorError("effect: allow or deny")
            if args["module"] not in (*MODULES, "*"):
                raise OperatorError(f"module {args['module']!r}: one of {', '.join(MODULES)} or *")
            row, changed = routing_rules.set_rule(
                self.app, _name(args["cpo"], "cpo"), _name(args["emsp"], "emsp"), args["module"], args["effect"],
                f"{args['reason']} (by {session.operator}, console)".strip(), self._refresh)
        except OperatorError as exc:
            self.gate.console.record("console routing set", args, session.operator, f"refused: {exc}")
            raise back(f"{PREFIX}/rules", f"rule not saved: {exc}") from None
        self.gate.console.record("console routing set", args, session.operator, "changed" if changed else "unchanged")
        raise back(f"{PREFIX}/rules", f"{row['effect']} {row['cpo']} / {row['emsp']} ({row['module']})"
                                      + ("" if changed else ": already in force"))

    def _refresh(self, *_: object) -> None:
        if self.gate.ctx.freshness is not None:
            self.gate.ctx.freshness.invalidate()


class RuleRemove(Rules):
    def act(self, req, resp, session: ConsoleSession, form: dict) -> None:
        args = {k: form.get(k, "") for k in ("cpo", "emsp", "module")}
        try:
            cpo, emsp = routing_rules.remove_rule(self.app, _name(args["cpo"], "cpo"), _name(args["emsp"], "emsp"),
                                                  args["module"] or "*", self._refresh)
        except OperatorError as exc:
            self.gate.console.record("console routing remove", args, session.operator, f"refused: {exc}")
            raise back(f"{PREFIX}/rules", f"rule not removed: {exc}") from None
        self.gate.console.record("console routing remove", args, session.operator, "removed")
        raise back(f"{PREFIX}/rules", f"removed the rule for {cpo} / {emsp} ({args['module'] or '*'})")


class Audit(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.viewer(req)
        job = reads.last_verification(self.app)
        self.gate.render(resp, "audit.html", session, notice=req.get_param("notice"), job=job,
                         checkpoints=reads.checkpoints(self.app))


class AuditAction(Page):
    def act(self, req, resp, session: ConsoleSession, form: dict, action: str) -> None:
        from hub.services.operators.audit import checkpoint

        if action == "verify":
            job_id = self.gate.console.start_verify(session.operator)
            self.gate.console.record("console audit verify", {"job": job_id}, session.operator, "started")
            raise back(f"{PREFIX}/audit", f"verification {job_id} started")
        if action != "checkpoint":
            raise falcon.HTTPNotFound()
        try:
            head, _ = checkpoint(self.app.settings, self.app.database_url)
        except OperatorError as exc:
            self.gate.console.record("console audit checkpoint", {}, session.operator, f"refused: {exc}")
            raise back(f"{PREFIX}/audit", f"no checkpoint: {exc}") from None
        self.gate.console.record("console audit checkpoint", {}, session.operator, f"signed size {head.size}")
        raise back(f"{PREFIX}/audit", f"signed checkpoint of tree size {head.size}")


class VerifyFragment(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        session = self.gate.viewer(req)
        self.gate.render(resp, "_verify.html", session, job=reads.verification(self.app, job_id))
