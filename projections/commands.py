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
    partitioned = True  # one row per command (originator)
    read_by_dispatchers = True

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
        """The batch folded into the commands' rows in memory, then written in one statement
        (the same rows as one statement per event)."""
        if not events:
            return
        uuids = list({e.originator_id for _, e in events})
        result_ids = list({e.result_id for _, e in events if isinstance(e, Command.Requested)})
        by_uuid: dict = {}
        by_result: dict = {}
        for found in cur.execute(f"SELECT {', '.join(COLUMNS)} FROM view_commands"
                                 " WHERE command_uuid = ANY(%s) OR result_id = ANY(%s)",
                                 (uuids, result_ids)).fetchall():
            row = dict(zip(COLUMNS, found, strict=True))
            by_uuid[row["command_uuid"]] = by_result[row["result_id"]] = row
        dirty: dict = {}
        for position, e in events:
            if isinstance(e, Command.Requested):
                if e.result_id in by_result:
                    continue  # as INSERT ... ON CONFLICT (result_id) DO NOTHING
                reservation_id = (e.body_sent or {}).get("reservation_id") if e.command == "RESERVE_NOW" else None
                row = dict.fromkeys(COLUMNS)
                row.update(result_id=e.result_id, command_uuid=e.originator_id, command=e.command, emsp=e.emsp,
                           cpo=e.cpo, state="REQUESTED", emsp_response_url=e.original_response_url,
                           correlation_id=e.correlation_id, requested_at=_at(e.requested_at), position=position,
                           reservation_id=str(reservation_id).upper() if reservation_id is not None else None)
                by_uuid[e.originator_id] = by_result[e.result_id] = row
            else:
                row = by_uuid.get(e.originator_id)
                if row is None:
                    continue  # as an UPDATE that finds no row
                if isinstance(e, Command.Answered):
                    # A result may have come in before the answer was recorded: keep its state.
                    row.update(state="ANSWERED" if row["state"] == "REQUESTED" else row["state"],
                               response=e.result, result_due=_at(e.result_due), valid_until=_at(e.valid_until),
                               answered_at=e.timestamp)
                elif isinstance(e, Command.Failed):
                    row.update(state="FAILED" if row["state"] == "REQUESTED" else row["state"],
                               valid_until=_at(e.valid_until), answered_at=e.timestamp)
                elif isinstance(e, Command.ResultReceived):
                    row.update(state="RESULT_RECEIVED", result=e.result.get("result"), result_at=_at(e.received_at))
                elif isinstance(e, Command.TimedOut):
                    row.update(state="TIMED_OUT", timed_out_at=_at(e.at))
                else:
                    continue
                row["position"] = position
            dirty[row["result_id"]] = row
        if dirty:
            cur.execute(UPSERT, [[row[c] for row in dirty.values()] for c in COLUMNS])


COLUMNS = ("result_id", "command_uuid", "command", "emsp", "cpo", "state", "response", "result",
           "emsp_response_url", "correlation_id", "result_due", "valid_until", "requested_at", "answered_at",
           "result_at", "timed_out_at", "position", "reservation_id")
TYPES = ("text", "uuid", "text", "text", "text", "text", "text", "text", "text", "text", "timestamptz",
         "timestamptz", "timestamptz", "timestamptz", "timestamptz", "timestamptz", "bigint", "text")
UPSERT = (
    f"INSERT INTO view_commands ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"%b::{t}[]" for t in TYPES)  # arrays in binary: no text escaping
    + ") ON CONFLICT (result_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
)
