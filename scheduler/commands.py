"""Command results on their way to the eMSP, and commands whose result never came.

- :class:`CommandResultDispatcher` turns each ``Command.ResultReceived`` (and,
  unless ``HUB_COMMAND_TIMEOUT_RESULT=off``, each ``Command.TimedOut``) into a
  durable delivery: a POST of the CommandResult to the eMSP's own
  ``response_url``, FROM = the CPO, TO = the eMSP, with the command's
  ``X-Correlation-ID`` and the eMSP's token; retried like any delivery.
- :class:`CommandTimeouts` (a worker job) records ``TimedOut`` for commands the
  CPO ACCEPTED but sent no result for by its ``timeout`` (run every 2 s: the eMSP
  hears TIMEOUT a few seconds after the CPO's timeout, not after the margin).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import psycopg

from hub.domain.commands import TIMEOUT_MESSAGE, Command, record
from hub.infra.eventlog import Follower
from hub.ocpi.envelope import format_datetime
from hub.services.application import Hub
from scheduler.outbox import Outgoing, enqueue

log = logging.getLogger(__name__)

TIMEOUT_RESULT = {"result": "TIMEOUT", "message": [{"language": "en", "text": TIMEOUT_MESSAGE}]}


class CommandResultDispatcher(Follower):
    """Reads ``view_commands`` and the parties views: runs after the projections."""

    name = "dispatch-commands"
    event_classes = (Command.ResultReceived, Command.TimedOut)

    def __init__(self, send_timeout_result: bool = True) -> None:
        self.send_timeout_result = send_timeout_result

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        for position, event in events:
            if isinstance(event, Command.TimedOut):
                if not self.send_timeout_result:
                    continue
                body = TIMEOUT_RESULT
            else:
                body = event.result
            row = cur.execute(
                "SELECT c.result_id, c.emsp, c.cpo, c.emsp_response_url, c.correlation_id, v.platform_id"
                " FROM view_commands c JOIN view_parties v"
                " ON v.country_code || '/' || v.party_id || '/' || v.role = c.emsp"
                " WHERE c.command_uuid = %s", (event.originator_id,),
            ).fetchone()
            if row is None:
                log.warning("command %s: no eMSP to pass its result to", event.originator_id)
                continue
            result_id, emsp, cpo, url, correlation_id, platform_id = row
            emsp_cc, emsp_pid = emsp.split("/")[:2]
            cpo_cc, cpo_pid = cpo.split("/")[:2]
            enqueue(cur, Outgoing(
                platform_id=platform_id, recipient=emsp, module="commands", interface="SENDER",
                object_key=f"commands/{result_id}", method="POST", path=url, body=body,
                headers={"OCPI-from-country-code": cpo_cc, "OCPI-from-party-id": cpo_pid,
                         "OCPI-to-country-code": emsp_cc, "OCPI-to-party-id": emsp_pid},
                correlation_id=correlation_id, position=position,
            ))


class CommandTimeouts:
    """Records ``TimedOut`` once for every ACCEPTED command whose result is overdue."""

    def __init__(self, app: Hub) -> None:
        self.app = app

    def run(self) -> int:
        with self.app.pool.connection() as conn:
            due = [r[0] for r in conn.execute(
                "SELECT result_id FROM view_commands WHERE state = 'ANSWERED' AND response = 'ACCEPTED'"
                " AND result_due < now() ORDER BY result_due LIMIT 500").fetchall()]
        timed_out = 0
        for result_id in due:
            command = record(self.app, result_id, _time_out)
            timed_out += bool(command is not None and command.timed_out_at)
        return timed_out


def _time_out(command: Command) -> bool:
    if not command.is_overdue():
        return False  # a result came in, or another worker was first
    command.time_out(format_datetime(datetime.now(UTC)))
    return True
