"""ChargingProfiles relayed both ways (smart charging).

- :meth:`ChargingProfiles.relay`: an eMSP's or SCSP's GET, PUT or DELETE for one session,
  forwarded at once to the CPO's chargingprofiles RECEIVER with the hub's own
  ``response_url``; the CPO's ChargingProfileResponse comes back unchanged (hub errors
  4001–4003 as for commands, :mod:`hub.services.realtime`).
- :meth:`ChargingProfiles.receive_result`: a result the CPO posts to that URL, recorded for
  durable delivery to the requester's own ``response_url`` (``scheduler/chargingprofiles.py``).
- :meth:`ChargingProfiles.receive_update`: the CPO's unsolicited ActiveChargingProfile,
  recorded for delivery to the party that owns the session.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from hub.domain.chargingprofiles import MAX_RESULT_WAIT, ProfileRequest, ProfileUpdate, record
from hub.domain.recipients import Policy, Snapshot
from hub.domain.routing import Routing
from hub.infra.client import OcpiResponse
from hub.ocpi.envelope import format_datetime
from hub.ocpi.errors import HubError, InvalidParameters
from hub.ocpi.urls import endpoint_url
from hub.services.realtime import Realtime, Receiver

MODULE = "chargingprofiles"


class ChargingProfiles:
    def __init__(self, realtime: Realtime, snapshot_loader: Callable[..., Snapshot]) -> None:
        self.realtime = realtime
        self.app = realtime.app
        self.snapshot_loader = snapshot_loader

    def relay(self, uow, routing: Routing, *, method: str, session_id: str, cpo: tuple[str, str],
              response_url: str, body: dict | None, params: dict | None, correlation_id: str,
              request_id: str, received_at: str) -> tuple[OcpiResponse, Receiver]:
        """Forward one request to the CPO ``cpo`` (``cc, pid``) with the hub's ``response_url``."""
        receiver = self.realtime.receiver(module=MODULE, requester=routing.sender_key,
                                          country_code=cpo[0], party_id=cpo[1])
        result_id = secrets.token_urlsafe(32)
        hub_url = f"{self.app.settings.module_url('chargingprofiles/sender/results')}/{result_id}"
        if body is not None:
            body = {**body, "response_url": hub_url}
        else:
            params = {**(params or {}), "response_url": hub_url}
        # Saved before forwarding: the CPO may post its result before it answers.
        self.app.save(ProfileRequest(
            result_id=result_id, method=method, session_id=session_id, requester=routing.sender_key,
            cpo=receiver.key, original_response_url=response_url, hub_response_url=hub_url,
            correlation_id=correlation_id, request_id=request_id, requested_at=received_at))
        margin = timedelta(seconds=self.app.settings.command_result_margin)
        url = endpoint_url(receiver.endpoint, f"/{quote(session_id, safe='')}")
        try:
            response = self.realtime.forward(
                uow, receiver, routing, method=method, url=url, body=body, params=params, module=MODULE,
                correlation_id=correlation_id, sent={"session_id": session_id},
                answer_fields=("result", "timeout"))
        except HubError as exc:
            until, reason, code = format_datetime(datetime.now(UTC) + margin), exc.message, exc.status_code
            record(self.app, result_id, lambda r: r.fail(reason, code, until))
            raise
        data = response.data if isinstance(response.data, dict) else {}
        result = data.get("result") if isinstance(data.get("result"), str) else None
        timeout = data.get("timeout") if type(data.get("timeout")) is int else None
        wait = timedelta(seconds=min(max(timeout or 0, 0), MAX_RESULT_WAIT.total_seconds()))
        until = format_datetime(datetime.now(UTC) + wait + margin)
        record(self.app, result_id, lambda r: r.answer(response.http_status, response.status_code, result,
                                                       timeout, until))
        return response, receiver

    def receive_result(self, result_id: str, check: Callable[[ProfileRequest], None], result: dict,
                       request_id: str, received_at: str) -> ProfileRequest | None:
        """Record a result posted to the hub's ``response_url``; ``check(exchange)`` raises
        to refuse it (wrong sender, wrong body). None: no exchange has this URL."""
        now = datetime.now(UTC)

        def receive(exchange: ProfileRequest) -> None:
            check(exchange)
            refusal = exchange.refusal(now)
            if refusal:
                raise InvalidParameters(refusal)
            exchange.receive_result(result, request_id, received_at, exchange.requester, exchange.cpo,
                                    exchange.original_response_url, exchange.correlation_id)

        return record(self.app, result_id, receive)

    def receive_update(self, uow, cpo_key: str, session_id: str, recipient: tuple[str, str],
                       profile: dict, correlation_id: str, request_id: str, received_at: str) -> str:
        """Record the CPO's ActiveChargingProfile for ``recipient`` (``cc, pid``) once the
        policy allows it (:meth:`Policy.profile_update`); the recipient's key."""
        ids = [recipient, tuple(cpo_key.split("/")[:2])]
        verdict = Policy(self.snapshot_loader(ids=ids)).profile_update(MODULE, cpo_key, *recipient)
        if not verdict.allowed:
            raise HubError(verdict.status, verdict.reason)
        url = endpoint_url(verdict.endpoint, f"/{quote(session_id, safe='')}")
        uow.add(ProfileUpdate(session_id=session_id, cpo=cpo_key, recipient=verdict.party.key,
                              url=url, profile=profile, correlation_id=correlation_id,
                              request_id=request_id, received_at=received_at))
        return verdict.party.key


__all__ = ["MODULE", "ChargingProfiles"]
