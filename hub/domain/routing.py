"""Classifying a functional-module request once: who sends it, for whom, how.

The middleware calls :func:`classify` for every functional-module request and
stores the result on the request context; modules never re-read the routing
headers. Configuration modules (versions, credentials, hubclientinfo) carry no
routing headers and are never classified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
from hub.domain.modules import MODULES
from hub.domain.parties import party_key
from hub.domain.recipients import QUEUEABLE
from hub.ocpi.errors import HubError, InvalidParameters, OcpiError
from hub.ocpi.status import OcpiStatus

DIRECTED = "directed"
BROADCAST = "broadcast"
OPEN = "open"
GET_ALL = "get_all"

FROM_CC, FROM_PID = "OCPI-from-country-code", "OCPI-from-party-id"
TO_CC, TO_PID = "OCPI-to-country-code", "OCPI-to-party-id"

@dataclass(frozen=True)
class Routing:
    """One request's routing, decided once."""

    scenario: str
    from_country_code: str
    from_party_id: str
    from_role: str
    to_country_code: str | None = None
    to_party_id: str | None = None
    to_role: str | None = None
    # Set when the request carried no OCPI-from headers and the sender was inferred: "url" (the
    # URL names the exchange, e.g. a command's response_url) or "platform" (the connection's one
    # party that can send the module). The request's log line records it.
    from_inferred: str | None = None

    @property
    def sender_key(self) -> str:
        return party_key(self.from_country_code, self.from_party_id, self.from_role)

    @property
    def receiver_key(self) -> str | None:
        if self.to_country_code is None:
            return None
        return party_key(self.to_country_code, self.to_party_id, self.to_role)


def is_hub(country_code: str | None, party_id: str | None) -> bool:
    return (country_code or "").upper() == HUB_COUNTRY_CODE and (party_id or "").upper() == HUB_PARTY_ID


def classify(
    *,
    module: str,
    interface: str,
    method: str,
    is_list: bool,
    headers: Mapping[str, str | None],
    caller_party: Callable[[str, str, frozenset[str]], tuple[str, str] | None],
    find_receiver: Callable[[str, str, str], list[dict]],
    able_senders: Callable[[frozenset[str]], list[tuple[str, str]]] | None = None,
    named_by_url: Callable[[], tuple[str, str] | None] | None = None,
) -> Routing:
    """Decide the routing scenario of one functional-module request.

    ``caller_party(cc, pid, roles)`` returns ``(role, status)`` of the caller's
    own party with those ids and one of ``roles``, or None. ``find_receiver(cc,
    pid, sender_role)`` returns candidate parties (rows with ``role`` and
    ``status``) for a TO address.

    Without both OCPI-from headers (some 2.2 implementations send none), the sender is
    inferred, and checked like a sent one: ``named_by_url()`` gives the ``(cc, pid)`` the
    request's URL names (a result posted to the hub's ``response_url``), else
    ``able_senders(roles)`` the caller's registered parties that may send the module; exactly
    one is taken, none or several is 2001.
    """
    from_cc, from_pid = headers.get(FROM_CC), headers.get(FROM_PID)
    inferred = None
    known = MODULES.get(module)
    roles = known.callers(interface) if known is not None else frozenset()
    if not from_cc and not from_pid:
        named = named_by_url() if named_by_url is not None else None
        able = able_senders(roles) if able_senders is not None and named is None else []
        if named is not None:
            (from_cc, from_pid), inferred = named, "url"
        elif len(able) == 1:
            (from_cc, from_pid), inferred = able[0], "platform"
        else:
            which = f"several parties that can send them ({', '.join(f'{c}/{p}' for c, p in able)})" \
                if able else "no registered party that can send them"
            raise InvalidParameters(f"{FROM_CC}: required on {module} requests (this connection has {which})")
    if not from_cc:
        raise InvalidParameters(f"{FROM_CC}: required on {module} requests")
    if not from_pid:
        raise InvalidParameters(f"{FROM_PID}: required on {module} requests")
    from_cc, from_pid = from_cc.strip().upper(), from_pid.strip().upper()
    own = caller_party(from_cc, from_pid, roles)
    if own is None:
        raise InvalidParameters(
            f"{FROM_PID}: {from_cc}/{from_pid} is not a "
            f"{'/'.join(sorted(roles)) or 'permitted'} party of this connection "
            f"(the {module} {interface.lower()} interface is for "
            f"{', '.join(sorted(roles)) or 'no one'})"
        )
    from_role, from_status = own
    if from_status == "SUSPENDED":
        raise OcpiError(OcpiStatus.CLIENT_ERROR, f"party {from_cc}/{from_pid} is suspended",
                        http_status=401)
    if from_status == "PLANNED":  # onboarded by the operator, not among the roles the platform registered
        raise InvalidParameters(
            f"{FROM_PID}: {from_cc}/{from_pid} ({from_role}) is not one of the roles this connection "
            f"registered; add it to the roles of a credentials PUT first"
        )

    to_cc, to_pid = headers.get(TO_CC), headers.get(TO_PID)
    if bool(to_cc) != bool(to_pid):
        missing = TO_PID if to_cc else TO_CC
        raise InvalidParameters(f"{missing}: required when the other OCPI-to header is set")
    base = {"from_country_code": from_cc, "from_party_id": from_pid, "from_role": from_role,
            "from_inferred": inferred}
    if not to_cc:
        if method == "GET" and is_list:
            raise InvalidParameters(
                f"{TO_PID}: a list request must be addressed to the hub "
                f"({HUB_COUNTRY_CODE}/{HUB_PARTY_ID}); open routing is not allowed for GET all"
            )
        return Routing(OPEN, **base)
    to_cc, to_pid = to_cc.strip().upper(), to_pid.strip().upper()
    if is_hub(to_cc, to_pid):
        scenario = GET_ALL if method == "GET" else BROADCAST
        return Routing(scenario, to_country_code=HUB_COUNTRY_CODE, to_party_id=HUB_PARTY_ID,
                       to_role="HUB", **base)
    candidates = [c for c in find_receiver(to_cc, to_pid, from_role) if c["role"] != from_role]
    if not candidates:
        raise HubError(OcpiStatus.UNKNOWN_RECEIVER, f"unknown receiver {to_cc}/{to_pid}")
    # Of several roles with these ids, the one the module goes to comes first.
    wanted = known.counterparts(interface) if known is not None else frozenset()
    candidates = [c for c in candidates if c["role"] in wanted] or candidates
    # OFFLINE receivers are accepted here: stored-and-forwarded messages wait for
    # them; the real-time paths (hub.services.realtime) insist on CONNECTED themselves.
    connected = sorted((c for c in candidates if c["status"] in QUEUEABLE),
                       key=lambda c: c["status"] != "CONNECTED")
    if not connected:
        raise HubError(OcpiStatus.CONNECTION_PROBLEM,
                       f"receiver {to_cc}/{to_pid} is {candidates[0]['status']}")
    receiver = connected[0]
    return Routing(DIRECTED, to_country_code=to_cc, to_party_id=to_pid, to_role=receiver["role"], **base)
