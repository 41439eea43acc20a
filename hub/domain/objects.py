"""Client-owned objects the hub stores and forwards: Locations, Tariffs,
Sessions and CDRs (pushed by CPOs).

Each aggregate is keyed by its OCPI identity (module, ``country_code``,
``party_id``, object id; CiStrings compared upper-cased) and holds the object
as the hub knows it now, built from the bodies exactly as partners pushed
them. Every push event carries ``message``: who sent it, the routing scenario,
the addressee and the request/correlation ids, which the dispatcher uses to
decide recipients. Bodies are never edited; the hub merges them as OCPI says
(PATCH replaces the fields it names; a child update moves its parents'
``last_updated`` to the pushed value; Session PATCHes append
``charging_periods``).
"""

from __future__ import annotations

import copy
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

OBJECT_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/ocpi/object")


def object_key(module: str, country_code: str, party_id: str, object_id: str) -> str:
    return f"{module}/{country_code.upper()}/{party_id.upper()}/{object_id.upper()}"


def object_uuid(module: str, country_code: str, party_id: str, object_id: str) -> UUID:
    return uuid5(OBJECT_NAMESPACE, object_key(module, country_code, party_id, object_id))


class PushedObject(Aggregate):
    """Common shape: ``module``, owner ids, ``object_id`` and ``body``."""

    module = ""

    @classmethod
    def key_of(cls, country_code: str, party_id: str, object_id: str) -> UUID:
        return object_uuid(cls.module, country_code, party_id, object_id)

    @property
    def key(self) -> str:
        return object_key(self.module, self.country_code, self.party_id, self.object_id)

    @property
    def last_updated(self) -> str | None:
        return self.body.get("last_updated") if self.body else None

    @event("StalePushIgnored")
    def ignore_stale(self, operation: str, pushed_last_updated: str | None, message: dict) -> None:
        """A push older than the hub's copy: recorded, not applied, not forwarded."""


class Location(PushedObject):
    module = "locations"

    @staticmethod
    def create_id(country_code: str, party_id: str, object_id: str, **_: object) -> UUID:
        return object_uuid("locations", country_code, party_id, object_id)

    @event("Put")
    def __init__(self, country_code: str, party_id: str, object_id: str, body: dict, message: dict) -> None:
        self.country_code = country_code.upper()
        self.party_id = party_id.upper()
        self.object_id = object_id
        self.body = copy.deepcopy(body)

    @event("Replaced")
    def replace(self, body: dict, message: dict) -> None:
        self.body = copy.deepcopy(body)

    @event("Patched")
    def patch(self, body: dict, message: dict) -> None:
        self.body = {**self.body, **copy.deepcopy(body)}

    def evse(self, evse_uid: str) -> dict | None:
        for evse in self.body.get("evses") or []:
            if str(evse.get("uid", "")).upper() == evse_uid.upper():
                return evse
        return None

    def connector(self, evse_uid: str, connector_id: str) -> dict | None:
        evse = self.evse(evse_uid)
        for connector in (evse or {}).get("connectors") or []:
            if str(connector.get("id", "")).upper() == connector_id.upper():
                return connector
        return None

    @event("EvsePut")
    def put_evse(self, evse_uid: str, body: dict, message: dict) -> None:
        evses = [e for e in self.body.get("evses") or [] if str(e.get("uid", "")).upper() != evse_uid.upper()]
        existing = self.evse(evse_uid)
        new = copy.deepcopy(body)
        if existing is not None:
            index = (self.body.get("evses") or []).index(existing)
            evses.insert(index, new)
        else:
            evses.append(new)
        self.body = {**self.body, "evses": evses, "last_updated": body["last_updated"]}

    @event("EvsePatched")
    def patch_evse(self, evse_uid: str, body: dict, message: dict) -> None:
        self.body = copy.deepcopy(self.body)
        evse = self.evse(evse_uid)
        evse.update(copy.deepcopy(body))
        self.body["last_updated"] = body["last_updated"]

    @event("ConnectorPut")
    def put_connector(self, evse_uid: str, connector_id: str, body: dict, message: dict) -> None:
        self.body = copy.deepcopy(self.body)
        evse = self.evse(evse_uid)
        connectors = evse.setdefault("connectors", [])
        existing = self.connector(evse_uid, connector_id)
        if existing is not None:
            connectors[connectors.index(existing)] = copy.deepcopy(body)
        else:
            connectors.append(copy.deepcopy(body))
        evse["last_updated"] = body["last_updated"]
        self.body["last_updated"] = body["last_updated"]

    @event("ConnectorPatched")
    def patch_connector(self, evse_uid: str, connector_id: str, body: dict, message: dict) -> None:
        self.body = copy.deepcopy(self.body)
        self.connector(evse_uid, connector_id).update(copy.deepcopy(body))
        self.evse(evse_uid)["last_updated"] = body["last_updated"]
        self.body["last_updated"] = body["last_updated"]


class Tariff(PushedObject):
    module = "tariffs"

    @staticmethod
    def create_id(country_code: str, party_id: str, object_id: str, **_: object) -> UUID:
        return object_uuid("tariffs", country_code, party_id, object_id)

    @event("Put")
    def __init__(self, country_code: str, party_id: str, object_id: str, body: dict, message: dict) -> None:
        self.country_code = country_code.upper()
        self.party_id = party_id.upper()
        self.object_id = object_id
        self.body = copy.deepcopy(body)
        self.deleted = False

    @event("Replaced")
    def replace(self, body: dict, message: dict) -> None:
        self.body = copy.deepcopy(body)
        self.deleted = False

    @event("Deleted")
    def delete(self, message: dict) -> None:
        self.deleted = True


class Session(PushedObject):
    module = "sessions"

    @staticmethod
    def create_id(country_code: str, party_id: str, object_id: str, **_: object) -> UUID:
        return object_uuid("sessions", country_code, party_id, object_id)

    @event("Put")
    def __init__(self, country_code: str, party_id: str, object_id: str, body: dict, message: dict) -> None:
        self.country_code = country_code.upper()
        self.party_id = party_id.upper()
        self.object_id = object_id
        self.body = copy.deepcopy(body)

    @event("Replaced")
    def replace(self, body: dict, message: dict) -> None:
        self.body = copy.deepcopy(body)

    @event("Patched")
    def patch(self, body: dict, message: dict) -> None:
        merged = {**self.body, **copy.deepcopy(body)}
        if "charging_periods" in body:
            # OCPI: charging periods in a Session PATCH are appended; an empty list changes nothing.
            merged["charging_periods"] = [
                *(self.body.get("charging_periods") or []), *copy.deepcopy(body["charging_periods"] or [])
            ]
        self.body = merged

    @property
    def emsp(self) -> tuple[str, str]:
        token = self.body.get("cdr_token") or {}
        return str(token.get("country_code", "")).upper(), str(token.get("party_id", "")).upper()


class Cdr(PushedObject):
    """CDRs are immutable: created once, never changed."""

    module = "cdrs"

    @staticmethod
    def create_id(country_code: str, party_id: str, object_id: str, **_: object) -> UUID:
        return object_uuid("cdrs", country_code, party_id, object_id)

    @event("Posted")
    def __init__(self, country_code: str, party_id: str, object_id: str, body: dict, message: dict) -> None:
        self.country_code = country_code.upper()
        self.party_id = party_id.upper()
        self.object_id = object_id
        self.body = copy.deepcopy(body)

    @event("RepeatIgnored")
    def ignore_repeat(self, identical: bool, message: dict) -> None:
        """The same CDR id was POSTed again: recorded, not stored twice, not forwarded."""

    @property
    def emsp(self) -> tuple[str, str]:
        token = self.body.get("cdr_token") or {}
        return str(token.get("country_code", "")).upper(), str(token.get("party_id", "")).upper()
