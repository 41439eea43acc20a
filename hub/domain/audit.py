"""Records of OCPI traffic: every request the hub answered, every call it made.

These are the audit trail's "who said what to whom, when, with what answer".
Bodies are not copied here (the domain events of a push carry the validated
payload); secrets never are.
"""

from __future__ import annotations

import os
import random
from uuid import UUID

from eventsourcing.domain import Aggregate, event

# Ids of Call records: a generator of their own, seeded from the system once per process (again in a
# forked child), so nothing that seeds the module's ``random`` (a test, a library) repeats an id.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


class Request(Aggregate):
    """An OCPI request a partner sent to the hub, with the hub's answer."""

    @event("Answered")
    def __init__(
        self,
        platform_id: str,
        from_party: str | None,
        to_party: str | None,
        module: str,
        interface: str | None,
        method: str,
        path: str,
        query: str,
        request_id: str,
        correlation_id: str,
        http_status: int,
        status_code: int | None,
        status_message: str | None,
        received_at: str,
        duration_ms: float,
    ) -> None:
        self.platform_id = platform_id
        self.from_party = from_party
        self.to_party = to_party
        self.module = module
        self.interface = interface
        self.method = method
        self.path = path
        self.query = query
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.http_status = http_status
        self.status_code = status_code
        self.status_message = status_message
        self.received_at = received_at
        self.duration_ms = duration_ms


class Call(Aggregate):
    """An OCPI request the hub made to a partner (delivery, probe, handshake, real-time).

    A real-time call also keeps what was decided: ``sent``, the facts of the
    request the answer depends on (an authorization's LocationReferences), and
    ``answer``, the deciding fields of the answer's data (``allowed`` and
    ``authorization_reference``; a CommandResponse's ``result`` and ``timeout``).
    """

    @staticmethod
    def create_id(**_: object) -> UUID:
        """A random version-4 UUID from ``random`` (an identifier, not a secret): ``uuid4`` makes one
        system call per id, which a worker's lanes, one record per delivery attempt, queued on."""
        return UUID(int=_ids.getrandbits(128), version=4)

    @event("Made")
    def __init__(
        self,
        platform_id: str | None,
        purpose: str,
        module: str,
        method: str,
        url: str,
        request_id: str,
        correlation_id: str,
        http_status: int | None,
        status_code: int | None,
        error: str | None,
        sent_at: str,
        duration_ms: float,
        delivery_id: int | None = None,
        attempt: int | None = None,
        sent: dict | None = None,
        answer: dict | None = None,
    ) -> None:
        self.platform_id = platform_id
        self.purpose = purpose
        self.module = module
        self.method = method
        self.url = url
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.http_status = http_status
        self.status_code = status_code
        self.error = error
        self.sent_at = sent_at
        self.duration_ms = duration_ms
        self.delivery_id = delivery_id
        self.attempt = attempt
        self.sent = sent
        self.answer = answer


class OperatorAction(Aggregate):
    """Something a hub operator did outside any aggregate (e.g. requeueing deliveries).

    ``correlation_id``: the id the action's own traffic carries (a replay's deliveries),
    so ``hub audit trace`` shows the action beside what it caused.
    """

    @event("Taken")
    def __init__(self, command: str, arguments: dict, operator: str, outcome: str,
                 correlation_id: str | None = None) -> None:
        self.command = command
        self.arguments = arguments
        self.operator = operator
        self.outcome = outcome
        self.correlation_id = correlation_id
