"""Read models built from the event log (followers with their own tracking position).

Every projection here is a :class:`hub.infra.eventlog.Follower`; ``ALL`` lists them in
the order ``hub projections rebuild`` and ``hub worker`` run them.
"""

from __future__ import annotations

from projections.commands import CommandsProjection
from projections.objects import ObjectsProjection
from projections.parties import PartiesProjection
from projections.rules import RulesProjection


def all_projections() -> list:
    return [PartiesProjection(), ObjectsProjection(), RulesProjection(), CommandsProjection()]
