"""Commands module.

RECEIVER (eMSPs): ``POST /commands/receiver/{command}``. The hub validates the
command (``response_url``: an absolute http(s) URL the outbound guard allows,
see :func:`check_response_url`), finds the CPO (``OCPI-to``,
or the owner of ``location_id``, or of ``session_id`` for STOP_SESSION, or the
CPO that received the RESERVE_NOW for a CANCEL_RESERVATION), replaces
``response_url`` with a hub URL of its own, forwards at once and relays the
CPO's CommandResponse unchanged.

SENDER (CPOs): ``POST /commands/sender/{result_id}``, the hub's
``response_url``. Only the command's CPO may post a CommandResult there; the
hub records it and the dispatcher delivers it to the eMSP's own
``response_url`` (see :mod:`scheduler.commands`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from handlers.context import WebContext
from handlers.tokens import relay
from hub.domain.commands import MAX_RESERVATION_AHEAD, MAX_RESULT_WAIT, Command, find_command, record
from hub.domain.routing import DIRECTED
from hub.infra.outbound import OutboundGuard, OutboundRefused
from hub.ocpi import models
from hub.ocpi.envelope import envelope, format_datetime, parse_datetime
from hub.ocpi.errors import HubError, InvalidParameters, NotFound
from hub.ocpi.status import OcpiStatus
from hub.ocpi.urls import endpoint_url
from hub.ocpi.validation import validate
from hub.services.realtime import check_forwardable
from projections.queries import location_owners, reservation_cpos, session_owners

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
        check_forwardable(body)  # before the command is stored
        routing = req.context.routing
        if command in WITH_TOKEN:
            for field, own in (("country_code", routing.from_country_code), ("party_id", routing.from_party_id)):
                value = str(body["token"][field])
                if value.upper() != own:
                    raise InvalidParameters(f"token.{field}: {value!r} is not the calling eMSP's ({own!r}); "
                                            "an eMSP may only use its own tokens")
        check_response_url(body["response_url"], self.ctx.client.guard)
        now = datetime.now(UTC)
        expiry = None
        if command == "RESERVE_NOW":
            expiry = parse_datetime(body["expiry_date"])
            if expiry > now + MAX_RESERVATION_AHEAD:
                raise InvalidParameters(f"expiry_date: {body['expiry_date']!r} is more than "
                                        f"{MAX_RESERVATION_AHEAD.days} days ahead")
        req.context.keep = True  # the command and the forwarded call are recorded whatever comes back
        country_code, party_id = self._cpo(routing, command, body)
        receiver = self.ctx.realtime.receiver(
            module="commands", requester=routing.sender_key, country_code=country_code, party_id=party_id)

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
        # A reservation's URL stays valid until its expiry (plus the margin), whatever else happens.
        reserved_until = expiry + margin if expiry is not None else None
        try:
            response = self.ctx.realtime.forward(
                req.context.uow, receiver, routing, method="POST",
                url=endpoint_url(receiver.endpoint, f"/{command}"), body=body_sent, module="commands",
                correlation_id=req.context.correlation_id, answer_fields=("result", "timeout"))
        except HubError as exc:
            until = max(filter(None, (datetime.now(UTC) + margin, reserved_until)))
            reason, code = exc.message, exc.status_code
            record(self.ctx.app, result_id, lambda c: c.fail(reason, code, format_datetime(until)))
            raise
        data = response.data if isinstance(response.data, dict) else {}
        result = data.get("result") if isinstance(data.get("result"), str) else None
        timeout = data.get("timeout") if type(data.get("timeout")) is int else None
        # The CPO's timeout counts for at most MAX_RESULT_WAIT (a huge one must not overflow the dates).
        # (A number a float would change, such as 1e300, is read as a Decimal: hub/ocpi/numbers.py.)
        given = data.get("timeout")
        seconds = float(given) if isinstance(given, int | float | Decimal) and not isinstance(given, bool) else 0
        wait = timedelta(seconds=min(max(seconds, 0), MAX_RESULT_WAIT.total_seconds()))
        # The eMSP hears TIMEOUT once the CPO's own timeout has passed (the worker's job runs every
        # 2 s); the URL still takes a late real result for the margin after it, which is relayed too.
        due = datetime.now(UTC) + wait
        valid_until = max(filter(None, (due + margin, reserved_until)))
        record(self.ctx.app, result_id, lambda c: c.answer(
            response.http_status, response.status_code, result, timeout, format_datetime(valid_until),
            format_datetime(due) if response.ok and result == "ACCEPTED" else None))
        relay(req, resp, response, receiver)

    def _cpo(self, routing, command: str, body: dict) -> tuple[str, str]:
        """The addressed CPO, or (open routing) the owner of the location or session,
        or the CPO that received this eMSP's RESERVE_NOW with the reservation_id."""
        if routing.scenario == DIRECTED:
            return routing.to_country_code, routing.to_party_id
        pool = self.ctx.app.pool
        if command == "CANCEL_RESERVATION":
            reservation_id = body["reservation_id"]
            what = f"received a RESERVE_NOW from {routing.sender_key} with reservation_id {reservation_id}"
            owners = reservation_cpos(pool, routing.sender_key, reservation_id)
        elif command == "STOP_SESSION":
            what = f"pushed session {body['session_id']}"
            owners = session_owners(pool, body["session_id"], (routing.from_country_code, routing.from_party_id))
        else:
            what = f"pushed location {body['location_id']}"
            owners = location_owners(pool, body["location_id"])
        return self.ctx.realtime.sole_owner(owners, module="commands", requester=routing.sender_key, what=what)


def check_response_url(url: str, guard: OutboundGuard) -> None:
    """2001 unless ``url`` is an absolute http(s) URL the outbound guard lets the hub call
    (hub/infra/outbound.py): the hub POSTs the result there."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidParameters(f"response_url: {url[:80]!r} is not an absolute http or https URL")
    try:
        guard.check_url(url)
    except OutboundRefused as exc:
        raise InvalidParameters(f"response_url: {exc}") from None


class CommandResultReceiver:
    """The hub's ``response_url``: the CPO's CommandResult, passed on to the eMSP."""

    module = "commands"
    interface = "SENDER"

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def sender_named_by_url(self, req, params: dict) -> tuple[str, str] | None:
        """The URL names the exchange: a result posted without OCPI-from headers comes from the
        command's CPO (the middleware still checks it is a party of the caller's connection, and the
        handler that OCPI-to, if sent, names the command's eMSP). A route whose URL names its
        exchange offers this method; see handlers/middleware.py."""
        command = find_command(self.ctx.app, params.get("result_id", ""))
        if command is None:
            return None
        cc, pid, _role = command.cpo.split("/")
        return cc, pid

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
