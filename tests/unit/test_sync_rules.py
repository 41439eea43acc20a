"""Pull sync rules (hub/domain/sync.py): what can be pulled from whom, the schedule's form,
``Link``, and the record of runs that the next incremental pull starts from."""

from __future__ import annotations

import pytest

from hub.domain.sync import PartySync, ScheduleEntry, next_link, parse_schedule, pullable
from hub.services.application import UnitOfWork


@pytest.mark.parametrize(("role", "modules"), [
    ("CPO", ("locations", "tariffs", "sessions", "cdrs")),
    ("EMSP", ("tokens",)),
    ("emsp", ("tokens",)),
    ("NAP", ()), ("NSP", ()), ("OTHER", ()), ("SCSP", ()),
])
def test_only_owners_of_stored_modules_are_pulled(role, modules):
    assert pullable(role) == modules


def test_schedule_entries():
    assert parse_schedule("IN/abc=15m, IN/XYZ/EMSP:tokens=1h,IN/DEF:locations+tariffs=300 ,") == (
        ScheduleEntry("IN/ABC", (), 900.0),
        ScheduleEntry("IN/XYZ/EMSP", ("tokens",), 3600.0),
        ScheduleEntry("IN/DEF", ("locations", "tariffs"), 300.0),
    )
    assert parse_schedule("") == () and parse_schedule(None) == ()


@pytest.mark.parametrize(("text", "names"), [
    ("IN/ABC", "CC/PID[/ROLE][:module[+module]]=INTERVAL"),
    ("IN/ABC=soon", "CC/PID[/ROLE]"),
    ("IN/ABC/BOSS=60", "role BOSS"),
    ("IN/ABC:commands=60", "module commands cannot be pulled"),
    ("IN/ABC:locations=60,IN/ABC:locations=120", "scheduled twice"),
    ("IN/ABC=0", "at least 1 s"),
])
def test_schedule_mistakes_name_the_entry(text, names):
    with pytest.raises(ValueError) as caught:
        parse_schedule(text)
    assert names in str(caught.value)


def test_bad_schedule_stops_the_settings_with_the_variable_named():
    from hub.infra.config import Settings

    with pytest.raises(SystemExit, match="HUB_SYNC_SCHEDULE"):
        Settings.from_env({"HUB_SYNC_SCHEDULE": "IN/ABC"})
    assert Settings.from_env({"HUB_SYNC_SCHEDULE": "IN/ABC=2m"}).sync_schedule[0].seconds == 120


@pytest.mark.parametrize(("header", "url"), [
    ('<https://cpo.example/ocpi/2.2.1/locations?offset=50&limit=50>; rel="next"',
     "https://cpo.example/ocpi/2.2.1/locations?offset=50&limit=50"),
    ('<https://a.example/p?x=1>; rel="prev", <https://a.example/p?x=3>; rel=next', "https://a.example/p?x=3"),
    ('<https://a.example/p?x=3>; title="n"; rel="last next"', "https://a.example/p?x=3"),
    ('<https://a.example/p?x=1>; rel="prev"', None),
    ("", None), (None, None),
])
def test_next_link(header, url):
    assert next_link(header) == url


def test_the_next_pull_starts_where_the_last_successful_one_started(app):
    state = PartySync(party="IN/ECP/CPO", module="locations")
    assert state.id == PartySync.create_id("in/ecp/cpo", "LOCATIONS") and state.last_success is None
    state.completed("2026-12-01T10:00:00.000Z", None, False, 3, 7, 7, 0, 0, 0, "c1")
    state.failed("2026-12-01T11:00:00.000Z", "2026-12-01T10:00:00.000Z", False, 1, 2, "HTTP 500", "c2")
    uow = UnitOfWork(app)
    uow.add(state)
    uow.commit()
    held = app.repository.get(state.id)
    assert held.last_success == "2026-12-01T10:00:00.000Z"
    assert held.last_run["state"] == "failed"
