"""Tariffs module, RECEIVER interface (CPOs push).

``/tariffs/receiver/{country_code}/{party_id}/{tariff_id}`` with GET (the
hub's copy), PUT and DELETE. Tariffs have no PATCH: Falcon answers 405.
"""

from __future__ import annotations

from handlers.context import WebContext
from handlers.pulls import ObjectItem, ObjectList
from handlers.pushing import answer, check_body_ids, check_owner, check_routable, message_of, read_body
from hub.domain.objects import Tariff
from hub.ocpi import models
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import NotFound
from hub.ocpi.status import OcpiStatus


class TariffReceiver:
    module = "tariffs"
    interface = "RECEIVER"
    retry_on_conflict = True  # a lost write race runs the push again (handlers/middleware.py)

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def on_get(self, req, resp, country_code, party_id, tariff_id):
        check_owner(req, country_code, party_id, "tariffs")
        tariff = self.ctx.pushes.get(Tariff, country_code, party_id, tariff_id)
        if tariff is None or tariff.deleted:
            raise NotFound(f"the hub holds no tariff {country_code}/{party_id}/{tariff_id}",
                           OcpiStatus.INVALID_PARAMETERS)
        resp.media = envelope(tariff.body)

    def on_put(self, req, resp, country_code, party_id, tariff_id):
        check_owner(req, country_code, party_id, "tariffs")
        check_routable(req, "tariffs")
        body = read_body(req, models.Tariff)
        check_body_ids(body, country_code, party_id, id_field="id", object_id=tariff_id)
        message = message_of(req, "PUT", f"/{country_code}/{party_id}/{tariff_id}")
        result = self.ctx.pushes.put_tariff(req.context.uow, country_code, party_id, tariff_id, body,
                                            message)
        answer(resp, result, "tariff")

    def on_delete(self, req, resp, country_code, party_id, tariff_id):
        check_owner(req, country_code, party_id, "tariffs")
        check_routable(req, "tariffs")
        message = message_of(req, "DELETE", f"/{country_code}/{party_id}/{tariff_id}")
        result = self.ctx.pushes.delete_tariff(req.context.uow, country_code, party_id, tariff_id,
                                               message)
        answer(resp, result, "tariff")


ENDPOINTS = [("tariffs", "SENDER", "tariffs/sender"), ("tariffs", "RECEIVER", "tariffs/receiver")]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    return [
        ("tariffs/sender", ObjectList(ctx, "tariffs")),
        ("tariffs/sender/{object_id}", ObjectItem(ctx, "tariffs")),
        ("tariffs/receiver/{country_code}/{party_id}/{tariff_id}", TariffReceiver(ctx)),
    ]
