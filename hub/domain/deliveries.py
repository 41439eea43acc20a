"""What became of queued deliveries, besides the calls that sent them.

Every request the hub sends is a ``Call.Made`` (``hub.domain.audit``). These
events record the outcomes that involve no call of their own, or more rows
than the one sent:

- ``Delivery.Parked``: deliveries left for the operator (``hub deliveries
  list --failed``; ``hub deliveries retry`` requeues them): the recipient
  refused them, they were given up after ``HUB_DELIVERY_GIVE_UP_AFTER``, or the
  recipient can no longer receive them;
- ``Delivery.Collapsed``: queued deliveries the recipient will not get one by
  one, because the object's current state sent by delivery ``sent_by``
  includes them (``sent_by`` is None when the object no longer exists and
  nothing was sent).

One event covers the rows of one recipient and object; ``correlation_ids``
are those of the pushes the rows came from, so ``hub audit trace`` finds it.
"""

from __future__ import annotations

from eventsourcing.domain import Aggregate


class Delivery(Aggregate):
    class Parked(Aggregate.Created):
        delivery_ids: list[int]
        recipient: str
        platform_id: str
        module: str
        object_key: str
        reason: str
        correlation_ids: list[str]
        sent_by: int | None

    class Collapsed(Aggregate.Created):
        delivery_ids: list[int]
        recipient: str
        platform_id: str
        module: str
        object_key: str
        reason: str
        correlation_ids: list[str]
        sent_by: int | None

    def __init__(self, delivery_ids: list[int], recipient: str, platform_id: str, module: str,
                 object_key: str, reason: str, correlation_ids: list[str], sent_by: int | None) -> None:
        self.delivery_ids = delivery_ids
        self.recipient = recipient
        self.platform_id = platform_id
        self.module = module
        self.object_key = object_key
        self.reason = reason
        self.correlation_ids = correlation_ids
        self.sent_by = sent_by

    @classmethod
    def parked(cls, **fields) -> Delivery:
        return cls._create(cls.Parked, **fields)

    @classmethod
    def collapsed(cls, **fields) -> Delivery:
        return cls._create(cls.Collapsed, **fields)
