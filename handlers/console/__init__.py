"""The operations console at ``/console`` (docs/console.md): server-rendered pages over the
operator services and read models; it holds no business logic of its own.

``routes(ctx, queue)``: ``queue`` is the delivery queue's functions (``list_deliveries``,
``requeue`` of ``scheduler.outbox``), handed in by the entry point since handlers do not
import the scheduler; without it the party page says the queue is not available here.
"""

from __future__ import annotations

from handlers.console.actions import PartyAction
from handlers.console.audit import Audit, AuditAction, RuleRemove, Rules, Trace, VerifyFragment
from handlers.console.auth import Login, Logout, Static
from handlers.console.base import PREFIX, Gate
from handlers.console.pages import Overview, OverviewFragment, Parties, PartyPage


def routes(ctx, queue=None) -> list[tuple[str, object]]:
    gate = Gate(ctx, queue)
    return [
        (PREFIX, Overview(gate)),
        (f"{PREFIX}/login", Login(gate)),
        (f"{PREFIX}/logout", Logout(gate)),
        (f"{PREFIX}/static/{{name}}", Static(gate)),
        (f"{PREFIX}/fragments/overview", OverviewFragment(gate)),
        (f"{PREFIX}/parties", Parties(gate)),
        (f"{PREFIX}/parties/{{cc}}/{{pid}}/{{role}}", PartyPage(gate)),
        (f"{PREFIX}/parties/{{cc}}/{{pid}}/{{role}}/{{action}}", PartyAction(gate)),
        (f"{PREFIX}/trace", Trace(gate)),
        (f"{PREFIX}/rules", Rules(gate)),
        (f"{PREFIX}/rules/remove", RuleRemove(gate)),
        (f"{PREFIX}/audit", Audit(gate)),
        (f"{PREFIX}/audit/{{action}}", AuditAction(gate)),
        (f"{PREFIX}/fragments/verify/{{job_id:int}}", VerifyFragment(gate)),
    ]
