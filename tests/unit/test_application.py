"""The application on the in-memory store: onboarding, and what the fast tier relies on."""

from __future__ import annotations

import socket

import pytest

from hub.infra.security import token_hash
from hub.services.application import Hub, UnitOfWork


def onboard(app: Hub, role: str = "CPO", cc: str = "IN", pid: str = "ECP", **kwargs):
    uow = UnitOfWork(app)
    result = app.onboard(uow, role=role, country_code=cc, party_id=pid, name="ECP Charging", **kwargs)
    uow.commit()
    return result


def test_onboarding_a_new_party_invites_its_platform_with_a_fresh_token_a(app):
    party, platform, token_a = onboard(app, cc="in", pid="ecp")
    assert token_a and platform.pending_token_hash == token_hash(token_a)
    assert platform.state == "INVITED" and platform.party_keys == ["IN/ECP/CPO"]
    stored = app.party("IN", "ECP", "CPO")
    assert (stored.key, stored.status, stored.platform_id) == ("IN/ECP/CPO", "PLANNED", platform.id)
    assert app.parties_of(app.platform(platform.id)) == [stored]


def test_onboarding_a_party_twice_is_refused_naming_it_and_its_status(app):
    onboard(app)
    with pytest.raises(ValueError, match=r"party IN/ECP/CPO already exists \(status PLANNED\)"):
        onboard(app)


def test_another_role_joins_an_existing_platform_without_a_new_token(app):
    _, platform, _ = onboard(app)
    emsp, same, token_a = onboard(app, role="EMSP", platform_id=platform.id)
    assert token_a is None and same.id == platform.id and emsp.platform_id == platform.id
    assert app.platform(platform.id).party_keys == ["IN/ECP/CPO", "IN/ECP/EMSP"]
    assert [p.key for p in app.parties_of(app.platform(platform.id))] == ["IN/ECP/CPO", "IN/ECP/EMSP"]


def test_a_party_whose_platform_unregistered_is_onboarded_again_on_a_new_invitation(app):
    party, first, _ = onboard(app)
    party.unregister("credentials deleted")
    app.save(party)
    assert app.party("IN", "ECP", "CPO").status == "SUSPENDED"
    again, second, token_a = onboard(app)
    assert token_a and second.id != first.id
    assert app.party("IN", "ECP", "CPO").platform_id == second.id and again.status == "PLANNED"


def test_unknown_party_is_none(app):
    assert app.party("IN", "NOPE", "CPO") is None


def test_a_failed_command_saves_nothing(app):
    onboard(app)
    head = app.recorder.max_notification_id()
    with pytest.raises(ValueError):
        onboard(app)
    assert app.recorder.max_notification_id() == head


def test_commit_returns_the_log_position_of_the_last_event(app):
    uow = UnitOfWork(app)
    app.onboard(uow, role="CPO", country_code="IN", party_id="ECP", name="x")
    position = uow.commit()
    assert position == app.recorder.max_notification_id() == 3  # Invited, PartyAttached, Onboarded


def test_the_in_memory_hub_has_no_pool_and_still_seals_tokens():
    app = Hub.in_memory()
    try:
        assert app.pool is None and app.database_url is None
        assert app.cipher.decrypt(app.cipher.encrypt("partner-token")) == "partner-token"
    finally:
        app.close()


# The tier itself -------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["database_url", "settings", "hub", "worker", "gunicorn_hub", "processes"])
def test_a_unit_test_cannot_use_the_database_or_processes(request, fixture):
    with pytest.raises(pytest.fail.Exception, match="a unit test must not"):
        request.getfixturevalue(fixture)


def test_a_unit_test_cannot_open_a_connection():
    with pytest.raises(AssertionError, match="must not open a network connection"):
        socket.create_connection(("127.0.0.1", 5432), timeout=1)
