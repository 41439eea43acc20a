"""``hub operators``: console accounts, run as processes the way an operator does."""

from __future__ import annotations

import json

from hub.domain.console import secret_matches
from hub.services.application import Hub
from hub.services.operators.accounts import get
from tests.cli import run_hub


def _account(settings, name: str):
    app = Hub(settings, settings.database_url, pool_size=1)
    try:
        return get(app, name)
    finally:
        app.close()


def test_add_list_reset_remove(settings):
    added = json.loads(run_hub(settings, "operators", "add", "asha", "--role", "admin", "--json").stdout)
    assert added["name"] == "asha" and added["role"] == "admin" and len(added["secret"]) >= 20
    stored = _account(settings, "asha")
    assert stored.secret_hash.startswith("scrypt$") and added["secret"] not in stored.secret_hash
    assert secret_matches(added["secret"], stored.secret_hash)

    people = run_hub(settings, "operators", "add", "ravi", "--role", "viewer")
    assert "shown once" in people.stdout and not people.stderr
    secret_line = people.stdout.strip().splitlines()[-1].strip()
    assert secret_matches(secret_line, _account(settings, "ravi").secret_hash)

    table = run_hub(settings, "operators", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "ADDED_BY", "ADDED_AT", "CHANGED_AT"]
    assert [line.split()[:2] for line in table[1:]] == [["asha", "admin"], ["ravi", "viewer"]]
    listed = json.loads(run_hub(settings, "operators", "list", "--json").stdout)
    assert [(o["name"], o["role"]) for o in listed] == [("asha", "admin"), ("ravi", "viewer")]
    assert all("secret" not in key for o in listed for key in o)

    reset = json.loads(run_hub(settings, "operators", "reset", "asha", "--json").stdout)
    assert reset["secret"] != added["secret"]
    stored = _account(settings, "asha")
    assert secret_matches(reset["secret"], stored.secret_hash)
    assert not secret_matches(added["secret"], stored.secret_hash)

    removed = json.loads(run_hub(settings, "operators", "remove", "ravi", "--json").stdout)
    assert removed == {"name": "ravi", "removed": True}
    assert [o["name"] for o in json.loads(run_hub(settings, "operators", "list", "--json").stdout)] == ["asha"]
    assert _account(settings, "ravi") is None


def test_errors_name_the_fix(settings):
    run_hub(settings, "operators", "add", "asha", "--role", "admin")
    twice = run_hub(settings, "operators", "add", "asha", "--role", "viewer", ok=False)
    assert twice.returncode == 1
    assert twice.stderr == "hub: operator asha exists (`hub operators reset asha` gives it a new secret)\n"
    missing = run_hub(settings, "operators", "reset", "nobody", ok=False)
    assert missing.returncode == 1 and "`hub operators list`" in missing.stderr
    gone = run_hub(settings, "operators", "remove", "nobody", ok=False)
    assert gone.returncode == 1 and gone.stderr.startswith("hub: no operator nobody")
    bad_name = run_hub(settings, "operators", "add", "Bad Name!", "--role", "admin", ok=False)
    assert bad_name.returncode == 1 and "operator name 'Bad Name!'" in bad_name.stderr
    bad_role = run_hub(settings, "operators", "add", "kiran", "--role", "root", ok=False)
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr
