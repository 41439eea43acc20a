"""Partners that receive the transparency log's checkpoints by push (witnesses); no I/O.

One :class:`CheckpointSubscription` per partner platform: the URL the hub POSTs
every new signed checkpoint to (docs/audit.md "Checkpoints by push"). A platform
subscribes by itself (``PUT /audit/subscription``) or an operator subscribes it
(``hub audit subscribe CC/PID URL``); the events say who did.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

WITNESS_NAMESPACE = uuid5(NAMESPACE_URL, "https://chargeindia-hub/audit/checkpoint-subscription")
MAX_URL_LENGTH = 2000


def url_problem(url: object) -> str | None:
    """Why ``url`` cannot receive checkpoints (None: it can, as far as its form goes)."""
    if not isinstance(url, str) or not url.strip():
        return "url: expected the absolute http or https URL to POST checkpoints to"
    if len(url) > MAX_URL_LENGTH:
        return f"url: at most {MAX_URL_LENGTH} characters"
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        return "url: expected an absolute http or https URL without spaces"
    return None


class CheckpointSubscription(Aggregate):
    """Where one partner platform wants the hub's checkpoints pushed, if anywhere."""

    @staticmethod
    def create_id(platform_id: UUID | str, **_: object) -> UUID:
        return uuid5(WITNESS_NAMESPACE, str(platform_id))

    @event("Created")
    def __init__(self, platform_id: UUID | str) -> None:
        self.platform_id = str(platform_id)
        self.url: str | None = None
        self.party: str | None = None

    @event("Subscribed")
    def subscribe(self, url: str, party: str, by: str) -> None:
        """``party``: the ``CC/PID/ROLE`` deliveries are listed under; ``by``: the operator or ``partner``."""
        self.url = url
        self.party = party

    @event("Unsubscribed")
    def unsubscribe(self, by: str) -> None:
        self.url = None
