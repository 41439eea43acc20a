"""Platforms (credentials connections) and the parties (roles) they carry.

A *platform* is one partner system the hub holds credentials with; it may host
several *parties* (``country_code``/``party_id``/``role`` triples). Tokens are
never stored in clear: tokens the hub issued are kept as SHA-256 hashes, tokens
a partner issued to the hub are kept encrypted (see :mod:`hub.infra.security`).
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

# Party connection states; the ClientInfo status is derived from these.
PLANNED = "PLANNED"
CONNECTED = "CONNECTED"
OFFLINE = "OFFLINE"
SUSPENDED = "SUSPENDED"
UNREGISTERED = "UNREGISTERED"

#: The one vocabulary operators see (``hub parties``; docs/operations.md "Party states"):
#: PLANNED (onboarded, handshake not done), CONNECTED, OFFLINE (calls to it fail),
#: SUSPENDED (by an operator: ``hub parties resume``), UNREGISTERED (the partner deleted
#: its credentials: re-onboard with ``hub parties add``).
PARTY_STATES = (PLANNED, CONNECTED, OFFLINE, SUSPENDED, UNREGISTERED)


def party_state(connection: str, suspended: bool) -> str:
    """A party's state for operators. Unlike the HubClientInfo status partners see
    (:attr:`Party.status`), an unregistered party is UNREGISTERED, not SUSPENDED:
    only an operator's suspension is lifted by ``resume``."""
    return SUSPENDED if suspended else connection

PARTY_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/ocpi/party")


def party_key(country_code: str, party_id: str, role: str) -> str:
    """The canonical text key of a party: ``IN/ABC/CPO`` (ids are CiStrings)."""
    return f"{country_code.upper()}/{party_id.upper()}/{role.upper()}"


class Platform(Aggregate):
    """A partner platform and its credentials with the hub.

    ``state``: ``INVITED`` (a token A or an outgoing token B is valid for the
    versions and credentials modules only), ``REGISTERED`` (token C is valid),
    ``UNREGISTERED`` (the credentials were deleted; no token is valid).
    """

    @event("Invited")
    def __init__(self, pending_token_hash: str, initiated_by: str) -> None:
        self.state = "INVITED"
        self.pending_token_hash: str | None = pending_token_hash
        self.token_hash: str | None = None
        self.partner_token: str | None = None  # encrypted
        self.versions_url: str | None = None
        self.ocpi_version: str | None = None
        self.endpoints: list[dict] = []
        self.roles: list[dict] = []
        self.party_keys: list[str] = []
        self.initiated_by = initiated_by

    @event("PartyAttached")
    def attach_party(self, key: str) -> None:
        """An operator onboarded a party on this platform."""
        if key not in self.party_keys:
            self.party_keys = sorted([*self.party_keys, key])

    @event("Registered")
    def register(
        self,
        token_hash: str,
        partner_token: str,
        versions_url: str,
        ocpi_version: str,
        endpoints: list[dict],
        roles: list[dict],
    ) -> None:
        """The credentials handshake completed (either direction)."""
        self.state = "REGISTERED"
        self.pending_token_hash = None
        self._set_credentials(token_hash, partner_token, versions_url, ocpi_version, endpoints, roles)

    def _set_credentials(self, token_hash, partner_token, versions_url, ocpi_version, endpoints, roles):
        self.token_hash = token_hash
        self.partner_token = partner_token
        self.versions_url = versions_url
        self.ocpi_version = ocpi_version
        self.endpoints = endpoints
        self.roles = roles
        keys = {party_key(r["country_code"], r["party_id"], r["role"]) for r in roles}
        self.party_keys = sorted(set(self.party_keys) | keys)

    @event("CredentialsUpdated")
    def update_credentials(
        self,
        token_hash: str,
        partner_token: str,
        versions_url: str,
        ocpi_version: str,
        endpoints: list[dict],
        roles: list[dict],
    ) -> None:
        """PUT /credentials: new token for the partner, re-fetched endpoints."""
        self._set_credentials(token_hash, partner_token, versions_url, ocpi_version, endpoints, roles)

    @event("Reinvited")
    def reinvite(self, pending_token_hash: str, initiated_by: str) -> None:
        """An operator issued a fresh token A (e.g. after the partner unregistered)."""
        self.state = "INVITED"
        self.pending_token_hash = pending_token_hash
        self.token_hash = None
        self.initiated_by = initiated_by

    @event("Unregistered")
    def unregister(self, reason: str) -> None:
        """DELETE /credentials: every token of this platform stops working."""
        self.state = "UNREGISTERED"
        self.pending_token_hash = None
        self.token_hash = None

    def endpoint(self, module: str, role: str) -> str | None:
        """The partner's URL for ``module`` with interface role ``role``."""
        for item in self.endpoints:
            if item.get("identifier") == module and item.get("role") == role:
                return item.get("url")
        return None


class Party(Aggregate):
    """One role a partner plays (``IN/ABC/CPO``) and its connection status.

    ``testing``: an operator marked it as a test party (``hub parties test-mode``), so
    ``hub parties check --write`` may send it test objects. Parties onboarded before the
    mark existed have no ``TestingSet`` event and are not test parties.
    """

    testing = False

    @staticmethod
    def create_id(country_code: str, party_id: str, role: str, **_: object) -> UUID:
        return uuid5(PARTY_NAMESPACE, party_key(country_code, party_id, role))

    @event("Onboarded")
    def __init__(
        self, country_code: str, party_id: str, role: str, name: str, platform_id: UUID,
        onboarded_by: str,
    ) -> None:
        self.country_code = country_code.upper()
        self.party_id = party_id.upper()
        self.role = role.upper()
        self.name = name
        self.platform_id = platform_id
        self.onboarded_by = onboarded_by
        self.connection = PLANNED
        self.suspended = False

    @property
    def key(self) -> str:
        return party_key(self.country_code, self.party_id, self.role)

    @property
    def status(self) -> str:
        """The HubClientInfo ConnectionStatus."""
        if self.suspended or self.connection == "UNREGISTERED":
            return SUSPENDED
        return self.connection

    @property
    def state(self) -> str:
        """The operators' state (:func:`party_state`)."""
        return party_state(self.connection, self.suspended)

    @event("Connected")
    def connect(self, platform_id: UUID, name: str) -> None:
        """Its platform registered (or re-registered) with the hub."""
        self.platform_id = platform_id
        self.name = name
        self.connection = CONNECTED

    @event("Replanned")
    def replan(self, platform_id: UUID) -> None:
        """Moved to a new invitation (fresh token A) before it registers again."""
        self.platform_id = platform_id
        self.connection = PLANNED

    @event("WentOffline")
    def go_offline(self, reason: str) -> None:
        self.connection = OFFLINE

    @event("CameOnline")
    def come_online(self) -> None:
        self.connection = CONNECTED

    @event("Unregistered")
    def unregister(self, reason: str) -> None:
        self.connection = UNREGISTERED

    @event("Suspended")
    def suspend(self, reason: str) -> None:
        self.suspended = True

    @event("Resumed")
    def resume(self) -> None:
        self.suspended = False

    @event("TestingSet")
    def set_testing(self, testing: bool) -> None:
        """An operator marked (or unmarked) the party as a test party."""
        self.testing = bool(testing)
