"""``hub audit export``: every record the filters keep, streamed in log order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.audit.events import CLOCK_SKEW, EventReader, Progress
from hub.domain.chargingprofiles import ProfileRequest
from hub.domain.commands import Command


def _party_match(wanted: str, keys: Iterable[str | None]) -> bool:
    """``IN/EMP`` matches any role of that party; ``IN/EMP/EMSP`` only that one."""
    wanted = wanted.strip().upper().strip("/")
    for key in keys:
        if not key:
            continue
        key = key.upper()
        if key == wanted or key.startswith(wanted + "/"):
            return True
    return False


@dataclass(frozen=True)
class Filters:
    """What ``hub audit export`` keeps. ``party``: ``CC/PID`` or ``CC/PID/ROLE``;
    ``object_uuid``: one object's aggregate id (see :func:`hub.domain.objects.object_uuid`);
    ``since`` inclusive, ``until`` exclusive (event timestamps)."""

    party: str | None = None
    module: str | None = None
    object_uuid: UUID | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None



class AuditExport(EventReader):
    """The export: :meth:`records` with :class:`Filters`."""

    def records(self, filters: Filters = Filters(), progress: Progress | None = None) -> Iterator[dict]:
        """Every record the filters keep, in notification order, streamed.

        With a correlation id, a command's (or charging profile exchange's) later events
        (answer, result, timeout), which do not repeat it, come along with its ``Requested``.
        """
        with self.connect() as conn:
            end = self.head(conn)
            after = 0
            if filters.since is not None and filters.object_uuid is None:
                after = self.position_before(conn, filters.since, end)
            stop_at = filters.until + CLOCK_SKEW if filters.until is not None else None
            pending: list[tuple[int, str, Any]] = []  # a command's later events, by position
            queued: set[int] = set()
            for batch in self.scan(conn, after=after, end=end,
                                    originators=[filters.object_uuid] if filters.object_uuid else None,
                                    needles=[filters.correlation_id] if filters.correlation_id else None,
                                    progress=progress):
                for position, topic, event in batch:
                    while pending and pending[0][0] < position:
                        item = heapq.heappop(pending)
                        yield from self._kept(conn, filters, *item)
                    if stop_at is not None and event.timestamp >= stop_at:
                        pending.clear()  # beyond the range (and its clock margin)
                        break
                    if position in queued:
                        continue
                    if (filters.correlation_id is not None
                            and isinstance(event, (Command.Requested, ProfileRequest.Requested))
                            and event.correlation_id == filters.correlation_id):
                        for later in self._events_of(conn, event.originator_id)[1:]:
                            if position < later[0] <= end and later[0] not in queued:
                                queued.add(later[0])
                                heapq.heappush(pending, later)
                        self._remember(conn, [e for _, _, e in pending])
                    yield from self._kept(conn, filters, position, topic, event)
                else:
                    continue
                break
            while pending:
                yield from self._kept(conn, filters, *heapq.heappop(pending))

    def _kept(self, conn, filters: Filters, position: int, topic: str, event: Any) -> Iterator[dict]:
        if filters.since is not None and event.timestamp < filters.since:
            return
        if filters.until is not None and event.timestamp >= filters.until:
            return
        if filters.object_uuid is not None and event.originator_id != filters.object_uuid:
            return
        record = self.record(conn, position, topic, event)
        if filters.correlation_id is not None and record["correlation_id"] != filters.correlation_id \
                and filters.correlation_id not in (record["data"].get("correlation_ids") or ()):
            return
        if filters.module is not None and record["module"] not in (filters.module.lower(), "*"):
            return
        if filters.party is not None and not _party_match(filters.party, record["parties"]):
            return
        yield record
