"""``hub parties sync``: pull a partner's Sender interfaces now (:mod:`hub.services.sync`)."""

from __future__ import annotations

import json

from hub.domain.audit import OperatorAction
from hub.infra.client import OcpiClient
from hub.services.application import Hub
from hub.services.operators import OperatorError, operator_name
from hub.services.operators.names import PartyName
from hub.services.operators.parties import find
from hub.services.sync import Acceptance, ModuleSync, Progress, Sync, SyncError


def sync(app: Hub, client: OcpiClient, name: PartyName, modules: list[str] | tuple[str, ...] = (), *,
         full: bool = False, progress: Progress | None = None,
         accept: Acceptance | None = None, by_operator: bool = False,
         stopping=None) -> list[ModuleSync]:
    """One sync of the party ``name`` denotes (its CPO or eMSP role), per module. ``by_operator``:
    the run is also recorded as an ``OperatorAction`` (``hub parties sync``), with each module's
    outcome and correlation id."""
    parties = find(app, name)
    if not parties:
        raise OperatorError(f"no party {name} (`hub parties list` shows every party)")
    runner = Sync(app, client, accept=accept, stopping=stopping)
    try:
        party = runner.party(parties)
        results = runner.run(party, runner.modules(party, modules), full=full, progress=progress)
    except SyncError as exc:
        raise OperatorError(str(exc)) from None
    if by_operator:
        app.save(OperatorAction(
            command="parties sync", arguments={"party": party.key, "modules": list(modules), "full": full},
            operator=operator_name(),
            outcome=json.dumps({r.module: {"state": r.state, "stored": r.stored, "refused": r.refused,
                                           "correlation_id": r.correlation_id} for r in results}),
            correlation_id=next((r.correlation_id for r in results if r.correlation_id), None)))
    return results


def pulls_of(app: Hub, party) -> list[dict]:
    """Per module the party's role can be pulled for: the last successful pull's start (where the
    next incremental one begins) and the last run (``hub parties show``)."""
    from eventsourcing.application import AggregateNotFoundError

    from hub.domain.sync import PartySync, pullable

    rows = []
    for mod in pullable(party.role):
        try:
            state = app.repository.get(PartySync.create_id(party.key, mod))
        except AggregateNotFoundError:
            rows.append({"module": mod, "last_success": None, "last_run": None, "last_state": "never"})
            continue
        run = state.last_run or {}
        rows.append({"module": mod, "last_success": state.last_success, "last_run": run.get("started_at"),
                     "last_state": run.get("state"), "error": run.get("error")})
    return rows
