"""Versions module: the version list and the 2.2.1 version details."""

from __future__ import annotations

import falcon

from hub import OCPI_VERSION
from hub.ocpi.envelope import envelope


class VersionsResource:
    module = "versions"
    interface = None

    def __init__(self, details_url: str) -> None:
        self.details_url = details_url

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = envelope([{"version": OCPI_VERSION, "url": self.details_url}])


class VersionDetailsResource:
    module = "versions"
    interface = None

    def __init__(self, endpoints: list[dict]) -> None:
        self.endpoints = endpoints

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = envelope({"version": OCPI_VERSION, "endpoints": self.endpoints})
