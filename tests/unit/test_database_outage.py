"""The database outage rules (hub/infra/database.py, handlers/errors.py), without a database."""

from __future__ import annotations

import eventsourcing.persistence
import falcon
import falcon.testing
import psycopg
import psycopg_pool.pool
import pytest
from eventsourcing.postgres import ConnectionPool as LibraryPool
from psycopg_pool import PoolTimeout

from handlers.errors import RETRY_AFTER, handle_unexpected
from hub.infra import database
from hub.infra.database import (
    CONNECT_OPTIONS,
    MAX_RECONNECT_DELAY,
    DatabaseUnavailable,
    check_idle,
    database_unavailable,
    harden_pool,
)


def test_the_pools_retry_a_lost_connection_at_most_a_second_apart():
    # psycopg_pool looks the class up by name in its pool module when it reconnects.
    attempt = psycopg_pool.pool.AttemptWithBackoff(timeout=300)
    delays = []
    for step in range(12):
        attempt.update_delay(float(step))
        delays.append(attempt.delay)
    assert delays[0] <= 0.2
    assert max(delays) == MAX_RECONNECT_DELAY


def caused_by(cause: BaseException) -> RuntimeError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("exc", [
    DatabaseUnavailable("down"), psycopg.OperationalError("gone"), PoolTimeout("no connection"),
    psycopg.InterfaceError("closed"), eventsourcing.persistence.OperationalError("gone"),
    caused_by(psycopg.OperationalError("gone")),
])
def test_unavailable_database_errors(exc):
    assert database_unavailable(exc)


@pytest.mark.parametrize("exc", [ValueError("x"), psycopg.IntegrityError("dup"), RecursionError(),
                                 caused_by(KeyError("k"))])
def test_other_errors_are_not_an_outage(exc):
    assert not database_unavailable(exc)


def test_a_library_pool_gets_the_hubs_outage_handling():
    pool = LibraryPool(kwargs={"dbname": "x"}, open=False)
    harden_pool(pool)
    assert type(pool).__name__ == "OutageAwareConnectionPool" and isinstance(pool, LibraryPool)
    assert pool._check is check_idle
    assert {k: pool.kwargs[k] for k in CONNECT_OPTIONS} == CONNECT_OPTIONS
    assert harden_pool(pool) is pool and type(pool).__name__ == "OutageAwareConnectionPool"  # idempotent


def test_the_outage_flag_follows_connection_attempts():
    outage = database._Outage()
    assert not outage.down
    outage.mark(False)
    assert outage.down
    outage.mark(True)
    assert not outage.down


def test_an_unavailable_database_is_answered_503_with_retry_after_and_the_envelope():
    class Down:
        def on_get(self, req, resp):
            raise DatabaseUnavailable("the database cannot be reached")

    app = falcon.App()
    app.add_route("/x", Down())
    app.add_error_handler(Exception, handle_unexpected)
    result = falcon.testing.TestClient(app).simulate_get("/x")
    assert result.status_code == 503
    assert result.headers["Retry-After"] == str(RETRY_AFTER)
    assert result.json["status_code"] == 3000 and "database" in result.json["status_message"]
    assert "timestamp" in result.json
