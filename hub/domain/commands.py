"""Remote commands (START_SESSION, STOP_SESSION, RESERVE_NOW, CANCEL_RESERVATION,
UNLOCK_CONNECTOR) an eMSP sends a CPO through the hub.

The hub forwards each command with its own ``response_url``,
``{HUB_BASE_URL}/ocpi/2.2.1/commands/sender/{result_id}``, where ``result_id``
is 32 random bytes (``secrets.token_urlsafe``). The aggregate's id is
``uuid5(COMMAND_NAMESPACE, result_id)``, so the URL finds the command and
nothing else does. Events, all under that one originator id:

- ``Requested``: who asked whom, the eMSP's own ``response_url``, the body sent
  to the CPO, the request and correlation ids;
- ``Answered``: the CPO's synchronous CommandResponse (or what came instead);
- ``Failed``: the hub could not forward it (the 4xxx the eMSP got);
- ``ResultReceived``: a CommandResult the CPO posted to the hub's URL;
- ``TimedOut``: no result by the CPO's ``timeout`` (the eMSP is told TIMEOUT then; a real
  result posted within the hub's margin after it is still passed on).

An auditor follows one command from request to result with one command,
``hub audit trace <X-Correlation-ID of the eMSP's request>``: the request the
eMSP sent, these events, the call to the CPO (with its CommandResponse), the
CPO's POST of each result and every delivery of it to the eMSP, in order,
with the capability in the hub's URL redacted.

Bounds that keep the hub's own bookkeeping sane whatever a partner sends:
``MAX_RESULT_WAIT`` (a CPO's CommandResponse ``timeout`` longer than this
counts as this long) and ``MAX_RESERVATION_AHEAD`` (a RESERVE_NOW whose
``expiry_date`` lies further ahead is refused with 2001).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from hub.ocpi.envelope import parse_datetime

COMMAND_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/ocpi/command")
TIMEOUT_MESSAGE = "no result from the CPO within its timeout"
MAX_RESULT_WAIT = timedelta(hours=24)
MAX_RESERVATION_AHEAD = timedelta(days=30)


def command_uuid(result_id: str) -> UUID:
    return uuid5(COMMAND_NAMESPACE, result_id)


class Command(Aggregate):
    @staticmethod
    def create_id(result_id: str, **_: object) -> UUID:
        return command_uuid(result_id)

    @event("Requested")
    def __init__(self, result_id: str, command: str, emsp: str, cpo: str, original_response_url: str,
                 hub_response_url: str, body_sent: dict, correlation_id: str, request_id: str,
                 requested_at: str) -> None:
        self.result_id = result_id
        self.command = command
        self.emsp = emsp
        self.cpo = cpo
        self.original_response_url = original_response_url
        self.hub_response_url = hub_response_url
        self.correlation_id = correlation_id
        self.response: str | None = None  # CommandResponse.result
        self.valid_until: str | None = None
        self.failed = False
        self.results: list[dict] = []
        self.timed_out_at: str | None = None

    @event("Answered")
    def answer(self, http_status: int, status_code: int | None, result: str | None, timeout: int | None,
               valid_until: str, result_due: str | None) -> None:
        """The CPO's answer; ``result_due``: when a missing result counts as a timeout."""
        self.response = result
        self.valid_until = valid_until

    @event("Failed")
    def fail(self, reason: str, status_code: int, valid_until: str) -> None:
        """Not forwarded (or no usable answer): the eMSP got ``status_code`` (4xxx).
        A result the CPO still posts before ``valid_until`` is passed on."""
        self.failed = True
        self.valid_until = valid_until

    @event("ResultReceived")
    def receive_result(self, result: dict, request_id: str, received_at: str) -> None:
        self.results = [*self.results, result]

    @event("TimedOut")
    def time_out(self, at: str) -> None:
        self.timed_out_at = at

    def refusal(self, now: datetime) -> str | None:
        """Why a CommandResult posted ``now`` is refused, or None to accept it.

        Awaiting its first result, an ACCEPTED command takes one until the
        timeout is recorded; otherwise the URL is valid until ``valid_until``:
        the CPO's timeout plus the margin (``HUB_COMMAND_RESULT_MARGIN``), so a
        real result that comes after the eMSP was told TIMEOUT is still passed
        on; for RESERVE_NOW (a later CANCELED_RESERVATION) the reservation's
        expiry plus the margin.
        """
        expired = self.valid_until is not None and now > parse_datetime(self.valid_until)
        if self.timed_out_at and expired:
            return (f"too late: the command timed out at {self.timed_out_at} "
                    "and the eMSP was told so")
        awaiting = self.response == "ACCEPTED" and not self.results and not self.timed_out_at
        if expired and not awaiting:
            return f"too late: this response_url was valid until {self.valid_until}"
        return None

    def is_overdue(self) -> bool:
        """ACCEPTED and still no result (whether the result is due is the caller's query)."""
        return self.response == "ACCEPTED" and not self.results and not self.timed_out_at


def find_command(app, result_id: str) -> Command | None:
    """The command whose hub ``response_url`` ends in ``result_id``, or None."""
    try:
        return app.repository.get(command_uuid(result_id))
    except AggregateNotFoundError:
        return None


def record(app, result_id: str, change: Callable[[Command], bool | None], attempts: int = 5) -> Command | None:
    """Load the command, apply ``change`` and save it in its own transaction.

    The CPO may post its result while the hub still records the answer (or the
    timeout job runs), so a conflicting version is reloaded and ``change``
    decides again. ``change`` returns False to save nothing. None: no such command.
    """
    for _ in range(attempts):
        try:
            command: Command = app.repository.get(command_uuid(result_id))
        except AggregateNotFoundError:
            return None
        if change(command) is False:
            return command
        try:
            app.save(command)
            return command
        except IntegrityError:
            continue
    raise RuntimeError(f"command {command_uuid(result_id)}: too many concurrent changes")

