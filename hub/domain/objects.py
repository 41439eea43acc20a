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

from hub.ocpi.envelope import DATETIME_RE, parse_datetime

OBJECT_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/ocpi/object")


def object_key(module: str, country_code: str, party_id: str, object_id: str) -> str:
    return f"{module}/{country_code.upper()}/{party_id.upper()}/{object_id.upper()}"


def object_uuid(module: str, country_code: str, party_id: str, object_id: str) -> UUID:
    return uuid5(OBJECT_NAMESPACE, object_key(module, country_code, party_id, object_id))


# The merge rules, as pure functions: the aggregates and the projections apply
# the very same code, so the hub's copy and its views cannot disagree.
def _same(a: object, b: str) -> bool:
    return str(a or "").upper() == b.upper()


def _index(items: list, key: str, wanted: str) -> int | None:
    """The index of the first item whose ``key`` equals ``wanted`` as :func:`_same` compares."""
    wanted = wanted.upper()
    for i, item in enumerate(items):
        if str(item.get(key) or "").upper() == wanted:
            return i
    return None


def find_evse(location: dict, evse_uid: str) -> dict | None:
    return next((e for e in location.get("evses") or [] if _same(e.get("uid"), evse_uid)), None)


def find_connector(evse: dict | None, connector_id: str) -> dict | None:
    return next((c for c in (evse or {}).get("connectors") or [] if _same(c.get("id"), connector_id)), None)


_SHAPED: dict[str, bool] = {}  # DateTimes checked against DATETIME_RE lately (a bounded cache)


def _shaped(value: str) -> bool:
    """``DATETIME_RE.match(value)``, remembered: a parent's ``last_updated`` is most often
    the previous child's, checked a moment ago."""
    known = _SHAPED.get(value)
    if known is None:
        if len(_SHAPED) >= 4096:
            _SHAPED.clear()
        known = _SHAPED[value] = DATETIME_RE.match(value) is not None
    return known


def _later(parent: object, child: str) -> str:
    """A parent's ``last_updated`` after a child update: the child's, never moving back."""
    if parent is None:
        return child
    # Two DateTimes of one shape (length, zone designator) compare as text; a
    # projection replaying the log does this for every EVSE update, so skip parsing.
    if (type(parent) is str and type(child) is str and len(parent) == len(child)
            and (parent[-1:] == "Z") == (child[-1:] == "Z") and _shaped(parent) and _shaped(child)):
        return child if child >= parent else parent
    try:
        return child if parse_datetime(child) >= parse_datetime(parent) else parent
    except ValueError:
        return child


def _copied(value: object) -> object:
    """A deep copy of JSON data (dicts, lists, scalars): what ``copy.deepcopy`` gives, faster."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


def patched_location(location: dict, patch: dict) -> dict:
    return {**location, **_copied(patch)}


def _replaced(items: list, index: int | None, new: dict) -> list:
    """A new list with ``new`` at ``index`` (appended when None); ``items`` is left as it was."""
    items = list(items)
    if index is None:
        items.append(new)
    else:
        items[index] = new
    return items


# The merge functions copy only the path they change (the Location, its EVSE list,
# the changed EVSE and connector list): the bodies they return share every untouched
# EVSE with the body they were given, which nobody changes in place.
def location_with_evse(location: dict, evse_uid: str, evse: dict, *, patch: bool, owned: bool = False) -> dict:
    """The Location after a PUT/PATCH of one EVSE; its ``last_updated`` follows the EVSE's.
    ``owned``: ``evse`` is the caller's to give away, the result may hold it (no copy)."""
    evses = location.get("evses") or []
    index = _index(evses, "uid", evse_uid)
    pushed = evse if owned else _copied(evse)
    new = {**evses[index], **pushed} if patch and index is not None else pushed
    return {**location, "evses": _replaced(evses, index, new),
            "last_updated": _later(location.get("last_updated"), evse["last_updated"])}


def location_with_connector(location: dict, evse_uid: str, connector_id: str, connector: dict,
                            *, patch: bool) -> dict:
    """The Location after a PUT/PATCH of one connector; EVSE and Location take its ``last_updated``."""
    evses = location.get("evses") or []
    evse_index = next((i for i, e in enumerate(evses) if _same(e.get("uid"), evse_uid)), None)
    if evse_index is None:
        raise KeyError(f"the Location has no EVSE {evse_uid}")
    evse = evses[evse_index]
    connectors = evse.get("connectors") or []
    index = next((i for i, c in enumerate(connectors) if _same(c.get("id"), connector_id)), None)
    new = ({**connectors[index], **_copied(connector)} if patch and index is not None
           else _copied(connector))
    evse = {**evse, "connectors": _replaced(connectors, index, new),
            "last_updated": _later(evse.get("last_updated"), connector["last_updated"])}
    return {**location, "evses": _replaced(evses, evse_index, evse),
            "last_updated": _later(location.get("last_updated"), connector["last_updated"])}


def patched_session(session: dict, patch: dict) -> dict:
    """OCPI: charging periods in a Session PATCH are appended; an empty list changes nothing."""
    merged = {**session, **_copied(patch)}
    if "charging_periods" in patch:
        merged["charging_periods"] = [
            *(session.get("charging_periods") or []), *_copied(patch["charging_periods"] or [])
        ]
    return merged


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
        self.body = patched_location(self.body, body)

    def evse(self, evse_uid: str) -> dict | None:
        return find_evse(self.body, evse_uid)

    def connector(self, evse_uid: str, connector_id: str) -> dict | None:
        return find_connector(find_evse(self.body, evse_uid), connector_id)

    @event("EvsePut")
    def put_evse(self, evse_uid: str, body: dict, message: dict) -> None:
        self.body = location_with_evse(self.body, evse_uid, body, patch=False)

    @event("EvsePatched")
    def patch_evse(self, evse_uid: str, body: dict, message: dict) -> None:
        self.body = location_with_evse(self.body, evse_uid, body, patch=True)

    @event("ConnectorPut")
    def put_connector(self, evse_uid: str, connector_id: str, body: dict, message: dict) -> None:
        self.body = location_with_connector(self.body, evse_uid, connector_id, body, patch=False)

    @event("ConnectorPatched")
    def patch_connector(self, evse_uid: str, connector_id: str, body: dict, message: dict) -> None:
        self.body = location_with_connector(self.body, evse_uid, connector_id, body, patch=True)


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
        self.body = patched_session(self.body, body)

    @property
    def emsp(self) -> tuple[str, str]:
        token = self.body.get("cdr_token") or {}
        return str(token.get("country_code", "")).upper(), str(token.get("party_id", "")).upper()


class Token(PushedObject):
    """A Token an eMSP pushed; keyed by owner, ``uid`` and ``type`` (``object_id`` = ``UID|TYPE``)."""

    module = "tokens"

    @staticmethod
    def create_id(country_code: str, party_id: str, object_id: str, **_: object) -> UUID:
        return object_uuid("tokens", country_code, party_id, object_id)

    @staticmethod
    def object_id_of(uid: str, token_type: str) -> str:
        return f"{uid}|{token_type}".upper()

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
