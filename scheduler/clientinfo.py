"""HubClientInfo pushes and the still-alive check.

- Every change of a party's ClientInfo is PUT to every registered platform
  that offers a ``hubclientinfo`` RECEIVER (not to the party's own platform)
  and may see it (:meth:`hub.domain.recipients.Policy.client_info_recipients`),
  at ``{their url}/{country_code}/{party_id}``, without routing headers.
- A platform that registers gets the full current list.
- Still-alive: a registered platform silent for ``HUB_STILL_ALIVE_AFTER``
  seconds gets a GET of its versions endpoint; failure makes its parties
  OFFLINE, success makes OFFLINE parties CONNECTED again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from hub.domain.audit import Call
from hub.domain.parties import Party, Platform, party_key
from hub.domain.recipients import Policy
from hub.infra.client import OcpiClient, PartnerCallError
from hub.infra.eventlog import Follower
from hub.ocpi.envelope import format_datetime
from hub.services.application import Hub, UnitOfWork
from projections.parties import client_info_row
from projections.recipients import load_policy
from scheduler.outbox import Outgoing, enqueue

log = logging.getLogger(__name__)

MODULE = "hubclientinfo"


class ClientInfoDispatcher(Follower):
    """Turns ClientInfo changes and registrations into deliveries.

    It reads the parties views, so the worker runs it only up to the parties
    projection's position (the views are then at least as new as the event).
    """

    name = "dispatch-clientinfo"
    event_classes = (
        Party.Onboarded, Party.Connected, Party.Replanned, Party.WentOffline, Party.CameOnline,
        Party.Unregistered, Party.Suspended, Party.Resumed,
        Platform.Registered, Platform.CredentialsUpdated,
    )

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        policy = load_policy(cur)
        for position, event in events:
            if isinstance(event, (Platform.Registered, Platform.CredentialsUpdated)):
                self._full_list(cur, policy, position, event.originator_id)
            else:
                self._one_party(cur, policy, position, event.originator_id)

    def _one_party(self, cur, policy: Policy, position: int, party_uuid) -> None:
        row = cur.execute(
            "SELECT country_code, party_id, role FROM view_parties WHERE party_uuid = %s", (party_uuid,),
        ).fetchone()
        if row is None:
            return
        for recipient, verdict in policy.client_info_recipients(party_key(*row)):
            if verdict.allowed:
                enqueue(cur, _outgoing(recipient, *row, position))

    def _full_list(self, cur, policy: Policy, position: int, platform_id) -> None:
        platform = policy.snapshot.platforms.get(platform_id)
        if platform is None or platform.state != "REGISTERED" or not platform.endpoint(MODULE, "RECEIVER"):
            return
        viewers = policy.viewers_of(platform_id)
        for party in sorted(policy.snapshot.parties, key=lambda p: (p.country_code, p.party_id, p.role)):
            if party.platform_id != platform_id and policy.client_info_visible(viewers, party.key):
                enqueue(cur, _outgoing(platform_id, party.country_code, party.party_id, party.role, position))


def _outgoing(recipient, country_code: str, party_id: str, role: str, position: int) -> Outgoing:
    return Outgoing(
        platform_id=recipient, module=MODULE, interface="RECEIVER",
        object_key=party_key(country_code, party_id, role), method="PUT",
        path=f"/{country_code}/{party_id}", correlation_id=str(uuid.uuid4()), position=position,
        kind="current",
    )


def render_client_info(app: Hub):
    """Builds the current ClientInfo for a delivery row at send time."""

    def render(row: dict):
        country_code, party_id, role = row["object_key"].split("/")
        with app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            party = cur.execute(
                "SELECT * FROM view_parties WHERE country_code = %s AND party_id = %s AND role = %s",
                (country_code, party_id, role),
            ).fetchone()
        return ("PUT", row["path"], client_info_row(party)) if party else None

    return render


class StillAlive:
    """GETs the versions endpoint of silent platforms and records what it learns."""

    def __init__(self, app: Hub, client: OcpiClient, after_seconds: float) -> None:
        self.app = app
        self.client = client
        self.after_seconds = after_seconds

    def due(self) -> list[dict]:
        with self.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT p.platform_id, p.versions_url, p.partner_token,"
                " bool_or(v.connection = 'OFFLINE') AS has_offline"
                " FROM view_platforms p JOIN view_parties v USING (platform_id)"
                " WHERE p.state = 'REGISTERED' AND v.connection IN ('CONNECTED', 'OFFLINE')"
                " AND NOT v.suspended"
                " GROUP BY p.platform_id, p.versions_url, p.partner_token, p.last_seen_at"
                " HAVING bool_or(v.connection = 'OFFLINE')"
                "   OR p.last_seen_at IS NULL"
                "   OR p.last_seen_at < now() - make_interval(secs => %s)",
                (self.after_seconds,),
            ).fetchall()

    def check_all(self) -> int:
        checked = 0
        for platform in self.due():
            self.check(platform)
            checked += 1
        return checked

    def check(self, platform: dict) -> bool:
        uow = UnitOfWork(self.app)
        sent_at = format_datetime(datetime.now(UTC))
        correlation_id = str(uuid.uuid4())
        alive, http_status, status_code, error, request_id, elapsed = False, None, None, None, "", 0.0
        try:
            response = self.client.request("GET", platform["versions_url"],
                                           self.app.cipher.decrypt(platform["partner_token"]),
                                           correlation_id=correlation_id)
            http_status, status_code = response.http_status, response.status_code
            request_id, elapsed = response.request_id, response.elapsed_ms
            alive = response.ok
            if not alive:
                error = f"HTTP {http_status}, status {status_code}"
        except PartnerCallError as exc:
            error, request_id, elapsed, http_status = str(exc), exc.request_id, exc.elapsed_ms, exc.http_status
        uow.add(Call(platform_id=str(platform["platform_id"]), purpose="still-alive", module="versions",
                     method="GET", url=platform["versions_url"], request_id=request_id,
                     correlation_id=correlation_id, http_status=http_status, status_code=status_code,
                     error=error, sent_at=sent_at, duration_ms=elapsed))
        came_online = self.mark(uow, platform["platform_id"], alive, error)
        uow.commit()
        if came_online:
            self.drain(platform["platform_id"])
        return alive

    def drain(self, platform_id) -> None:
        """A platform is back: deliveries that waited for it are due now, not after their backoff.

        Rows the platform answered (HTTP 5xx or 429 for one object, say) keep their own
        backoff: the platform being reachable again changes nothing for them.
        """
        with self.app.pool.connection() as conn:
            conn.execute("UPDATE hub_deliveries SET next_attempt_at = now() WHERE platform_id = %s"
                         " AND state = 'PENDING' AND last_http_status IS NULL", (platform_id,))

    def unreachable(self, platform_id, reason: str) -> None:
        """Deliveries keep failing: the platform's parties become OFFLINE."""
        uow = UnitOfWork(self.app)
        self.mark(uow, platform_id, False, reason)
        uow.commit()

    def mark(self, uow: UnitOfWork, platform_id, alive: bool, reason: str | None) -> bool:
        """Set the platform's parties CONNECTED or OFFLINE (only where it changes).

        Returns True when some party came back online.
        """
        platform = self.app.platform(platform_id)
        came_online = False
        for party in self.app.parties_of(platform):
            if party.platform_id != platform.id:
                continue
            if alive and party.connection == "OFFLINE":
                party.come_online()
                uow.add(party)
                came_online = True
            elif not alive and party.connection == "CONNECTED":
                party.go_offline(reason or "still-alive check failed")
                uow.add(party)
        return came_online
