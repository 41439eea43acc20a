"""Commands module.

RECEIVER (eMSPs): ``POST /commands/receiver/{command}``. The hub validates the
command, finds the CPO (``OCPI-to``, or the owner of ``location_id``, or of
``session_id`` for STOP_SESSION), replaces ``response_url`` with a hub URL of
its own, forwards at once and relays the CPO's CommandResponse unchanged.

SENDER (CPOs): ``POST /commands/sender/{result_id}``, the hub's
``response_url``. Only the command's CPO may post a CommandResult there; the
hub records it and the dispatcher delivers it to the eMSP's own
``response_url`` (see :mod:`scheduler.commands`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from psycopg.rows import dict_row

from handlers.context import WebContext
from handlers.tokens import relay
from hub.domain.commands import Command, record
from hub.errors import HubError, InvalidParameters, NotFound
from hub.ocpi import models
from hub.ocpi.envelope import envelope, format_datetime, parse_datetime
from hub.ocpi.status import OcpiStatus
from hub.ocpi.validation import validate
from hub.routing import DIRECTED

COMMAND_TYPES = tuple(c.value for c in models.CommandType)
WITH_TOKEN = frozenset({"START_SESSION", "RESERVE_NOW"})


class CommandReceiver:
    """An eMSP's command, forwarded to the CPO with the hub's ``response_url``."""

    module = "commands"
    interface = "RECEIVER"

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_post(self, req, resp, command) -> None:
        if command not in COMMAND_TYPES:
            raise InvalidParameters(f"command: {command[:30]!r} is not a CommandType ({', '.join(COMMAND_TYPES)})")
        body = req.get_media()
        validate(models.COMMAND_MODELS[models.CommandType(command)], body)
        routing = req.context.routing
        if command in WITH_TOKEN:
            for field, own in (("country_code", routing.from_country_code), ("party_id", routing.from_party_id)):
                value = str(body["token"][field])
                if value.upper() != own:
                    raise InvalidParameters(f"token.{field}: {value!r} is not the calling eMSP's ({own!r}); "
                                            "an eMSP may only use its own tokens")
        req.context.keep = True  # the command and the forwarded call are recorded whatever comes back
        country_code, party_id = self._cpo(routing, command, body)
        receiver = self.ctx.realtime.receiver(
            module="commands", interface="RECEIVER", country_code=country_code, party_id=party_id,
            roles=frozenset({"CPO"}), rule_pair=lambda key: (key, routing.sender_key))

        result_id = secrets.token_urlsafe(32)
        hub_url = f"{self.ctx.settings.module_url('commands/sender')}/{result_id}"
        body_sent = {**body, "response_url": hub_url}
        # Saved before forwarding: the CPO may post its result before it answers.
        self.ctx.app.save(Command(
            result_id=result_id, command=command, emsp=routing.sender_key, cpo=receiver.key,
            original_response_url=body["response_url"], hub_response_url=hub_url, body_sent=body_sent,
            correlation_id=req.context.correlation_id, request_id=req.context.request_id,
            requested_at=req.context.received_at))
        margin = timedelta(seconds=self.ctx.settings.command_result_margin)
        try:
            response = self.ctx.realtime.forward(
                req.context.uow, receiver, routing, method="POST",
                url=f"{receiver.endpoint.rstrip('/')}/{command}", body=body_sent, module="commands",
                correlation_id=req.context.correlation_id)
        except HubError as exc:
            reason, code, until = exc.message, exc.status_code, format_datetime(datetime.now(UTC) + margin)
            record(self.ctx.app, result_id, lambda c: c.fail(reason, code, until))
            raise
        data = response.data if isinstance(response.data, dict) else {}
        result = data.get("result") if isinstance(data.get("result"), str) else None
        timeout = data.get("timeout") if type(data.get("timeout")) is int else None
        answered = datetime.now(UTC)
        due = answered + timedelta(seconds=max(timeout or 0, 0)) + margin
        valid_until = due
        if command == "RESERVE_NOW":
            valid_until = max(due, parse_datetime(body["expiry_date"]) + margin)
        record(self.ctx.app, result_id, lambda c: c.answer(
            response.http_status, response.status_code, result, timeout, format_datetime(valid_until),
            format_datetime(due) if response.ok and result == "ACCEPTED" else None))
        relay(req, resp, response, receiver)

    def _cpo(self, routing, command: str, body: dict) -> tuple[str, str]:
        """The addressed CPO, or (open routing) the owner of the location or session."""
        if routing.scenario == DIRECTED:
            return routing.to_country_code, routing.to_party_id
        if command == "CANCEL_RESERVATION":
            raise HubError(OcpiStatus.UNKNOWN_RECEIVER,
                           "CANCEL_RESERVATION needs OCPI-to-country-code/OCPI-to-party-id: the hub "
                           "does not know which CPO holds a reservation_id")
        if command == "STOP_SESSION":
            what, object_id = "session", body["session_id"]
            query = ("SELECT DISTINCT country_code, party_id FROM view_objects WHERE module = 'sessions'"
                     " AND object_id = %s AND emsp_country_code = %s AND emsp_party_id = %s")
            params = (object_id.upper(), routing.from_country_code, routing.from_party_id)
        else:
            what, object_id = "location", body["location_id"]
            query = ("SELECT DISTINCT country_code, party_id FROM view_objects WHERE module = 'locations'"
                     " AND object_id = %s")
            params = (object_id.upper(),)
        with self.ctx.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            owners = cur.execute(query, params).fetchall()
        if len(owners) != 1:
            why = "no CPO has pushed" if not owners else "several CPOs have pushed"
            raise HubError(OcpiStatus.UNKNOWN_RECEIVER,
                           f"{why} {what} {object_id}; address the CPO with OCPI-to")
        return owners[0]["country_code"], owners[0]["party_id"]


class CommandResultReceiver:
    """The hub's ``response_url``: the CPO's CommandResult, passed on to the eMSP."""

    module = "commands"
    interface = "SENDER"

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_post(self, req, resp, result_id) -> None:
        routing = req.context.routing
        body = req.get_media()
        now = datetime.now(UTC)

        def receive(command: Command) -> None:
            if routing.sender_key != command.cpo:
                raise InvalidParameters(f"{routing.sender_key.rsplit('/', 1)[0]} (OCPI-from) is not the CPO "
                                        "this command was sent to")
            if routing.scenario == DIRECTED and routing.receiver_key != command.emsp:
                raise InvalidParameters(f"OCPI-to-party-id: {routing.to_country_code}/{routing.to_party_id} "
                                        "did not send this command")
            validate(models.CommandResult, body)
            refusal = command.refusal(now)
            if refusal:
                raise InvalidParameters(refusal)
            command.receive_result(body, req.context.request_id, req.context.received_at)

        if record(self.ctx.app, result_id, receive) is None:
            raise NotFound(f"no command waits for a result at {req.path}", OcpiStatus.INVALID_PARAMETERS)
        resp.media = envelope()


ENDPOINTS = [("commands", "SENDER", "commands/sender"), ("commands", "RECEIVER", "commands/receiver")]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    return [
        ("commands/receiver/{command}", CommandReceiver(ctx)),
        ("commands/sender/{result_id}", CommandResultReceiver(ctx)),
    ]
