"""Smart charging (ChargingProfiles) exchanges relayed through the hub.

An eMSP or SCSP (the requester) asks the CPO that runs a session for its active
profile (GET), sets one (PUT SetChargingProfile) or clears it (DELETE). As for
commands, the hub forwards the request with its own ``response_url``,
``{HUB_BASE_URL}/ocpi/2.2.1/chargingprofiles/sender/results/{result_id}``
(``result_id``: 32 random bytes), and the CPO's asynchronous result is posted
there. The aggregate's id is ``uuid5(PROFILE_NAMESPACE, result_id)``: the URL
finds the exchange and nothing else does. Events of a :class:`ProfileRequest`:

- ``Requested``: who asked whom, which call, the requester's own ``response_url``;
- ``Answered``: the CPO's synchronous ChargingProfileResponse (or what came instead);
- ``Failed``: the hub could not forward it (the 4xxx the requester got);
- ``ResultReceived``: a result the CPO posted, with everything its delivery to the
  requester's ``response_url`` needs (the dispatcher reads nothing else).

A CPO's unsolicited ``PUT {sender}/{session_id}`` (an ActiveChargingProfile that
changed) is one :class:`ProfileUpdate`, recorded with its recipient: the party that
owns the session (the eMSP of its ``cdr_token``) or the party named with ``OCPI-to``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from hub.ocpi.envelope import parse_datetime

PROFILE_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/ocpi/chargingprofiles")
# The result each call's response_url receives (mod_charging_profiles.asciidoc).
RESULT_MODELS = {"GET": "ActiveChargingProfileResult", "PUT": "ChargingProfileResult",
                 "DELETE": "ClearProfileResult"}
# How long the hub's response_url takes results after the CPO's answer, whatever its timeout.
MAX_RESULT_WAIT = timedelta(hours=24)


def profile_uuid(result_id: str) -> UUID:
    return uuid5(PROFILE_NAMESPACE, result_id)


class ProfileRequest(Aggregate):
    @staticmethod
    def create_id(result_id: str, **_: object) -> UUID:
        return profile_uuid(result_id)

    @event("Requested")
    def __init__(self, result_id: str, method: str, session_id: str, requester: str, cpo: str,
                 original_response_url: str, hub_response_url: str, correlation_id: str, request_id: str,
                 requested_at: str) -> None:
        self.result_id = result_id
        self.method = method
        self.session_id = session_id
        self.requester = requester
        self.cpo = cpo
        self.original_response_url = original_response_url
        self.hub_response_url = hub_response_url
        self.correlation_id = correlation_id
        self.response: str | None = None  # ChargingProfileResponse.result
        self.valid_until: str | None = None
        self.failed = False
        self.results = 0

    @event("Answered")
    def answer(self, http_status: int, status_code: int | None, result: str | None, timeout: int | None,
               valid_until: str) -> None:
        self.response = result
        self.valid_until = valid_until

    @event("Failed")
    def fail(self, reason: str, status_code: int, valid_until: str) -> None:
        self.failed = True
        self.valid_until = valid_until

    @event("ResultReceived")
    def receive_result(self, result: dict, request_id: str, received_at: str, requester: str, cpo: str,
                       response_url: str, correlation_id: str) -> None:
        self.results += 1

    def refusal(self, now: datetime) -> str | None:
        """Why a result posted ``now`` is refused, or None to accept it: the URL takes
        results until ``valid_until`` (the CPO's timeout plus the hub's margin, at least)."""
        if self.valid_until is not None and now > parse_datetime(self.valid_until):
            return f"too late: this response_url was valid until {self.valid_until}"
        return None


class ProfileUpdate(Aggregate):
    """One unsolicited ActiveChargingProfile a CPO sent for a session."""

    @staticmethod
    def create_id(**_: object) -> UUID:
        return uuid4()

    @event("Received")
    def __init__(self, session_id: str, cpo: str, recipient: str, url: str, profile: dict,
                 correlation_id: str, request_id: str, received_at: str) -> None:
        self.session_id = session_id
        self.cpo = cpo
        self.recipient = recipient


def find_exchange(app, result_id: str) -> ProfileRequest | None:
    """The exchange whose hub ``response_url`` ends in ``result_id``, or None."""
    try:
        return app.repository.get(profile_uuid(result_id))
    except AggregateNotFoundError:
        return None


def record(app, result_id: str, change: Callable[[ProfileRequest], bool | None],
           attempts: int = 5) -> ProfileRequest | None:
    """Load the exchange, apply ``change`` and save it in its own transaction; a
    conflicting version (the CPO's result racing the answer) is reloaded and decided
    again. None: no such exchange."""
    for _ in range(attempts):
        try:
            found: ProfileRequest = app.repository.get(profile_uuid(result_id))
        except AggregateNotFoundError:
            return None
        if change(found) is False:
            return found
        try:
            app.save(found)
            return found
        except IntegrityError:
            continue
    raise RuntimeError(f"charging profile exchange {profile_uuid(result_id)}: too many concurrent changes")
