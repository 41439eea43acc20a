"""ChargingProfiles messages on their way from the CPO, durably, with retries.

:class:`ProfileDispatcher` turns each ``ProfileRequest.ResultReceived`` into a POST of
the result to the requester's own ``response_url``, and each ``ProfileUpdate.Received``
into a PUT of the ActiveChargingProfile to the recipient's chargingprofiles SENDER
(``{url}/{session_id}``). FROM = the CPO, TO = the requester or recipient, with the
request's ``X-Correlation-ID``; delivered and retried like any delivery. The events carry
the URL; only the recipient's platform is read (``view_parties``). One object key per exchange
and per session: the sender keeps their messages in order, one at a time.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from hub.domain.chargingprofiles import ProfileRequest, ProfileUpdate
from hub.domain.checklist import UNSOLICITED_TO_REQUESTER
from hub.infra.eventlog import Follower
from scheduler.outbox import Outgoing, enqueue

log = logging.getLogger(__name__)

# Both the result (to the response_url) and the unsolicited ActiveChargingProfile land on the
# requester's ChargingProfiles Sender interface; the checklist of the role guides says the same.
INTERFACE = UNSOLICITED_TO_REQUESTER["chargingprofiles"]


class ProfileDispatcher(Follower):
    name = "dispatch-chargingprofiles"
    event_classes = (ProfileRequest.ResultReceived, ProfileUpdate.Received)

    def apply(self, cur: psycopg.Cursor, events: list[tuple[int, Any]]) -> None:
        for position, event in events:
            if isinstance(event, ProfileRequest.ResultReceived):
                recipient, method, url, body = event.requester, "POST", event.response_url, event.result
                key = f"chargingprofiles/results/{event.originator_id}"
            else:
                recipient, method, url, body = event.recipient, "PUT", event.url, event.profile
                key = f"chargingprofiles/{event.cpo}/{event.session_id}"
            row = cur.execute(
                "SELECT platform_id FROM view_parties"
                " WHERE country_code || '/' || party_id || '/' || role = %s", (recipient,)).fetchone()
            if row is None:
                log.warning("charging profile message %s: no party %s to pass it to", event.originator_id,
                            recipient)
                continue
            to_cc, to_pid = recipient.split("/")[:2]
            cpo_cc, cpo_pid = event.cpo.split("/")[:2]
            enqueue(cur, Outgoing(
                platform_id=row[0], recipient=recipient, module="chargingprofiles", interface=INTERFACE,
                object_key=key, method=method, path=url, body=body,
                headers={"OCPI-from-country-code": cpo_cc, "OCPI-from-party-id": cpo_pid,
                         "OCPI-to-country-code": to_cc, "OCPI-to-party-id": to_pid},
                correlation_id=event.correlation_id, position=position,
            ))
