"""Read models as operators see them: how far each follower is, and rebuilding one."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from hub.infra.eventlog import EventLog, Follower, RebuildRefused
from hub.infra.rebuild import RebuildFailed
from hub.services.application import Hub
from hub.services.operators import OperatorError


def status(app: Hub, followers: Iterable[Follower]) -> list[dict]:
    """Position, head and lag of every follower."""
    log = EventLog(app)
    head = log.head()
    rows = []
    for follower in followers:
        position = log.position(follower.name)
        rows.append({"name": follower.name, "position": position, "head": head, "lag": head - position})
    return rows


def chosen(projections: Iterable[Follower], name: str | None) -> list[Follower]:
    """The projection named ``name`` (every one if None); OperatorError naming the choices."""
    projections = list(projections)
    found = [p for p in projections if name in (None, p.name)]
    if not found:
        raise OperatorError(f"no projection named {name}; choose one of "
                            + ", ".join(p.name for p in projections))
    return found


def rebuild(app: Hub, projection: Follower, progress: Callable[[int, int, int], None] | None = None,
            processes: int = 1):
    """Build ``projection`` afresh beside its live tables, then swap it in (reads keep working);
    with ``processes`` > 1 a partitioned projection is built by that many processes.

    Returns what :meth:`EventLog.rebuild` reports; OperatorError if it was refused.
    """
    opener = functools.partial(partition_app, app.settings, app.database_url)
    try:
        return EventLog(app).rebuild(projection, progress, processes=processes, opener=opener)
    except (RebuildRefused, RebuildFailed) as exc:
        raise OperatorError(str(exc)) from None


def partition_app(settings, database_url: str) -> Hub:
    """What a rebuild's partition process needs of the application: its mapper (events decoded as
    the hub decodes them), settings and database URL. No pools: the process opens only its own two
    sessions, so a rebuild in N processes adds 2 × N connections to the database, no more."""
    app = Hub.in_memory(settings)
    app.database_url = database_url
    return app
