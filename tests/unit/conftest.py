"""The fast tier: no PostgreSQL, no HTTP, no child processes.

Every fixture that reaches a database (``settings``, ``hub``, ``worker``,
``gunicorn_hub`` all stand on ``database_url``) or starts processes fails here,
and a unit test that opens a network connection or starts a process fails too.
Domain and service tests use :meth:`Hub.in_memory` (the ``app`` fixture).
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from hub.services.application import Hub


def _refused(what: str):
    def refuse(*_args, **_kwargs):
        raise AssertionError(f"a unit test must not {what}; put it under tests/integration or tests/e2e")

    return refuse


@pytest.fixture
def database_url():
    """Overrides the session's database: a unit test asking for it (or for anything built on it) fails."""
    pytest.fail("a unit test must not use the database; put it under tests/integration", pytrace=False)


@pytest.fixture
def processes():
    pytest.fail("a unit test must not start processes; put it under tests/e2e", pytrace=False)


@pytest.fixture(autouse=True)
def _no_network_no_processes(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _refused("open a network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refused("open a network connection"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _refused("start a process"))


@pytest.fixture
def app():
    """The hub on the in-memory event store (no pool, no key check)."""
    hub = Hub.in_memory()
    yield hub
    hub.close()
