"""The Falcon application: routes, media, middleware and the error envelope.

Each OCPI endpoint is registered once in :func:`routes`; the 2.2.1 version
details are generated from the same list, so what the hub advertises is what
it serves.
"""

from __future__ import annotations

from dataclasses import dataclass

import falcon
import orjson

from handlers.context import WebContext
from handlers.credentials import CredentialsResource
from handlers.errors import handle_ocpi_error, handle_unexpected, serialize_http_error
from handlers.hubclientinfo import ClientInfoListResource
from handlers.middleware import OcpiMiddleware
from handlers.versions import VersionDetailsResource, VersionsResource
from hub import OCPI_VERSION
from hub.errors import OcpiError


@dataclass(frozen=True)
class Route:
    template: str          # path below /ocpi/2.2.1/
    resource: object
    module: str | None = None      # advertise as this module ...
    interface: str | None = None   # ... with this interface role (when this is its base URL)
    suffix: str | None = None


def routes(ctx: WebContext) -> list[Route]:
    return [
        Route("credentials", CredentialsResource(ctx), "credentials", "SENDER"),
        Route("hubclientinfo", ClientInfoListResource(ctx), "hubclientinfo", "SENDER"),
    ]


class HealthResource:
    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


def _dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


def create_app(ctx: WebContext) -> falcon.App:
    app = falcon.App(middleware=[OcpiMiddleware(ctx)])
    app.req_options.strip_url_path_trailing_slash = True
    json_handler = falcon.media.JSONHandler(dumps=_dumps, loads=orjson.loads)
    app.req_options.media_handlers.update({falcon.MEDIA_JSON: json_handler})
    app.resp_options.media_handlers.update({falcon.MEDIA_JSON: json_handler})
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(OcpiError, handle_ocpi_error)
    app.set_error_serializer(serialize_http_error)

    endpoints = []
    for route in routes(ctx):
        path = f"/ocpi/{OCPI_VERSION}/{route.template}"
        if route.suffix:
            app.add_route(path, route.resource, suffix=route.suffix)
        else:
            app.add_route(path, route.resource)
        if route.module and route.interface:
            endpoints.append({"identifier": route.module, "role": route.interface,
                              "url": ctx.settings.module_url(route.template)})
    app.add_route("/ocpi/versions", VersionsResource(ctx.settings.version_details_url))
    app.add_route(f"/ocpi/{OCPI_VERSION}", VersionDetailsResource(endpoints))
    app.add_route("/health", HealthResource())
    return app
