"""``hub parties sync``: pull a partner's Sender interfaces now (:mod:`hub.services.sync`)."""

from __future__ import annotations

from hub.infra.client import OcpiClient
from hub.services.application import Hub
from hub.services.operators import OperatorError
from hub.services.operators.names import PartyName
from hub.services.operators.parties import find
from hub.services.sync import Acceptance, ModuleSync, Progress, Sync, SyncError


def sync(app: Hub, client: OcpiClient, name: PartyName, modules: list[str] | tuple[str, ...] = (), *,
         full: bool = False, progress: Progress | None = None,
         accept: Acceptance | None = None) -> list[ModuleSync]:
    """One sync of the party ``name`` denotes (its CPO or eMSP role), per module."""
    parties = find(app, name)
    if not parties:
        raise OperatorError(f"no party {name} (`hub parties list` shows every party)")
    runner = Sync(app, client, accept=accept)
    try:
        party = runner.party(parties)
        return runner.run(party, runner.modules(party, modules), full=full, progress=progress)
    except SyncError as exc:
        raise OperatorError(str(exc)) from None
