"""Real-time paths: forwarding a request to one partner synchronously.

Token authorization and commands pass through the hub while a driver waits.
This module asks the recipient policy (:mod:`hub.domain.recipients`) for the
receiving party, its routing rules and endpoint, calls it with the hub's
timeout and turns what can go wrong into the hub's 4xxx codes:

- 4001 unknown receiver (no such party, or the owner cannot be resolved);
- 4003 receiver not CONNECTED, or it could not be reached, or (at once, without calling)
  it already has its share of calls in flight or its circuit is open
  (:mod:`hub.services.bulkhead`);
- 4002 no complete answer within ``HUB_FORWARD_TIMEOUT``, one deadline for
  connecting, sending and reading the whole answer;
- 4000 the routing rules refuse it, the receiver lacks the module, or its
  answer is not an OCPI envelope (a JSON object with an integer ``status_code``);
- 4003 (HTTP 200) also when the receiver answers HTTP 401 or 403, envelope or not: it
  refused the hub's credentials, which is the hub's problem, never the caller's (an HTTP
  401/403 sent back would tell the caller its own token is wrong). The call is recorded
  with the receiver's status, and ``/metrics`` counts it per partner
  (``hub_partner_credentials_refused``).

The partner's answer (HTTP status, envelope) goes back unchanged. The call is
recorded as a ``Call.Made`` in the same unit of work as the request's record,
with what was decided: the body's facts the caller names (``sent``) and the
named fields of the answer's ``data`` (``answer``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from hub.domain.audit import Call
from hub.domain.modules import MODULES
from hub.domain.parties import party_key
from hub.domain.recipients import Policy, Snapshot
from hub.domain.routing import Routing
from hub.infra.client import OcpiClient, OcpiResponse, PartnerCallError, PartnerTimeout
from hub.ocpi.envelope import format_datetime
from hub.ocpi.errors import HubError, InvalidParameters
from hub.ocpi.numbers import dumps
from hub.ocpi.status import CREDENTIALS_REFUSED_HTTP as CREDENTIALS_REFUSED
from hub.ocpi.status import OcpiStatus
from hub.ocpi.validation import validate
from hub.services.application import Hub, UnitOfWork
from hub.services.bulkhead import Bulkheads


@dataclass(frozen=True)
class Receiver:
    country_code: str
    party_id: str
    role: str
    platform_id: object
    endpoint: str
    token: str = field(repr=False)

    @property
    def key(self) -> str:
        return party_key(self.country_code, self.party_id, self.role)


class Realtime:
    """``snapshot_loader(ids=[(cc, pid)...], tokens=bool) -> Snapshot`` reads the recipient
    policy's snapshot (projections.recipients.load_snapshot), fresh on every call."""

    def __init__(self, app: Hub, client: OcpiClient, snapshot_loader: Callable[..., Snapshot]) -> None:
        self.app = app
        self.client = client
        self.snapshot_loader = snapshot_loader
        # Per receiving platform: calls in flight and a circuit (hub/services/bulkhead.py).
        self.bulkheads = Bulkheads.from_settings(app.settings)

    def receiver(self, *, module: str, requester: str, country_code: str, party_id: str) -> Receiver:
        """The party that will receive the request, as the recipient policy decides it
        (:meth:`hub.domain.recipients.Policy.realtime`): CONNECTED, allowed by the rules,
        offering the interface. One round trip reads the parties and the rules in force."""
        ids = [(country_code, party_id), tuple(requester.split("/")[:2])]
        snapshot = self.snapshot_loader(ids=ids, tokens=True)
        verdict = Policy(snapshot).realtime(module, requester, country_code, party_id)
        if not verdict.allowed:
            raise HubError(verdict.status, verdict.reason)
        party = verdict.party
        platform = snapshot.platforms.get(party.platform_id)
        if platform is None or not platform.token:
            role, interface = MODULES[module].realtime
            raise HubError(OcpiStatus.HUB_ERROR,
                           f"receiver {party.key} does not offer the {module} {interface.lower()} interface")
        return Receiver(party.country_code, party.party_id, party.role, party.platform_id,
                        verdict.endpoint, self.app.cipher.decrypt(platform.token))

    def sole_owner(self, owners: list[tuple[str, str]], *, module: str, requester: str,
                   what: str) -> tuple[str, str]:
        """Open routing: the one party of ``owners`` (country code, party id) to send
        ``module`` to, counting only those the routing rules let receive it
        (:meth:`hub.domain.recipients.Policy.sole_owner`).

        ``what``: a participle phrase, "no CPO has {what}" (``pushed location LOC1``).
        """
        owners = [(str(cc), str(pid)) for cc, pid in owners]
        snapshot = self.snapshot_loader(ids=[*owners, tuple(requester.split("/")[:2])]) if len(owners) > 1 \
            else Snapshot()
        verdict = Policy(snapshot).sole_owner(module, requester, owners, what)
        if not verdict.allowed:
            raise HubError(verdict.status, verdict.reason)
        return verdict.owner

    def forward(self, uow: UnitOfWork, receiver: Receiver, routing: Routing, *, method: str, url: str,
                correlation_id: str, module: str, body: object = None,
                params: dict | None = None, sent: dict | None = None,
                answer_fields: tuple[str, ...] = (), answer_model: type | None = None) -> OcpiResponse:
        """Send the request now; the answer comes back as the partner gave it.

        ``sent`` and the ``answer_fields`` of the answer's data are recorded with the call.
        ``answer_model``: the OCPI model a ``1000`` answer's data must be (e.g. the
        AuthorizationInfo a CPO acts on); data that is not is never relayed, the caller gets
        4000 naming the field.
        """
        headers = {
            "OCPI-from-country-code": routing.from_country_code,
            "OCPI-from-party-id": routing.from_party_id,
            "OCPI-to-country-code": receiver.country_code,
            "OCPI-to-party-id": receiver.party_id,
        }
        sent_at = format_datetime(datetime.now(UTC))
        timeout = self.app.settings.forward_timeout
        try:
            with self.bulkheads.call(str(receiver.platform_id), receiver.key) as done:
                try:
                    response = self.client.request(method, url, receiver.token, json=body, headers=headers,
                                                   correlation_id=correlation_id, params=params,
                                                   deadline=timeout)
                except PartnerCallError as exc:
                    done(exc.http_status is not None)  # it answered, if with no envelope
                    raise
        except orjson.JSONEncodeError as exc:  # e.g. an unknown property nested past the encoder's bound
            raise unforwardable(exc) from None
        except PartnerCallError as exc:
            if isinstance(exc, PartnerTimeout):
                error = HubError(OcpiStatus.FORWARD_TIMEOUT,
                                 f"{receiver.key} did not answer within {timeout:g} s")
            elif exc.http_status in CREDENTIALS_REFUSED:
                error = credentials_refused(receiver, exc.http_status)
            elif exc.http_status is not None:
                error = not_an_envelope(receiver, exc.http_status)
            else:
                error = HubError(OcpiStatus.CONNECTION_PROBLEM, f"{receiver.key} could not be reached")
            uow.add(self._call(receiver, module, method, url, exc.request_id, correlation_id,
                               exc.http_status, None, f"{exc} ({error.message})", sent_at, exc.elapsed_ms,
                               sent, None))
            raise error from None
        if response.status_code is None:  # e.g. an empty body, or JSON that is no envelope
            error = not_an_envelope(receiver, response.http_status)
            uow.add(self._call(receiver, module, method, url, response.request_id, correlation_id,
                               response.http_status, None, error.message, sent_at, response.elapsed_ms,
                               sent, None))
            raise error
        if response.http_status in CREDENTIALS_REFUSED:
            error = credentials_refused(receiver, response.http_status)
            uow.add(self._call(receiver, module, method, url, response.request_id, correlation_id,
                               response.http_status, response.status_code, error.message, sent_at,
                               response.elapsed_ms, sent, None))
            raise error
        data = response.data
        answer = {f: data[f] for f in answer_fields if f in data} if isinstance(data, dict) else None
        invalid = invalid_answer(receiver, answer_model, data) if response.status_code == 1000 else None
        uow.add(self._call(receiver, module, method, url, response.request_id, correlation_id,
                           response.http_status, response.status_code, invalid.message if invalid else None,
                           sent_at, response.elapsed_ms, sent, answer if answer_fields else None))
        if invalid is not None:
            raise invalid
        return response

    @staticmethod
    def _call(receiver: Receiver, module, method, url, request_id, correlation_id, http_status,
              status_code, error, sent_at, elapsed, sent, answer) -> Call:
        return Call(platform_id=str(receiver.platform_id), purpose="realtime", module=module, method=method,
                    url=url, request_id=request_id, correlation_id=correlation_id, http_status=http_status,
                    status_code=status_code, error=error, sent_at=sent_at, duration_ms=elapsed,
                    sent=sent, answer=answer)


def check_forwardable(body: object) -> None:
    """2001 unless ``body`` can be sent on as JSON (orjson refuses nesting past 255 levels),
    for a handler that must refuse before it stores anything."""
    try:
        dumps(body)
    except orjson.JSONEncodeError as exc:
        raise unforwardable(exc) from None


def unforwardable(exc: Exception) -> InvalidParameters:
    return InvalidParameters(f"body: cannot be forwarded as JSON ({exc})")


def invalid_answer(receiver: Receiver, model: type | None, data: object) -> HubError | None:
    """4000 when the receiver's data is not a valid ``model`` (None: it is, or nothing to check)."""
    if model is None:
        return None
    try:
        validate(model, data)
    except InvalidParameters as exc:
        return HubError(OcpiStatus.HUB_ERROR,
                        f"the answer of {receiver.key} is not a valid {model.__name__} ({exc.message}); "
                        "not relayed")
    return None


def credentials_refused(receiver: Receiver, http_status: int) -> HubError:
    return HubError(OcpiStatus.CONNECTION_PROBLEM,
                    f"the receiver {receiver.key} refused the hub's credentials (HTTP {http_status})")


def not_an_envelope(receiver: Receiver, http_status: int) -> HubError:
    return HubError(OcpiStatus.HUB_ERROR,
                    f"the answer of {receiver.key} (HTTP {http_status}) was not an OCPI envelope: "
                    "no JSON object with an integer status_code")
