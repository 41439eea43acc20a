"""The Falcon application: routes, media, middleware and the error envelope.

Each OCPI module's handler file declares ``ENDPOINTS`` (what the 2.2.1 version
details advertise: module, interface role, base path) and ``routes(ctx)`` (the
URL templates it serves below that base); ``MODULES`` lists the files, one per
module of :data:`hub.domain.modules.MODULES` with interfaces. What the hub
advertises and what it serves come from the same place.
"""

from __future__ import annotations

import falcon

from handlers.console import routes as console_routes
from handlers.context import WebContext
from handlers.errors import handle_ocpi_error, handle_unexpected, serialize_http_error
from handlers.metrics import MetricsResource, ReadyResource, RequestMetrics
from handlers.middleware import OcpiMiddleware
from handlers.transparency import routes as transparency_routes
from handlers.versions import VersionDetailsResource, VersionsResource
from hub import OCPI_VERSION
from hub.domain.modules import HANDLED
from hub.ocpi.envelope import envelope
from hub.ocpi.errors import OcpiError
from hub.ocpi.limits import loads_bounded
from hub.ocpi.numbers import dumps

# One handler file per module the hub offers interfaces of (hub.domain.modules), in table order.
MODULES = tuple(f"handlers.{identifier}" for identifier in HANDLED)


def _modules():
    import importlib

    return [importlib.import_module(name) for name in MODULES]


def endpoints(settings) -> list[dict]:
    """The 2.2.1 version details: every module's advertised base URL and interface role.

    Each URL ends in ``/``: a partner that builds ``{url}{country_code}/...`` by plain
    concatenation, or ``{url}/{country_code}/...`` as OCPI writes it, reaches the same
    endpoint (the middleware folds an empty path segment, Falcon ignores a trailing ``/``)."""
    return [
        {"identifier": module, "role": role, "url": settings.module_url(template) + "/"}
        for mod in _modules()
        for module, role, template in mod.ENDPOINTS
    ]


class HealthResource:
    """``/health``: the process answers (no database access)."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class OptionsAnswer:
    """OPTIONS is answered with the envelope too (Falcon's default answer, which
    keeps its ``Allow`` header, has an empty body)."""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource,
                         req_succeeded: bool) -> None:
        if (req.method == "OPTIONS" and req_succeeded and resource is not None
                and resp.media is None and resp.text is None and resp.data is None):
            resp.media = envelope(None)


def _dumps(obj: object) -> bytes:
    return dumps(obj)  # numbers exactly as partners sent them (hub/ocpi/numbers.py)


def create_app(ctx: WebContext, queue=None) -> falcon.App:
    """``queue``: the delivery queue's functions for the console (handlers/console), from the entry point."""
    metrics = RequestMetrics()
    # OptionsAnswer comes last: its envelope is in place before the request is recorded.
    app = falcon.App(middleware=[OcpiMiddleware(ctx, metrics), OptionsAnswer()])
    app.req_options.strip_url_path_trailing_slash = True
    # Requests nested deeper than hub.ocpi.limits.MAX_JSON_DEPTH are refused as they are read (2001).
    json_handler = falcon.media.JSONHandler(dumps=_dumps, loads=loads_bounded)
    # Bodies are JSON whatever the client says: none, form, XML or text Content-Type
    # alike (curl -d sends a form type), and a body that is not JSON is a 2001.
    app.req_options.media_handlers = falcon.media.Handlers(
        {"*/*": json_handler, falcon.MEDIA_JSON: json_handler})
    app.req_options.default_media_type = falcon.MEDIA_JSON
    app.resp_options.media_handlers.update({falcon.MEDIA_JSON: json_handler})
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(OcpiError, handle_ocpi_error)
    app.set_error_serializer(serialize_http_error)

    for mod in _modules():
        for template, resource in mod.routes(ctx):
            app.add_route(f"/ocpi/{OCPI_VERSION}/{template}", resource)
    app.add_route("/ocpi/versions", VersionsResource(ctx.settings.version_details_url))
    app.add_route(f"/ocpi/{OCPI_VERSION}", VersionDetailsResource(endpoints(ctx.settings)))
    # Operational endpoints, outside /ocpi and without OCPI auth (handlers/metrics.py).
    app.add_route("/health", HealthResource())
    app.add_route("/ready", ReadyResource(ctx))
    app.add_route("/metrics", MetricsResource(ctx, metrics))
    # The transparency log for partners (handlers/transparency.py): not OCPI, own authentication.
    for template, resource in transparency_routes(ctx):
        app.add_route(template, resource)
    # The operations console (handlers/console, docs/console.md): its own sessions, no partner token.
    for template, resource in console_routes(ctx, queue):
        app.add_route(template, resource)
    return app
