"""Console operator accounts (``hub operators``): add, list, remove, reset.

Accounts are aggregates in the event log (:mod:`hub.domain.console`); each
function saves its events in one transaction and returns plain data. Secrets are
generated here and returned once; only their scrypt hash is stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from eventsourcing.application import AggregateNotFoundError

from hub.domain.console import (
    NAME_PATTERN,
    ROLES,
    OperatorAccount,
    OperatorDirectory,
    account_id,
    hash_secret,
    new_secret,
)
from hub.services.application import Hub, UnitOfWork
from hub.services.operators import OperatorError, operator_name

#: Called with an account's name when its sessions must end (removed, or its secret reset).
EndSessions = Callable[[str], None]


def _no_sessions(_name: str) -> None:
    return None


def _check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name or ""):
        raise OperatorError(f"operator name {name!r}: use 2 to 32 lower-case letters, digits, '.', '_' or '-',"
                            " starting with a letter (e.g. asha)")
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise OperatorError(f"--role {role!r}: must be one of {', '.join(ROLES)}")
    return role


def get(app: Hub, name: str) -> OperatorAccount | None:
    """The account ``name`` (None if never added or removed)."""
    try:
        account = app.repository.get(account_id(name))
    except AggregateNotFoundError:
        return None
    return None if account.removed else account


def _directory(app: Hub) -> OperatorDirectory | None:
    try:
        return app.repository.get(OperatorDirectory.create_id())
    except AggregateNotFoundError:
        return None


def row(account: OperatorAccount) -> dict:
    return {"name": account.name, "role": account.role, "added_by": account.added_by,
            "added_at": account.created_on.isoformat(timespec="seconds"),
            "changed_at": account.modified_on.isoformat(timespec="seconds")}


def add(app: Hub, name: str, role: str, by: str | None = None) -> tuple[dict, str]:
    """A new account (or a removed one back); returns its row and its one-time secret."""
    _check_name(name)
    _check_role(role)
    by = by or operator_name()
    secret = new_secret()
    try:
        account = app.repository.get(account_id(name))
    except AggregateNotFoundError:
        account = OperatorAccount(name=name, role=role, secret_hash=hash_secret(secret), added_by=by)
    else:
        if not account.removed:
            raise OperatorError(f"operator {name} exists (`hub operators reset {name}` gives it a new secret)")
        account.readd(role=role, secret_hash=hash_secret(secret), by=by)
    directory = _directory(app) or OperatorDirectory()
    directory.add_name(name)
    uow = UnitOfWork(app)
    uow.add(account, directory)
    uow.commit()
    return row(account), secret


def listed(app: Hub) -> list[dict]:
    directory = _directory(app)
    names = sorted(directory.names) if directory else []
    return [row(a) for a in (get(app, n) for n in names) if a is not None]


def remove(app: Hub, name: str, by: str | None = None, end_sessions: EndSessions = _no_sessions) -> dict:
    account = _existing(app, name)
    account.remove(by=by or operator_name())
    app.save(account)
    end_sessions(name)
    return {"name": name, "removed": True}


def reset(app: Hub, name: str, by: str | None = None, end_sessions: EndSessions = _no_sessions) -> tuple[dict, str]:
    """A new secret for ``name`` (its sessions end); returns its row and the secret."""
    account = _existing(app, name)
    secret = new_secret()
    account.reset(secret_hash=hash_secret(secret), by=by or operator_name())
    app.save(account)
    end_sessions(name)
    return row(account), secret


def _existing(app: Hub, name: str) -> OperatorAccount:
    account = get(app, name)
    if account is None:
        raise OperatorError(f"no operator {name} (`hub operators list` shows every operator)")
    return account
