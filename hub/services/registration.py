"""The credentials handshake (credentials.asciidoc), in both directions.

Partner -> hub: the partner POSTs its Credentials with token A; the hub GETs
the partner's versions and 2.2.1 details with the partner's token B, issues
token C and answers with its own Credentials (role HUB, IN/CIH). PUT repeats
this to update endpoints and rotate tokens; DELETE unregisters.

Hub -> partner (``hub parties connect``): the hub GETs the partner's versions
with the token A the partner issued, POSTs its own Credentials with a fresh
token B, and keeps the partner's token C.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from hub import HUB_COUNTRY_CODE, HUB_NAME, HUB_PARTY_ID, OCPI_VERSION
from hub.domain.audit import Call
from hub.domain.parties import Party, Platform, party_key
from hub.infra.client import OcpiClient, OcpiResponse, PartnerCallError
from hub.infra.outbound import OutboundRefused
from hub.infra.security import new_token, token_hash
from hub.ocpi.envelope import format_datetime
from hub.ocpi.errors import InvalidParameters, MethodNotAllowed, OcpiError
from hub.ocpi.models import Credentials, VersionDetails
from hub.ocpi.status import OcpiStatus
from hub.ocpi.validation import validate
from hub.services.application import Hub, UnitOfWork

TOKEN_RE = re.compile(r"[!-~]{1,64}")
PARTNER_ROLES = {"CPO", "EMSP", "NSP", "NAP", "SCSP", "OTHER"}


def hub_credentials(settings, token: str) -> dict:
    """The hub's Credentials object, carrying ``token`` (the one the partner uses)."""
    return {
        "token": token,
        "url": settings.versions_url,
        "roles": [
            {
                "role": "HUB",
                "business_details": {"name": HUB_NAME},
                "party_id": HUB_PARTY_ID,
                "country_code": HUB_COUNTRY_CODE,
            }
        ],
    }


class Registration:
    def __init__(self, app: Hub, client: OcpiClient) -> None:
        self.app = app
        self.client = client

    # Fetching the partner's versions and endpoints -------------------------
    def _call(self, uow: UnitOfWork, platform_id, purpose: str, module: str, method: str,
              url: str, token: str, correlation_id: str, **kwargs) -> OcpiResponse:
        """One call to the partner, recorded in the log as a ``Call.Made``."""
        sent_at = format_datetime(datetime.now(UTC))
        try:
            response = self.client.request(method, url, token, correlation_id=correlation_id,
                                           timeout=self.app.settings.forward_timeout, **kwargs)
        except PartnerCallError as exc:
            uow.add(Call(platform_id=str(platform_id) if platform_id else None, purpose=purpose,
                         module=module, method=method, url=url, request_id=exc.request_id,
                         correlation_id=correlation_id, http_status=exc.http_status, status_code=None,
                         error=str(exc), sent_at=sent_at, duration_ms=exc.elapsed_ms))
            raise
        uow.add(Call(platform_id=str(platform_id) if platform_id else None, purpose=purpose,
                     module=module, method=method, url=url, request_id=response.request_id,
                     correlation_id=correlation_id, http_status=response.http_status,
                     status_code=response.status_code, error=None, sent_at=sent_at,
                     duration_ms=response.elapsed_ms))
        return response

    def fetch_endpoints(self, uow: UnitOfWork, platform_id, versions_url: str, token: str,
                        correlation_id: str) -> tuple[str, list[dict]]:
        """GET the partner's versions, then its 2.2.1 details.

        Raises 3001 when they can't be fetched, 3002 without 2.2.1, 3003
        without a credentials endpoint.
        """
        def fail(code: int, message: str) -> OcpiError:
            return OcpiError(code, message)

        try:
            versions = self._call(uow, platform_id, "registration", "versions", "GET",
                                  versions_url, token, correlation_id)
        except PartnerCallError as exc:
            raise fail(OcpiStatus.CLIENT_API_UNUSABLE, f"url: versions could not be fetched ({exc})") from None
        if not versions.ok or not isinstance(versions.data, list):
            raise fail(OcpiStatus.CLIENT_API_UNUSABLE,
                       f"url: versions answered HTTP {versions.http_status}, status {versions.status_code}")
        details_url = next(
            (v.get("url") for v in versions.data if isinstance(v, dict) and v.get("version") == OCPI_VERSION),
            None,
        )
        if not details_url:
            offered = ", ".join(str(v.get("version")) for v in versions.data if isinstance(v, dict))
            raise fail(OcpiStatus.UNSUPPORTED_VERSION,
                       f"url: the versions endpoint offers no {OCPI_VERSION} (offers: {offered or 'none'})")
        try:
            details = self._call(uow, platform_id, "registration", "versions", "GET",
                                 details_url, token, correlation_id)
        except PartnerCallError as exc:
            raise fail(OcpiStatus.CLIENT_API_UNUSABLE, f"version details could not be fetched ({exc})") from None
        if not details.ok or not isinstance(details.data, dict):
            raise fail(OcpiStatus.CLIENT_API_UNUSABLE,
                       f"version details answered HTTP {details.http_status}, status {details.status_code}")
        try:
            parsed = validate(VersionDetails, details.data)
        except InvalidParameters as exc:
            raise fail(OcpiStatus.CLIENT_API_UNUSABLE, f"version details are invalid: {exc.message}") from None
        endpoints = [
            {"identifier": str(getattr(e.identifier, "value", e.identifier)),
             "role": str(getattr(e.role, "value", e.role)), "url": e.url}
            for e in parsed.endpoints
        ]
        if not any(e["identifier"] == "credentials" for e in endpoints):
            raise fail(OcpiStatus.NO_MATCHING_ENDPOINTS, "version details list no credentials endpoint")
        for endpoint in endpoints:  # every one will be called: refused now, not at its first delivery
            try:
                self.client.guard.check_url(endpoint["url"])
            except OutboundRefused as exc:
                raise fail(OcpiStatus.CLIENT_API_UNUSABLE,
                           f"endpoints: the {endpoint['identifier']} {endpoint['role']} URL {exc}") from None
        return OCPI_VERSION, endpoints

    # Roles -----------------------------------------------------------------
    def _check_roles(self, platform: Platform, roles: list[dict]) -> None:
        seen: set[str] = set()
        for index, role in enumerate(roles):
            kind = role["role"]
            if kind not in PARTNER_ROLES:
                raise InvalidParameters(f"roles[{index}].role: {kind} cannot connect to this hub")
            key = party_key(role["country_code"], role["party_id"], kind)
            if key in seen:
                raise InvalidParameters(f"roles[{index}]: {key} is listed twice")
            seen.add(key)
            existing = self.app.party(role["country_code"], role["party_id"], kind)
            if (existing is not None and existing.platform_id != platform.id
                    and existing.connection != "UNREGISTERED"):
                raise InvalidParameters(f"roles[{index}]: {key} belongs to another connection")
        onboarded = set(platform.party_keys)
        if onboarded and not onboarded & seen:
            raise InvalidParameters(
                "roles: must include a party the hub operator onboarded for this token ("
                + ", ".join(sorted(onboarded)) + ")"
            )

    def _connect_parties(self, uow: UnitOfWork, platform: Platform, roles: list[dict],
                         previous_keys: set[str]) -> None:
        """Every role becomes a CONNECTED party; roles dropped by a PUT unregister."""
        current: set[str] = set()
        for role in roles:
            key = party_key(role["country_code"], role["party_id"], role["role"])
            current.add(key)
            name = role["business_details"]["name"]
            party = self.app.party(role["country_code"], role["party_id"], role["role"])
            if party is None:
                party = Party(country_code=role["country_code"], party_id=role["party_id"],
                              role=role["role"], name=name, platform_id=platform.id,
                              onboarded_by="registration")
            if party.connection != "CONNECTED" or party.platform_id != platform.id or party.name != name:
                party.connect(platform.id, name)
                uow.add(party)
        for key in previous_keys - current:
            party = self.app.party(*key.split("/"))
            if party is not None and party.platform_id == platform.id and party.connection != "UNREGISTERED":
                party.unregister("role no longer listed in the platform's credentials")
                uow.add(party)

    @staticmethod
    def _roles(credentials: Credentials) -> list[dict]:
        return [
            {
                "role": str(getattr(r.role, "value", r.role)),
                "country_code": r.country_code.upper(),
                "party_id": r.party_id.upper(),
                "business_details": r.business_details.model_dump(mode="json", exclude_none=True),
            }
            for r in credentials.roles
        ]

    # Partner -> hub ---------------------------------------------------------
    def register(self, uow: UnitOfWork, platform: Platform, body: object,
                 correlation_id: str) -> dict:
        """POST /credentials. Returns the hub's Credentials with the new token C."""
        if platform.state == "REGISTERED":
            raise MethodNotAllowed("this platform is already registered; use PUT to update")
        return self._exchange(uow, platform, body, correlation_id, first=True)

    def update(self, uow: UnitOfWork, platform: Platform, body: object, correlation_id: str) -> dict:
        """PUT /credentials: re-fetch the endpoints, issue a new token C."""
        if platform.state != "REGISTERED":
            raise MethodNotAllowed("this platform is not registered; use POST to register")
        return self._exchange(uow, platform, body, correlation_id, first=False)

    def _exchange(self, uow: UnitOfWork, platform: Platform, body: object, correlation_id: str,
                  *, first: bool) -> dict:
        credentials = validate(Credentials, body)
        if not TOKEN_RE.fullmatch(credentials.token):
            raise InvalidParameters("token: at most 64 printable ASCII characters without spaces")
        roles = self._roles(credentials)
        self._check_roles(platform, roles)
        version, endpoints = self.fetch_endpoints(uow, platform.id, credentials.url,
                                                  credentials.token, correlation_id)
        token_c = new_token()
        previous = set(platform.party_keys)
        args = dict(token_hash=token_hash(token_c),
                    partner_token=self.app.cipher.encrypt(credentials.token),
                    versions_url=credentials.url, ocpi_version=version, endpoints=endpoints, roles=roles)
        if first:
            platform.register(**args)
        else:
            platform.update_credentials(**args)
        uow.add(platform)
        self._connect_parties(uow, platform, roles, previous if not first else set())
        return hub_credentials(self.app.settings, token_c)

    def unregister(self, uow: UnitOfWork, platform: Platform) -> None:
        """DELETE /credentials: every token dies, every party becomes SUSPENDED."""
        if platform.state != "REGISTERED":
            raise MethodNotAllowed("this platform is not registered")
        platform.unregister("the platform deleted its credentials")
        uow.add(platform)
        for party in self.app.parties_of(platform):
            if party.platform_id == platform.id and party.connection != "UNREGISTERED":
                party.unregister("the platform deleted its credentials")
                uow.add(party)

    # Hub -> partner ---------------------------------------------------------
    def connect(self, versions_url: str, token_a: str, catch_up: Callable[[int], None],
                platform_id: uuid.UUID | None = None) -> tuple[Platform, list[Party]]:
        """Start the handshake towards a partner that gave the hub ``token_a``.

        Commits twice: first the token B the hub offers (so the partner's
        callbacks to the hub's versions endpoint authenticate), then the
        registration with the partner's token C.
        """
        correlation_id = str(uuid.uuid4())
        token_b = new_token()
        uow = UnitOfWork(self.app)
        if platform_id is not None:
            platform = self.app.platform(platform_id)
            if platform.state == "REGISTERED":
                raise MethodNotAllowed("this platform is already registered")
            platform.reinvite(token_hash(token_b), initiated_by="hub")
        else:
            platform = Platform(pending_token_hash=token_hash(token_b), initiated_by="hub")
        uow.add(platform)
        version, endpoints = self.fetch_endpoints(uow, platform.id, versions_url, token_a, correlation_id)
        credentials_url = next(e["url"] for e in endpoints if e["identifier"] == "credentials")
        position = uow.commit()
        if position is not None:
            catch_up(position)
        uow = UnitOfWork(self.app)
        try:
            response = self._call(uow, platform.id, "registration", "credentials", "POST",
                                  credentials_url, token_a, correlation_id,
                                  json=hub_credentials(self.app.settings, token_b))
        except PartnerCallError as exc:
            uow.commit()
            raise OcpiError(OcpiStatus.CLIENT_API_UNUSABLE, f"credentials POST failed: {exc}") from None
        if not response.ok:
            uow.commit()
            raise OcpiError(OcpiStatus.CLIENT_API_UNUSABLE,
                            f"credentials POST answered HTTP {response.http_status}, status "
                            f"{response.status_code}: {response.body.get('status_message', '')}")
        try:
            theirs = validate(Credentials, response.data)
        except InvalidParameters as exc:
            uow.commit()
            raise OcpiError(OcpiStatus.CLIENT_API_UNUSABLE,
                            f"the partner's credentials are invalid: {exc.message}") from None
        roles = self._roles(theirs)
        self._check_roles(platform, roles)
        platform.register(token_hash=token_hash(token_b),
                          partner_token=self.app.cipher.encrypt(theirs.token),
                          versions_url=versions_url, ocpi_version=version, endpoints=endpoints, roles=roles)
        uow.add(platform)
        self._connect_parties(uow, platform, roles, set())
        position = uow.commit()
        if position is not None:
            catch_up(position)
        return platform, self.app.parties_of(platform)
