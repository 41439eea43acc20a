"""What a sandbox partner sends the hub, over HTTP only: the credentials handshake,
pushes of its objects, token authorization and command results."""

from __future__ import annotations

import base64
import uuid

import requests

from hub.sandbox import data
from hub.sandbox.partner import VERSION, Partner

HUB_IDS = ("IN", "CIH")
TIMEOUT = 15


class HubError(RuntimeError):
    """The hub refused or did not answer; the message says what it answered."""


def _auth(token: str) -> dict:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def _routing(partner: Partner, to: tuple[str, str] | None = HUB_IDS) -> dict:
    headers = {"OCPI-from-country-code": partner.country_code, "OCPI-from-party-id": partner.party_id,
               "X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": str(uuid.uuid4())}
    if to:
        headers.update({"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]})
    return headers


def _ok(answer: requests.Response, what: str) -> dict:
    try:
        body = answer.json()
    except ValueError:
        raise HubError(f"{what}: HTTP {answer.status_code}, not JSON") from None
    if not isinstance(body, dict) or not 1000 <= int(body.get("status_code") or 0) < 2000:
        raise HubError(f"{what}: HTTP {answer.status_code}, OCPI {body.get('status_code')}"
                       f" {body.get('status_message', '')}".rstrip())
    return body


def register(partner: Partner, versions_url: str, token_a: str, session: requests.Session | None = None) -> str:
    """The partner side of the credentials handshake; returns token C and keeps the hub's endpoints."""
    http = session or requests.Session()
    versions = _ok(http.get(versions_url, headers=_auth(token_a), timeout=TIMEOUT), "GET versions")
    details_url = next(v["url"] for v in versions["data"] if v["version"] == VERSION)
    details = _ok(http.get(details_url, headers=_auth(token_a), timeout=TIMEOUT), "GET version details")
    endpoints = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}
    answer = _ok(http.post(endpoints[("credentials", "SENDER")], json=partner.credentials(),
                           headers=_auth(token_a), timeout=TIMEOUT), "POST credentials")
    partner.token_c = answer["data"]["token"]
    partner.hub_versions_url = versions_url
    partner.hub_endpoints = endpoints
    return partner.token_c


def discover(partner: Partner, versions_url: str, session: requests.Session | None = None) -> None:
    """(A partner registered before) read the hub's endpoints again with token C."""
    http = session or requests.Session()
    versions = _ok(http.get(versions_url, headers=_auth(partner.token_c or ""), timeout=TIMEOUT), "GET versions")
    details_url = next(v["url"] for v in versions["data"] if v["version"] == VERSION)
    details = _ok(http.get(details_url, headers=_auth(partner.token_c or ""), timeout=TIMEOUT),
                  "GET version details")
    partner.hub_versions_url = versions_url
    partner.hub_endpoints = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}


def _url(partner: Partner, module: str, role: str, *segments: str) -> str:
    base = partner.hub_endpoints[(module, role)].rstrip("/")
    return "/".join([base, *segments])


def push(partner: Partner, module: str, obj: dict, method: str = "PUT", *segments: str,
         session: requests.Session | None = None) -> dict:
    """PUT (or PATCH) one of the partner's objects to the hub's receiver, broadcast (``OCPI-to`` the hub).

    Sessions and CDRs go to the eMSP of their ``cdr_token``: no ``OCPI-to``.
    In the ``invalid`` fault the object is sent broken (:func:`hub.sandbox.data.invalid`).
    """
    if partner.token_c is None:
        raise HubError(f"{partner.key} is not registered with a hub")
    http = session or requests.Session()
    if partner.fault.mode == "invalid" and method == "PUT":
        obj = data.invalid(module, obj)
    ident = obj.get("id") or obj.get("uid")
    to = None if module in ("sessions", "cdrs") else HUB_IDS
    if module == "cdrs":
        url, method = _url(partner, module, "RECEIVER"), "POST"
    else:
        url = _url(partner, module, "RECEIVER", partner.country_code, partner.party_id,
                   *(segments or (str(ident),)))
        if module == "tokens":
            url += f"?type={obj.get('type', 'RFID')}"
    answer = http.request(method, url, json=obj, headers={**_auth(partner.token_c), **_routing(partner, to)},
                          timeout=TIMEOUT)
    return _ok(answer, f"{method} {module} {ident or '/'.join(segments)}")


def push_all(partner: Partner, session: requests.Session | None = None) -> int:
    """Push every object the partner holds that it owns (CPO: Locations, Tariffs; eMSP: Tokens)."""
    modules = ("tariffs", "locations") if partner.role == "CPO" else ("tokens",)
    count = 0
    for module in modules:
        for obj in list(partner.held[module]):
            push(partner, module, obj, session=session)
            count += 1
    return count


def authorize(partner: Partner, token: dict, location_id: str | None = None,
              session: requests.Session | None = None) -> requests.Response:
    """(CPO) real-time authorization of an eMSP's token through the hub (open routing)."""
    http = session or requests.Session()
    url = _url(partner, "tokens", "SENDER", token["uid"], "authorize") + f"?type={token['type']}"
    body = {"location_id": location_id} if location_id else None
    return http.post(url, json=body, headers={**_auth(partner.token_c), **_routing(partner, None)},
                     timeout=TIMEOUT)


def post_result(partner: Partner, response_url: str, result: dict, to: tuple[str, str] | None) -> None:
    """(CPO) the CommandResult POSTed to the hub's ``response_url``."""
    headers = {**_auth(partner.token_c or ""), **_routing(partner, to)}
    requests.post(response_url, json=result, headers=headers, timeout=TIMEOUT)
