"""Onboarding and managing partners: add, suspend, resume, connect.

Parties are looked up in the event store (the aggregates), not in the views,
so a command sees the effect of the one before it even while the views lag.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from hub.domain.parties import UNREGISTERED, Party, Platform
from hub.services.application import Hub, UnitOfWork
from hub.services.operators import OperatorError
from hub.services.operators.names import ROLES, PartyName

Refresh = Callable[..., None]


def _no_refresh(*_: object) -> None:
    return None


def find(app: Hub, name: PartyName) -> list[Party]:
    """The parties ``name`` denotes (every role of the ids unless it names one)."""
    roles = [name.role] if name.role else ROLES
    found = (app.party(name.country_code, name.party_id, role) for role in roles)
    return [p for p in found if p is not None]


def one(app: Hub, name: PartyName) -> Party:
    """The one party ``name`` denotes; OperatorError if none or several."""
    parties = find(app, name)
    if not parties:
        raise OperatorError(f"no party {name} (`hub parties list` shows every party)")
    if len(parties) > 1:
        roles = ", ".join(p.role for p in parties)
        raise OperatorError(f"{name} has several roles ({roles}): write it as {name}/ROLE")
    return parties[0]


def describe(app: Hub, name: PartyName) -> tuple[Party, Platform]:
    """The one party ``name`` denotes and its platform (credentials state, endpoints)."""
    party = one(app, name)
    return party, app.platform(party.platform_id)


def readd_command(party: Party) -> str:
    """The command that re-onboards ``party`` (a fresh token A on a new platform)."""
    return f'hub parties add {party.key} --name "{party.name}"'


def add(app: Hub, name: PartyName, display_name: str, platform_id: UUID | None = None,
        refresh: Refresh = _no_refresh) -> tuple[Party, Platform, str | None]:
    """Onboard a party (or re-onboard an unregistered one); returns it, its platform and token A
    (None when it joins an existing platform)."""
    if not name.role:
        raise OperatorError(f"{name}: name the role to onboard, {name}/CPO (or EMSP, NSP, NAP, SCSP, OTHER)")
    from eventsourcing.application import AggregateNotFoundError

    uow = UnitOfWork(app)
    try:
        party, platform, token_a = app.onboard(
            uow, role=name.role, country_code=name.country_code, party_id=name.party_id,
            name=display_name, platform_id=platform_id)
    except ValueError as exc:
        uow.discard()
        raise OperatorError(f"{exc}; `hub parties show {name}` shows it") from None
    except AggregateNotFoundError:
        uow.discard()
        raise OperatorError(f"no platform {platform_id}: `hub parties list` shows each party's"
                            " PLATFORM_ID; leave out --platform for a new one") from None
    uow.commit()
    refresh()
    return party, platform, token_a


def suspend(app: Hub, name: PartyName, reason: str, refresh: Refresh = _no_refresh) -> Party:
    """Refuse the party's requests and deliver nothing to it until ``resume``."""
    party = one(app, name)
    if party.suspended:
        raise OperatorError(f"{party.key} is already suspended (`hub parties resume {party.key}` lifts it)")
    party.suspend(reason)
    _save(app, party, refresh)
    return party


def resume(app: Hub, name: PartyName, refresh: Refresh = _no_refresh) -> Party:
    """Lift an operator's suspension. An unregistered party comes back by re-onboarding only."""
    party = one(app, name)
    if not party.suspended:
        if party.connection == UNREGISTERED:
            raise OperatorError(
                f"{party.key} is UNREGISTERED, not suspended: its platform deleted its credentials;"
                f" re-onboard it with `{readd_command(party)}` and give the partner the new token A")
        raise OperatorError(f"{party.key} is not suspended (state {party.state})")
    party.resume()
    _save(app, party, refresh)
    return party


def set_testing(app: Hub, name: PartyName, testing: bool, refresh: Refresh = _no_refresh) -> Party:
    """Mark the party as a test party (or no longer): only a test party may be sent test objects
    by ``hub parties check --write``. Setting what is already set records nothing."""
    party = one(app, name)
    if bool(getattr(party, "testing", False)) != bool(testing):
        party.set_testing(bool(testing))
        _save(app, party, refresh)
    return party


def _save(app: Hub, party: Party, refresh: Refresh) -> None:
    from eventsourcing.persistence import IntegrityError

    uow = UnitOfWork(app)
    uow.add(party)
    try:
        uow.commit()
    except IntegrityError:
        raise OperatorError(f"{party.key} changed at the same moment (a partner's request); try again") from None
    refresh()


def connect(app: Hub, client, versions_url: str, token: str, platform_id: UUID | None = None,
            refresh: Refresh = _no_refresh) -> tuple[Platform, list[Party]]:
    """Start the credentials handshake towards a partner that issued ``token`` to the hub."""
    from hub.ocpi.errors import OcpiError
    from hub.services.registration import Registration

    try:
        platform, parties = Registration(app, client).connect(versions_url, token, refresh, platform_id)
    except OcpiError as exc:
        raise OperatorError(f"handshake failed ({exc.status_code}): {exc.message}") from None
    refresh()
    return platform, parties
