"""Commands as the hub knows them now: one row per command in ``view_commands``.

``state``: ``REQUESTED`` (forwarded, no answer yet), ``ANSWERED`` (the CPO
answered; ``response`` is its CommandResponse ``result``), ``FAILED`` (the hub
could not forward it), ``RESULT_RECEIVED`` (``result`` is the last
CommandResult), ``TIMED_OUT``. ``result_due`` (ACCEPTED answers only) is when
a missing result counts as a timeout; ``valid_until`` is how long the hub's
``response_url`` takes results. The dispatcher reads the eMSP's own
``response_url`` and the correlation id from here; a CANCEL_RESERVATION
without ``OCPI-to`` finds its CPO by the RESERVE_NOW's ``reservation_id``.
"""

from __future__ import annotations

from typing import Any

import psycopg

from hub.domain.commands import Command
from hub.infra.eventlog import Follower
from hub.ocpi.envelope import parse_datetime


def _at(value: str | None):
    return parse_datetime(value) if value else None


class CommandsProjection(Follower):
    name = "commands"
    event_classes = (Command.Requested, Command.Answered, Command.Failed, Command.ResultReceived,
                     Command.TimedOut)

    def ddl(self) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS view_commands (
                result_id text PRIMARY KEY,
                command_uuid uuid UNIQUE NOT NULL,
                command text NOT NULL,
                emsp text NOT NULL,
                cpo text NOT NULL,
                state text NOT NULL,
                response text,
                result text,
                emsp_response_url text NOT NULL,
                correlation_id text NOT NULL,
                result_due timestamptz,
                valid_until timestamptz,
                requested_at timestamptz NOT NULL,
                answered_at timestamptz,
                result_at timestamptz,
                timed_out_at timestamptz,
                position bigint NOT NULL
            )""",
            """CREATE INDEX IF NOT EXISTS view_commands_due ON view_commands (result_due)
                WHERE state = 'ANSWERED' AND response = 'ACCEPTED'""",
            # Added later: filled for commands recorded since (``hub projections rebuild`` fills the rest).
            "ALTER TABLE view_commands ADD COLUMN IF NOT EXISTS reservation_id text",
            """CREATE INDEX IF NOT EXISTS view_commands_reservation ON view_commands (emsp, reservation_id)
                WHERE command = 'RESERVE_NOW'""",
        ]

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        for position, e in events:
            if isinstance(e, Command.Requested):
                reservation_id = (e.body_sent or {}).get("reservation_id") if e.command == "RESERVE_NOW" else None
                cur.execute(
                    "INSERT INTO view_commands (result_id, command_uuid, command, emsp, cpo, state,"
                    " emsp_response_url, correlation_id, requested_at, position, reservation_id)"
                    " VALUES (%s,%s,%s,%s,%s,'REQUESTED',%s,%s,%s,%s,%s) ON CONFLICT (result_id) DO NOTHING",
                    (e.result_id, e.originator_id, e.command, e.emsp, e.cpo, e.original_response_url,
                     e.correlation_id, _at(e.requested_at), position,
                     str(reservation_id).upper() if reservation_id is not None else None))
            elif isinstance(e, Command.Answered):
                # A result may have come in before the answer was recorded: keep its state.
                cur.execute(
                    "UPDATE view_commands SET state = CASE WHEN state = 'REQUESTED' THEN 'ANSWERED'"
                    " ELSE state END, response = %s, result_due = %s, valid_until = %s, answered_at = %s,"
                    " position = %s WHERE command_uuid = %s",
                    (e.result, _at(e.result_due), _at(e.valid_until), e.timestamp, position, e.originator_id))
            elif isinstance(e, Command.Failed):
                cur.execute(
                    "UPDATE view_commands SET state = CASE WHEN state = 'REQUESTED' THEN 'FAILED'"
                    " ELSE state END, valid_until = %s, answered_at = %s, position = %s"
                    " WHERE command_uuid = %s",
                    (_at(e.valid_until), e.timestamp, position, e.originator_id))
            elif isinstance(e, Command.ResultReceived):
                cur.execute(
                    "UPDATE view_commands SET state = 'RESULT_RECEIVED', result = %s, result_at = %s,"
                    " position = %s WHERE command_uuid = %s",
                    (e.result.get("result"), _at(e.received_at), position, e.originator_id))
            elif isinstance(e, Command.TimedOut):
                cur.execute(
                    "UPDATE view_commands SET state = 'TIMED_OUT', timed_out_at = %s, position = %s"
                    " WHERE command_uuid = %s",
                    (_at(e.at), position, e.originator_id))
