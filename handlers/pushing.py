"""What every receiver interface for client-owned objects checks, written once.

- the owner ids in the URL (and in the body) must be one of the caller's
  parties with the module's data-owner role (hub.domain.modules: CPO for
  locations, tariffs, sessions, CDRs; EMSP for tokens);
- the object id in the URL must equal the id in the body;
- the body is validated with the OCPI model (``partial`` for PATCH);
- the answer: 201 when created, 200 otherwise, 1000 also for an ignored stale
  push (with a status message saying so).
"""

from __future__ import annotations

import falcon

from hub.domain.modules import MODULES
from hub.domain.routing import DIRECTED
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import HubError, InvalidParameters
from hub.ocpi.status import OcpiStatus
from hub.ocpi.validation import validate
from hub.services.pushes import PushResult
from projections.recipients import load_policy


def message_of(req: falcon.Request, method: str | None = None, path: str = "") -> dict:
    """The routing facts of this request that travel with its domain events."""
    routing = req.context.routing
    return {
        "request_id": req.context.request_id,
        "correlation_id": req.context.correlation_id,
        "from": routing.sender_key,
        "scenario": routing.scenario,
        "to": routing.receiver_key,
        "method": method or req.method,
        "path": path,
        "received_at": req.context.received_at,
    }


def check_owner(req: falcon.Request, country_code: str, party_id: str, module: str,
                field: str = "country_code/party_id in the URL") -> None:
    """The owner ids must be one of the caller's parties with the module's data-owner role."""
    role = MODULES[module].owner
    caller = req.context.caller
    party = caller.party(country_code, party_id, role)
    if party is None:
        raise InvalidParameters(
            f"{field}: {country_code.upper()}/{party_id.upper()} is not a {role} party of this connection"
        )


def check_body_ids(body: dict, country_code: str, party_id: str, *, id_field: str | None,
                   object_id: str | None, owner: bool = True) -> None:
    """Ids in the body must match the URL (CiStrings: case-insensitive)."""
    if owner:
        for field, expected in (("country_code", country_code), ("party_id", party_id)):
            value = body.get(field)
            if value is not None and str(value).upper() != expected.upper():
                raise InvalidParameters(f"{field}: {value!r} does not match the URL ({expected!r})")
    if id_field and object_id is not None:
        value = body.get(id_field)
        if value is not None and str(value).upper() != object_id.upper():
            raise InvalidParameters(f"{id_field}: {value!r} does not match the URL ({object_id!r})")


def read_body(req: falcon.Request, model, *, partial: bool = False) -> dict:
    body = req.get_media()
    validate(model, body, partial=partial)
    return body


def answer(resp: falcon.Response, result: PushResult, what: str) -> None:
    if result.stale:
        resp.media = envelope(None, 1000, f"{what} is older than the hub's copy; ignored")
    elif result.repeated:
        resp.media = envelope(None, 1000, f"{what} was already received; not stored twice")
    else:
        resp.status = 201 if result.created else 200
        resp.media = envelope()


def check_routable(req: falcon.Request, module: str, emsp: tuple[str, str] | None = None) -> None:
    """Refuse a push the hub could never deliver, before accepting it
    (:meth:`hub.domain.recipients.Policy.accept_push` decides).

    Sessions and CDRs (``emsp`` = their ``cdr_token`` owner) go only to that
    eMSP, whatever the scenario; other modules are checked when directed.
    An OFFLINE receiver is fine: it is queued.
    """
    routing = req.context.routing
    if emsp is None and routing.scenario != DIRECTED:
        return
    to = (routing.to_country_code, routing.to_party_id, routing.to_role) if routing.scenario == DIRECTED else None
    ids = [emsp if emsp is not None else (to[0], to[1]), (routing.from_country_code, routing.from_party_id)]
    policy = load_policy(req.context.web.app.pool, ids=ids)
    verdict = policy.accept_push(module, routing.sender_key, scenario=routing.scenario, to=to, emsp=emsp)
    if not verdict.allowed:
        if verdict.status == OcpiStatus.INVALID_PARAMETERS:
            raise InvalidParameters(verdict.reason)
        raise HubError(verdict.status, verdict.reason)
