"""Credentials module: register (POST), read (GET), update/rotate (PUT), unregister (DELETE)."""

from __future__ import annotations

import falcon

from handlers.context import WebContext
from hub.ocpi.envelope import envelope
from hub.services.registration import hub_credentials


class CredentialsResource:
    module = "credentials"
    interface = "SENDER"

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def _platform(self, req: falcon.Request):
        return self.ctx.app.platform(req.context.caller.platform_id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = envelope(hub_credentials(self.ctx.settings, req.context.caller.token))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        uow = req.context.uow
        data = self.ctx.registration.register(uow, self._platform(req), req.get_media(),
                                              req.context.correlation_id)
        uow.after_commit.append(self.ctx.catch_up_parties)
        resp.media = envelope(data)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        uow = req.context.uow
        data = self.ctx.registration.update(uow, self._platform(req), req.get_media(),
                                            req.context.correlation_id)
        uow.after_commit.append(self.ctx.catch_up_parties)
        resp.media = envelope(data)

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        uow = req.context.uow
        self.ctx.registration.unregister(uow, self._platform(req))
        uow.after_commit.append(self.ctx.catch_up_parties)
        resp.media = envelope()


ENDPOINTS = [("credentials", "SENDER", "credentials")]


def routes(ctx: WebContext) -> list[tuple[str, object]]:
    return [("credentials", CredentialsResource(ctx))]
