"""The console's pure rules (hub/domain/console.py) and its accounts on the in-memory store."""

from __future__ import annotations

import pytest

from hub.domain import console as c
from hub.services.operators import OperatorError, accounts

FAST = 2**10  # a cheap scrypt cost for tests of the format (the real cost is c.SCRYPT_N)


def test_secret_hash_is_scrypt_salted_and_checks():
    stored = c.hash_secret("s3cret", n=FAST)
    kind, n, r, p, salt, digest = stored.split("$")
    assert (kind, int(n), int(r), int(p)) == ("scrypt", FAST, c.SCRYPT_R, c.SCRYPT_P)
    assert "s3cret" not in stored
    assert c.secret_matches("s3cret", stored)
    assert not c.secret_matches("s3cret ", stored) and not c.secret_matches("", stored)
    assert c.hash_secret("s3cret", n=FAST) != stored  # a fresh salt each time
    for broken in ("", "scrypt$1$2", "bcrypt$16384$8$1$AAAA$AAAA", "scrypt$x$8$1$AAAA$AAAA"):
        assert not c.secret_matches("s3cret", broken)


def test_generated_secrets_are_long_and_distinct():
    secrets = {c.new_secret() for _ in range(50)}
    assert len(secrets) == 50 and min(map(len, secrets)) >= 20


def test_session_id_is_stored_only_as_a_digest():
    sid = c.new_session_id()
    assert len(sid) >= 40 and c.session_digest(sid) != sid and len(c.session_digest(sid)) == 64
    assert c.session_digest(sid) == c.session_digest(sid)


def test_csrf_token_is_bound_to_the_session_and_key():
    key, other_key = b"k" * 32, b"j" * 32
    one, two = c.new_session_id(), c.new_session_id()
    token = c.csrf_token(key, one)
    assert c.csrf_valid(key, one, token)
    assert not c.csrf_valid(key, two, token)  # another session's token
    assert not c.csrf_valid(other_key, one, token)  # another hub's
    assert not c.csrf_valid(key, one, None) and not c.csrf_valid(key, one, "")
    assert not c.csrf_valid(key, one, token[:-1] + ("0" if token[-1] != "0" else "1"))


@pytest.mark.parametrize(("created", "seen", "now", "alive"), [
    (0, 0, 10, True),
    (0, 90, 100, True),  # used 10 s ago, 100 s old
    (0, 0, 61, False),  # idle for longer than 60 s
    (0, 999, 1000, False),  # used just now but older than the absolute 1000 s
    (0, 998, 999.9, True),
])
def test_session_idle_and_absolute_expiry(created, seen, now, alive):
    times = c.SessionTimes(created_at=created, last_seen_at=seen)
    assert c.session_alive(times, now, absolute=1000, idle=60) is alive


def test_login_throttle_grows_after_free_failures_and_is_capped():
    assert [c.lock_seconds(n) for n in range(c.FREE_FAILURES)] == [0.0] * c.FREE_FAILURES
    waits = [c.lock_seconds(n) for n in range(c.FREE_FAILURES, c.FREE_FAILURES + 4)]
    assert waits == [c.LOCK_BASE_SECONDS * 2**i for i in range(4)]
    assert c.lock_seconds(100) == c.LOCK_MAX_SECONDS


def test_only_admins_act():
    assert c.may_act("admin") and not c.may_act("viewer") and not c.may_act("")


def test_accounts_add_reset_remove_readd(app):
    row, secret = accounts.add(app, "asha", "admin", by="root")
    assert row["name"] == "asha" and row["role"] == "admin" and row["added_by"] == "root"
    assert c.secret_matches(secret, accounts.get(app, "asha").secret_hash)
    with pytest.raises(OperatorError, match="operator asha exists"):
        accounts.add(app, "asha", "viewer")
    ended = []
    _, new = accounts.reset(app, "asha", by="root", end_sessions=ended.append)
    assert ended == ["asha"] and not c.secret_matches(secret, accounts.get(app, "asha").secret_hash)
    assert c.secret_matches(new, accounts.get(app, "asha").secret_hash)
    accounts.add(app, "ravi", "viewer", by="root")
    assert [(r["name"], r["role"]) for r in accounts.listed(app)] == [("asha", "admin"), ("ravi", "viewer")]
    accounts.remove(app, "ravi", by="root", end_sessions=ended.append)
    assert ended == ["asha", "ravi"] and accounts.get(app, "ravi") is None
    assert [r["name"] for r in accounts.listed(app)] == ["asha"]
    _, again = accounts.add(app, "ravi", "admin", by="root")  # back, with a new secret and role
    assert accounts.get(app, "ravi").role == "admin" and c.secret_matches(again, accounts.get(app, "ravi").secret_hash)


@pytest.mark.parametrize("name", ["", "A", "Asha", "a b", "1abc", "x" * 40, "a/b"])
def test_account_names_are_checked(app, name):
    with pytest.raises(OperatorError, match="operator name"):
        accounts.add(app, name, "viewer")


def test_account_roles_are_checked(app):
    with pytest.raises(OperatorError, match="must be one of viewer, admin"):
        accounts.add(app, "asha", "root")


@pytest.mark.parametrize(("base_url", "secure"), [("https://hub.example.in", True), ("http://127.0.0.1:8000", False)])
def test_session_cookie_attributes(base_url, secure):
    from types import SimpleNamespace

    import falcon
    from falcon import testing

    from handlers.console.base import COOKIE, Gate
    from hub.infra.config import Settings
    from hub.services.application import Hub

    settings = Settings.from_env({"HUB_SECRET_KEY": "unit", "HUB_BASE_URL": base_url,
                                  "HUB_CONSOLE_SESSION_SECONDS": "600"})
    app = Hub.in_memory(settings)
    try:
        gate = Gate(SimpleNamespace(app=app, settings=settings))

        class Sets:
            def on_get(self, req, resp):
                gate.set_cookie(resp, "the-session-id")

        web = falcon.App()
        web.add_route("/console/login", Sets())
        cookie = testing.simulate_get(web, "/console/login").cookies[COOKIE]
        assert cookie.value == "the-session-id" and cookie.path == "/console"
        assert cookie.same_site == "Strict" and cookie.http_only and cookie.max_age == 600
        assert cookie.secure is secure
    finally:
        app.close()


def test_chart_has_one_escaped_line_per_module():
    from handlers.console.chart import traffic_svg

    svg = str(traffic_svg({"minutes": ["10:00", "10:01", "10:02"],
                           "modules": {"locations": [0, 3, 1], "<script>": [1, 0, 0]}}))
    assert svg.count("<polyline") == 2 and 'data-module="locations"' in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "locations (4)" in svg and ">3</text>" in svg  # the legend's totals, the axis' top
    assert "no messages in the last hour" in str(traffic_svg({"minutes": ["10:00"], "modules": {}}))
