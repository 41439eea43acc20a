"""Application commands for CPO pushes: load the object, apply one change, hand
it to the unit of work.

Rules applied here, for every module alike:
- a push whose ``last_updated`` is older than the hub's copy (of the object,
  the EVSE or the connector it addresses) is recorded as ``StalePushIgnored``
  and changes nothing;
- a PATCH (or a child PUT) of something the hub does not hold is refused with
  HTTP 404 (2003 for locations, 2001 otherwise);
- a CDR is stored once; a repeated POST of the same id is recorded and refused
  if it differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eventsourcing.application import AggregateNotFoundError

from hub.domain.objects import Cdr, Location, PushedObject, Session, Tariff, Token
from hub.ocpi.envelope import parse_datetime
from hub.ocpi.errors import InvalidParameters, NotFound
from hub.ocpi.status import OcpiStatus
from hub.services.application import Hub, UnitOfWork


@dataclass
class PushResult:
    aggregate: PushedObject
    created: bool = False
    stale: bool = False
    repeated: bool = False


def _moment(value: object) -> datetime | None:
    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


def is_older(pushed: object, stored: object) -> bool:
    """True when ``pushed`` is strictly older than ``stored`` (both OCPI DateTimes)."""
    a, b = _moment(pushed), _moment(stored)
    return a is not None and b is not None and a < b


class Pushes:
    def __init__(self, app: Hub) -> None:
        self.app = app

    def get(self, cls: type[PushedObject], country_code: str, party_id: str, object_id: str):
        try:
            return self.app.repository.get(cls.key_of(country_code, party_id, object_id))
        except AggregateNotFoundError:
            return None

    def load(self, uow: UnitOfWork, cls: type[PushedObject], country_code: str, party_id: str,
             object_id: str):
        """The object for a change: held by ``uow`` (see ``UnitOfWork.hold``), then loaded, once per
        unit of work (a pull sync looks at the hub's copy before handing the object here)."""
        key = cls.key_of(country_code, party_id, object_id)
        uow.hold(key)
        if key not in uow.loaded:
            uow.loaded[key] = self.get(cls, country_code, party_id, object_id)
        return uow.loaded[key]

    def _stale(self, uow: UnitOfWork, obj: PushedObject, operation: str, body: dict,
               stored_last_updated: object, message: dict) -> PushResult | None:
        if is_older(body.get("last_updated"), stored_last_updated):
            obj.ignore_stale(operation, body.get("last_updated"), message)
            uow.add(obj)
            return PushResult(obj, stale=True)
        return None

    def _put(self, uow: UnitOfWork, cls, cc: str, pid: str, object_id: str, body: dict,
             message: dict) -> PushResult:
        """PUT of a whole object: create it, or replace it unless the push is older."""
        obj = self.load(uow, cls, cc, pid, object_id)
        if obj is None:
            obj = cls(country_code=cc, party_id=pid, object_id=object_id, body=body, message=message)
            uow.add(obj)
            return PushResult(obj, created=True)
        stale = self._stale(uow, obj, "PUT", body, obj.last_updated, message)
        if stale:  # for a Tariff also after a DELETE: an older PUT must not bring it back
            return stale
        created = getattr(obj, "deleted", False)
        obj.replace(body, message)
        uow.add(obj)
        return PushResult(obj, created=created)

    # Locations ---------------------------------------------------------------
    def put_location(self, uow: UnitOfWork, cc: str, pid: str, location_id: str, body: dict,
                     message: dict) -> PushResult:
        return self._put(uow, Location, cc, pid, location_id, body, message)

    def _location(self, uow: UnitOfWork, cc: str, pid: str, location_id: str) -> Location:
        location = self.load(uow, Location, cc, pid, location_id)
        if location is None:
            raise NotFound(f"unknown location {cc}/{pid}/{location_id}; PUT the Location first",
                           OcpiStatus.UNKNOWN_LOCATION)
        return location

    def put_evse(self, uow: UnitOfWork, cc: str, pid: str, location_id: str, evse_uid: str,
                 body: dict, message: dict) -> PushResult:
        location = self._location(uow, cc, pid, location_id)
        existing = location.evse(evse_uid)
        if existing is not None:
            stale = self._stale(uow, location, "PUT", body, existing.get("last_updated"), message)
            if stale:
                return stale
        location.put_evse(evse_uid, body, message)
        uow.add(location)
        return PushResult(location, created=existing is None)

    def put_connector(self, uow: UnitOfWork, cc: str, pid: str, location_id: str, evse_uid: str,
                      connector_id: str, body: dict, message: dict) -> PushResult:
        location = self._location(uow, cc, pid, location_id)
        if location.evse(evse_uid) is None:
            raise NotFound(f"unknown EVSE {evse_uid} at location {cc}/{pid}/{location_id}",
                           OcpiStatus.UNKNOWN_LOCATION)
        existing = location.connector(evse_uid, connector_id)
        if existing is not None:
            stale = self._stale(uow, location, "PUT", body, existing.get("last_updated"), message)
            if stale:
                return stale
        location.put_connector(evse_uid, connector_id, body, message)
        uow.add(location)
        return PushResult(location, created=existing is None)

    def patch_location(self, uow: UnitOfWork, cc: str, pid: str, location_id: str, body: dict,
                       message: dict, evse_uid: str | None = None,
                       connector_id: str | None = None) -> PushResult:
        location = self._location(uow, cc, pid, location_id)
        if evse_uid is None:
            target, apply = location.body, lambda: location.patch(body, message)
        else:
            evse = location.evse(evse_uid)
            if evse is None:
                raise NotFound(f"unknown EVSE {evse_uid} at location {cc}/{pid}/{location_id}",
                               OcpiStatus.UNKNOWN_LOCATION)
            if connector_id is None:
                target, apply = evse, lambda: location.patch_evse(evse_uid, body, message)
            else:
                connector = location.connector(evse_uid, connector_id)
                if connector is None:
                    raise NotFound(f"unknown connector {connector_id} of EVSE {evse_uid} at location "
                                   f"{cc}/{pid}/{location_id}", OcpiStatus.UNKNOWN_LOCATION)
                target = connector
                apply = lambda: location.patch_connector(evse_uid, connector_id, body, message)  # noqa: E731
        stale = self._stale(uow, location, "PATCH", body, target.get("last_updated"), message)
        if stale:
            return stale
        apply()
        uow.add(location)
        return PushResult(location)

    # Tariffs -----------------------------------------------------------------
    def put_tariff(self, uow: UnitOfWork, cc: str, pid: str, tariff_id: str, body: dict,
                   message: dict) -> PushResult:
        return self._put(uow, Tariff, cc, pid, tariff_id, body, message)

    def delete_tariff(self, uow: UnitOfWork, cc: str, pid: str, tariff_id: str,
                      message: dict) -> PushResult:
        tariff = self.load(uow, Tariff, cc, pid, tariff_id)
        if tariff is None or tariff.deleted:
            raise NotFound(f"unknown tariff {cc}/{pid}/{tariff_id}", OcpiStatus.INVALID_PARAMETERS)
        tariff.delete(message)
        uow.add(tariff)
        return PushResult(tariff)

    # Sessions ----------------------------------------------------------------
    def put_session(self, uow: UnitOfWork, cc: str, pid: str, session_id: str, body: dict,
                    message: dict) -> PushResult:
        return self._put(uow, Session, cc, pid, session_id, body, message)

    def patch_session(self, uow: UnitOfWork, cc: str, pid: str, session_id: str, body: dict,
                      message: dict) -> PushResult:
        session = self.load(uow, Session, cc, pid, session_id)
        if session is None:
            raise NotFound(f"unknown session {cc}/{pid}/{session_id}; PUT the Session first",
                           OcpiStatus.INVALID_PARAMETERS)
        stale = self._stale(uow, session, "PATCH", body, session.last_updated, message)
        if stale:
            return stale
        session.patch(body, message)
        uow.add(session)
        return PushResult(session)

    # Tokens (pushed by eMSPs) ---------------------------------------------------
    def put_token(self, uow: UnitOfWork, cc: str, pid: str, uid: str, token_type: str, body: dict,
                  message: dict) -> PushResult:
        return self._put(uow, Token, cc, pid, Token.object_id_of(uid, token_type), body, message)

    def patch_token(self, uow: UnitOfWork, cc: str, pid: str, uid: str, token_type: str, body: dict,
                    message: dict) -> PushResult:
        token = self.load(uow, Token, cc, pid, Token.object_id_of(uid, token_type))
        if token is None:
            raise NotFound(f"unknown token {cc}/{pid}/{uid} of type {token_type}; PUT the Token first",
                           OcpiStatus.UNKNOWN_TOKEN)
        stale = self._stale(uow, token, "PATCH", body, token.last_updated, message)
        if stale:
            return stale
        token.patch(body, message)
        uow.add(token)
        return PushResult(token)

    # CDRs --------------------------------------------------------------------
    def post_cdr(self, uow: UnitOfWork, body: dict, message: dict) -> PushResult:
        cc, pid, cdr_id = body["country_code"], body["party_id"], body["id"]
        cdr = self.load(uow, Cdr, cc, pid, cdr_id)
        if cdr is None:
            cdr = Cdr(country_code=cc, party_id=pid, object_id=cdr_id, body=body, message=message)
            uow.add(cdr)
            return PushResult(cdr, created=True)
        if cdr.body == body:
            cdr.ignore_repeat(True, message)
            uow.add(cdr)
            return PushResult(cdr, repeated=True)
        # Refused (the request's audit record keeps the attempt): CDRs are immutable.
        raise InvalidParameters(
                f"id: CDR {cc}/{pid}/{cdr_id} was already received with different content; "
                "CDRs are immutable, send a credit CDR instead"
            )
