"""What the hub owes partners, as operators act on it: retry and replay.

The delivery queue belongs to ``scheduler`` (which ``hub`` does not import):
the CLI hands in the queue's functions (``list_deliveries``, ``requeue``,
``replay`` of the scheduler) and these functions choose the parties, call
them and keep an :class:`~hub.domain.audit.OperatorAction` of what was done.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime

from hub.domain.audit import OperatorAction
from hub.services.application import Hub
from hub.services.operators import OperatorError, operator_name
from hub.services.operators.names import PartyName
from hub.services.operators.parties import find

REPLAY_MODULES = ("locations", "tariffs", "sessions", "cdrs", "tokens")


def _for_role(rows: list[dict], party: PartyName | None) -> list[dict]:
    """Rows addressed to ``party``'s role (rows for the whole platform, no role, stay)."""
    if party is None or party.role is None:
        return rows
    return [r for r in rows if not r.get("recipient") or "," in r["recipient"]
            or r["recipient"].count("/") < 2 or r["recipient"] == party.key()]


def listed(list_deliveries: Callable[..., list[dict]], pool, party: PartyName | None,
           failed_only: bool, limit: int) -> list[dict]:
    """Recent deliveries, newest first, to ``party`` if given (its role only, if it names one)."""
    rows = list_deliveries(pool, failed_only=failed_only, party=party.ids if party else None, limit=limit)
    return _for_role(rows, party)


def retry(app: Hub, list_deliveries: Callable[..., list[dict]], requeue: Callable[..., list[int]],
          ids: list[int] | None, party: PartyName | None, all_failed: bool) -> list[int]:
    """Requeue failed deliveries (these ids, this party's, or every one); returns the ids requeued."""
    if not ids and party is None and not all_failed:
        raise OperatorError("name delivery ids, --party CC/PID, or --all-failed")
    if party is not None and party.role is not None:  # the queue filters by CC/PID: pick the role's ids
        ids = [r["id"] for r in listed(list_deliveries, app.pool, party, True, 1_000_000)
               if not ids or r["id"] in ids]
        if not ids:
            requeued: list[int] = []
        else:
            requeued = requeue(app.pool, ids=ids)
    else:
        requeued = requeue(app.pool, ids=ids or None, party=party.ids if party else None)
    app.save(OperatorAction(
        command="deliveries retry",
        arguments={"ids": ids, "party": str(party) if party else None, "all_failed": all_failed},
        operator=operator_name(), outcome=f"requeued {len(requeued)}: {requeued[:50]}"))
    return requeued


def replay(app: Hub, queue_replay: Callable[..., dict[str, int]], party: PartyName,
           module: str | None, since: datetime | None, since_text: str | None) -> tuple[str, dict]:
    """Queue the current state of everything ``party`` may receive (and every CDR of it).

    Every registered role of the ids unless ``party`` names one. Returns the
    correlation id the replay's deliveries carry and the count queued per party and module.
    """
    parties = [p for p in find(app, party) if app.platform(p.platform_id).state == "REGISTERED"]
    if not parties:
        raise OperatorError(f"no registered party {party}: only a party whose platform completed the"
                            " credentials handshake can be replayed to (`hub parties list` shows states)")
    modules = [module] if module else list(REPLAY_MODULES)
    correlation_id = str(uuid.uuid4())
    queued = {}
    for p in parties:
        row = {"country_code": p.country_code, "party_id": p.party_id, "role": p.role,
               "platform_id": p.platform_id, "status": p.status}
        queued[p.key] = queue_replay(app.pool, row, modules=modules, since=since, correlation_id=correlation_id)
    app.save(OperatorAction(
        command="deliveries replay",
        arguments={"party": str(party), "role": party.role, "module": module, "since": since_text},
        operator=operator_name(), outcome=json.dumps(queued), correlation_id=correlation_id))
    return correlation_id, queued
