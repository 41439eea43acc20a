"""The event store is the audit trail: append-only in the database itself."""

from __future__ import annotations

import psycopg
import pytest

from hub.entrypoints.cli import Runtime
from tests.partner import role


def _connect(settings):
    conn = psycopg.connect(settings.database_url, autocommit=True)
    conn.execute(f'SET search_path TO "{settings.database_schema}"')
    return conn


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE hub_events SET topic = 'forged'",
        "DELETE FROM hub_events",
        "TRUNCATE hub_events",
    ],
)
def test_events_cannot_be_changed_or_removed(hub, settings, statement):
    hub.onboard("CPO", "IN", "ECP")  # at least one stored event
    with _connect(settings) as conn:
        (before,) = conn.execute("SELECT count(*) FROM hub_events").fetchone()
        assert before > 0
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute(statement)
        (after,) = conn.execute("SELECT count(*) FROM hub_events").fetchone()
        assert after == before
        assert conn.execute("SELECT count(*) FROM hub_events WHERE topic = 'forged'").fetchone()[0] == 0


def test_migrate_is_idempotent_and_needs_no_superuser(settings, monkeypatch):
    """Run migrate again as a plain role that only owns the schema."""
    role_name = "hub_owner_" + settings.database_schema
    schema = settings.database_schema + "_own"
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role_name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
        admin.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{role_name}"')
    try:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(settings.database_url)
        host = parts.netloc.split("@", 1)[-1]
        url = urlunsplit(parts._replace(netloc=f"{role_name}@{host}"))
        for key, value in {**settings.extra, "HUB_DATABASE_URL": url, "HUB_DATABASE_SCHEMA": schema}.items():
            if key.startswith("HUB_"):
                monkeypatch.setenv(key, value)
        Runtime().migrate()
        Runtime().migrate()  # twice: nothing changes, nothing fails
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            tables = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
            assert {"hub_events", "hub_tracking", "view_parties", "hub_deliveries"} <= tables
            triggers = {r[0] for r in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'hub_events'::regclass")}
            assert {"hub_events_append_only", "hub_events_no_truncate"} <= triggers
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.execute(f'DROP ROLE IF EXISTS "{role_name}"')


def test_registration_is_in_the_log(hub, settings):
    partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    partner.stop()
    with _connect(settings) as conn:
        topics = [r[0] for r in conn.execute("SELECT topic FROM hub_events ORDER BY notification_id")]
    names = [t.split(":")[1] for t in topics]
    for expected in ("Platform.Invited", "Party.Onboarded", "Platform.Registered", "Party.Connected",
                     "Call.Made", "Request.Answered"):
        assert expected in names, names
    # The hub's calls to the partner (versions, details) are in the same transaction as the registration.
    registered = names.index("Platform.Registered")
    assert "Call.Made" in names[registered - 3: registered + 3]


def test_followers_with_nothing_to_apply_are_moved_to_the_head_and_the_others_still_apply(hub, settings):
    """A worker round skips followers none of whose events came, without skipping an event."""
    from hub.infra.eventlog import EventLog
    from hub.services.application import Hub
    from projections import all_projections
    from scheduler.worker import dispatchers

    followers = [*all_projections(), *dispatchers()]
    partner = hub.connect_partner([role("EMSP", "IN", "EMP")])  # takes ClientInfo pushes
    app = Hub(settings, settings.database_url, pool_size=2)
    try:
        log = EventLog(app)
        assert log.advance_idle(followers) == set()  # no follower has run yet: none is skipped
        for follower in followers:
            log.catch_up(follower)
        assert log.advance_idle(followers) == {f.name for f in followers}  # all at the head

        hub.onboard("EMSP", "IN", "IDL")  # Party and Platform events only
        head = log.head()
        idle = log.advance_idle(followers)
        assert {"parties", "dispatch-clientinfo"}.isdisjoint(idle)
        assert {"objects", "routing-rules", "commands", "dispatch-objects", "dispatch-commands"} <= idle
        assert all(log.position(name) == head for name in idle)
        assert log.position("dispatch-clientinfo") < head  # its events wait for it (the CLI ran the views)

        for follower in followers:  # what the others have to apply is still there
            log.catch_up(follower)
        with _connect(settings) as conn:
            keys = [k for (k,) in conn.execute(
                "SELECT object_key FROM hub_deliveries WHERE module = 'hubclientinfo'").fetchall()]
        assert any("IDL" in key for key in keys), keys  # the new party's ClientInfo, for EMP
        assert all(log.position(f.name) == head for f in followers)
    finally:
        app.close()
        partner.stop()


def test_json_columns_come_back_exactly_as_stored(settings):
    """Views' JSON is read with orjson, except what it would change (integers beyond 64 bits)."""
    import hub.infra.database  # noqa: F401  (installs the JSON loader for every connection)

    text = '{"b": 1, "a": [123456789012345678901234567890, 1.5, "x"], "c": {"z": null, "y": true}}'
    with _connect(settings) as conn:
        as_json, as_jsonb, plain = conn.execute(
            "SELECT %s::json, %s::jsonb, %s::json", (text, text, '{"k": "v", "n": 9007199254740993}')
        ).fetchone()
    assert as_json == as_jsonb == {"b": 1, "a": [123456789012345678901234567890, 1.5, "x"],
                                   "c": {"z": None, "y": True}}
    assert list(as_json) == ["b", "a", "c"]  # json keeps the stored key order
    assert plain == {"k": "v", "n": 9007199254740993}
