"""Locations module.

SENDER (eMSPs pull, served from the hub's store): ``/locations/sender[/{location_id}[/{evse_uid}[/{connector_id}]]]``.
RECEIVER (CPOs push): ``/locations/receiver/{country_code}/{party_id}/{location_id}[/{evse_uid}[/{connector_id}]]``
with GET (the hub's copy), PUT and PATCH.
"""

from __future__ import annotations

from handlers.context import WebContext
from handlers.pulls import ObjectItem, ObjectList
from handlers.pushing import answer, check_body_ids, check_owner, check_routable, message_of, read_body
from hub.domain.objects import Location
from hub.ocpi import models
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import InvalidParameters, NotFound
from hub.ocpi.status import OcpiStatus


class LocationReceiver:
    """One class for the three levels; ``level`` says which the URL addresses."""

    module = "locations"
    interface = "RECEIVER"
    retry_on_conflict = True  # a lost write race runs the push again (handlers/middleware.py)

    def __init__(self, ctx: WebContext, level: str) -> None:
        self.ctx = ctx
        self.level = level  # "location" | "evse" | "connector"

    def _path(self, country_code, party_id, location_id, evse_uid=None, connector_id=None) -> str:
        parts = [country_code, party_id, location_id, evse_uid, connector_id]
        return "/" + "/".join(p for p in parts if p is not None)

    def on_get(self, req, resp, country_code, party_id, location_id, evse_uid=None, connector_id=None):
        check_owner(req, country_code, party_id, "locations")
        location = self.ctx.pushes.get(Location, country_code, party_id, location_id)
        obj = None if location is None else (
            location.body if evse_uid is None else
            location.evse(evse_uid) if connector_id is None else
            location.connector(evse_uid, connector_id))
        if obj is None:
            raise NotFound(f"the hub holds no {self.level} at {req.path}", OcpiStatus.UNKNOWN_LOCATION)
        resp.media = envelope(obj)

    def on_put(self, req, resp, country_code, party_id, location_id, evse_uid=None, connector_id=None):
        check_owner(req, country_code, party_id, "locations")
        check_routable(req, "locations")
        uow, pushes = req.context.uow, self.ctx.pushes
        path = self._path(country_code, party_id, location_id, evse_uid, connector_id)
        message = message_of(req, "PUT", path)
        if self.level == "location":
            body = read_body(req, models.Location)
            check_body_ids(body, country_code, party_id, id_field="id", object_id=location_id)
            result = pushes.put_location(uow, country_code, party_id, location_id, body, message)
        elif self.level == "evse":
            body = read_body(req, models.EVSE)
            check_body_ids(body, country_code, party_id, id_field="uid", object_id=evse_uid, owner=False)
            result = pushes.put_evse(uow, country_code, party_id, location_id, evse_uid, body, message)
        else:
            body = read_body(req, models.Connector)
            check_body_ids(body, country_code, party_id, id_field="id", object_id=connector_id, owner=False)
            result = pushes.put_connector(uow, country_code, party_id, location_id, evse_uid,
                                          connector_id, body, message)
        answer(resp, result, self.level)

    def on_patch(self, req, resp, country_code, party_id, location_id, evse_uid=None, connector_id=None):
        check_owner(req, country_code, party_id, "locations")
        check_routable(req, "locations")
        model = {"location": models.Location, "evse": models.EVSE, "connector": models.Connector}[self.level]
        body = read_body(req, model, partial=True)
        if self.level == "location":
            check_body_ids(body, country_code, party_id, id_field="id", object_id=location_id)
        elif self.level == "evse":
            check_body_ids(body, country_code, party_id, id_field="uid", object_id=evse_uid, owner=False)
        else:
            check_body_ids(body, country_code, party_id, id_field="id", object_id=connector_id, owner=False)
        if self.level == "location" and "evses" in body and body["evses"] is None:
            raise InvalidParameters("evses: cannot be null in a PATCH")
        path = self._path(country_code, party_id, location_id, evse_uid, connector_id)
        result = self.ctx.pushes.patch_location(
            req.context.uow, country_code, party_id, location_id, body, message_of(req, "PATCH", path),
            evse_uid=evse_uid, connector_id=connector_id)
        answer(resp, result, self.level)


ENDPOINTS = [("locations", "SENDER", "locations/sender"), ("locations", "RECEIVER", "locations/receiver")]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    base = "locations/receiver/{country_code}/{party_id}/{location_id}"
    item = ObjectItem(ctx, "locations")
    return [
        ("locations/sender", ObjectList(ctx, "locations")),
        ("locations/sender/{object_id}", item),
        ("locations/sender/{object_id}/{evse_uid}", item),
        ("locations/sender/{object_id}/{evse_uid}/{connector_id}", item),
        (base, LocationReceiver(ctx, "location")),
        (base + "/{evse_uid}", LocationReceiver(ctx, "evse")),
        (base + "/{evse_uid}/{connector_id}", LocationReceiver(ctx, "connector")),
    ]
