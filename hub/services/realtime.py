"""Real-time paths: forwarding a request to one partner synchronously.

Token authorization and commands pass through the hub while a driver waits.
This module is the one place that resolves the receiving party, applies the
routing rules, finds the receiver's endpoint, calls it with the hub's timeout
and turns what can go wrong into the hub's 4xxx codes:

- 4001 unknown receiver (no such party, or the owner cannot be resolved);
- 4003 receiver not CONNECTED, or it could not be reached;
- 4002 no complete answer within ``HUB_FORWARD_TIMEOUT``, one deadline for
  connecting, sending and reading the whole answer;
- 4000 the routing rules refuse it, the receiver lacks the module, or its
  answer is not an OCPI envelope (a JSON object with an integer ``status_code``).

The partner's answer (HTTP status, envelope) goes back unchanged. The call is
recorded as a ``Call.Made`` in the same unit of work as the request's record,
with what was decided: the body's facts the caller names (``sent``) and the
named fields of the answer's ``data`` (``answer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg.rows import dict_row

from hub.domain.audit import Call
from hub.domain.parties import party_key
from hub.domain.routing import Routing
from hub.domain.ruleset import RuleSet
from hub.infra.client import OcpiClient, OcpiResponse, PartnerCallError, PartnerTimeout
from hub.ocpi.envelope import format_datetime
from hub.ocpi.errors import HubError
from hub.ocpi.status import OcpiStatus
from hub.services.application import Hub, UnitOfWork


@dataclass(frozen=True)
class Receiver:
    country_code: str
    party_id: str
    role: str
    platform_id: object
    endpoint: str
    token: str = field(repr=False)

    @property
    def key(self) -> str:
        return f"{self.country_code}/{self.party_id}/{self.role}"


class Realtime:
    def __init__(self, app: Hub, client: OcpiClient, rules_loader) -> None:
        self.app = app
        self.client = client
        self.rules_loader = rules_loader  # () -> RuleSet, read fresh on every call

    def receiver(self, *, module: str, interface: str, country_code: str, party_id: str,
                 roles: frozenset[str], rule_pair) -> Receiver:
        """The party that will receive the request, checked for status, rules and endpoint.

        ``rule_pair(receiver_key) -> (cpo_key, emsp_key)`` orders the pair for the rules.
        """
        with self.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(  # the receiver and the rules in force: one round trip on this hot path
                "SELECT v.country_code, v.party_id, v.role, v.status, v.platform_id, p.endpoints,"
                " p.partner_token, (SELECT coalesce(json_agg(r), '[]') FROM (SELECT cpo, emsp, module, effect,"
                " reason, set_by, updated_at FROM view_routing_rules) r) AS rules"
                " FROM view_parties v JOIN view_platforms p USING (platform_id)"
                " WHERE v.country_code = %s AND v.party_id = %s AND v.role = ANY(%s)",
                (country_code.upper(), party_id.upper(), sorted(roles)),
            ).fetchall()
        if not rows:
            raise HubError(OcpiStatus.UNKNOWN_RECEIVER, f"unknown receiver {country_code}/{party_id}")
        row = next((r for r in rows if r["status"] == "CONNECTED"), rows[0])
        key = f"{row['country_code']}/{row['party_id']}/{row['role']}"
        if row["status"] != "CONNECTED":
            raise HubError(OcpiStatus.CONNECTION_PROBLEM, f"receiver {key} is {row['status']}")
        rules = RuleSet(row["rules"])
        cpo, emsp = rule_pair(key)
        decision = rules.decide(cpo, emsp, module)
        if not decision.allowed:
            raise HubError(OcpiStatus.HUB_ERROR, f"routing to {key} refused: {decision.reason}")
        endpoint = next((e.get("url") for e in row["endpoints"] or []
                         if e.get("identifier") == module and e.get("role") == interface), None)
        if not endpoint or not row["partner_token"]:
            raise HubError(OcpiStatus.HUB_ERROR,
                           f"receiver {key} does not offer the {module} {interface.lower()} interface")
        return Receiver(row["country_code"], row["party_id"], row["role"], row["platform_id"],
                        endpoint, self.app.cipher.decrypt(row["partner_token"]))

    def sole_owner(self, owners: list[tuple[str, str]], *, role: str, module: str, rule_pair,
                   what: str) -> tuple[str, str]:
        """Open routing: the one party of ``owners`` (country code, party id; ``role``)
        to send ``module`` to, counting only those the routing rules let receive it.

        ``what``: a participle phrase, "no CPO has {what}" (``pushed location LOC1``). None
        found or several allowed: 4001. Several, all refused: 4000. A single owner
        is returned as is; :meth:`receiver` then says why the rules refuse it.
        """
        kind = "eMSP" if role == "EMSP" else role
        if len(owners) > 1:
            rules: RuleSet = self.rules_loader()
            allowed = [o for o in owners
                       if rules.decide(*rule_pair(party_key(o[0], o[1], role)), module).allowed]
            if not allowed:
                raise HubError(OcpiStatus.HUB_ERROR, f"routing refused: the routing rules allow none of "
                                                     f"the {kind}s that {what}")
            owners = allowed
        if len(owners) != 1:
            why = f"no {kind} has" if not owners else f"several {kind}s have"
            raise HubError(OcpiStatus.UNKNOWN_RECEIVER, f"{why} {what}; address the {kind} with OCPI-to")
        return owners[0]

    def forward(self, uow: UnitOfWork, receiver: Receiver, routing: Routing, *, method: str, url: str,
                correlation_id: str, module: str, body: object = None,
                params: dict | None = None, sent: dict | None = None,
                answer_fields: tuple[str, ...] = ()) -> OcpiResponse:
        """Send the request now; the answer comes back as the partner gave it.

        ``sent`` and the ``answer_fields`` of the answer's data are recorded with the call.
        """
        headers = {
            "OCPI-from-country-code": routing.from_country_code,
            "OCPI-from-party-id": routing.from_party_id,
            "OCPI-to-country-code": receiver.country_code,
            "OCPI-to-party-id": receiver.party_id,
        }
        sent_at = format_datetime(datetime.now(UTC))
        timeout = self.app.settings.forward_timeout
        try:
            response = self.client.request(method, url, receiver.token, json=body, headers=headers,
                                           correlation_id=correlation_id, params=params, deadline=timeout)
        except PartnerCallError as exc:
            if isinstance(exc, PartnerTimeout):
                error = HubError(OcpiStatus.FORWARD_TIMEOUT,
                                 f"{receiver.key} did not answer within {timeout:g} s")
            elif exc.http_status is not None:
                error = not_an_envelope(receiver, exc.http_status)
            else:
                error = HubError(OcpiStatus.CONNECTION_PROBLEM, f"{receiver.key} could not be reached")
            uow.add(self._call(receiver, module, method, url, exc.request_id, correlation_id,
                               exc.http_status, None, f"{exc} ({error.message})", sent_at, exc.elapsed_ms,
                               sent, None))
            raise error from None
        if response.status_code is None:  # e.g. an empty body, or JSON that is no envelope
            error = not_an_envelope(receiver, response.http_status)
            uow.add(self._call(receiver, module, method, url, response.request_id, correlation_id,
                               response.http_status, None, error.message, sent_at, response.elapsed_ms,
                               sent, None))
            raise error
        data = response.data
        answer = {f: data[f] for f in answer_fields if f in data} if isinstance(data, dict) else None
        uow.add(self._call(receiver, module, method, url, response.request_id, correlation_id,
                           response.http_status, response.status_code, None, sent_at, response.elapsed_ms,
                           sent, answer if answer_fields else None))
        return response

    @staticmethod
    def _call(receiver: Receiver, module, method, url, request_id, correlation_id, http_status,
              status_code, error, sent_at, elapsed, sent, answer) -> Call:
        return Call(platform_id=str(receiver.platform_id), purpose="realtime", module=module, method=method,
                    url=url, request_id=request_id, correlation_id=correlation_id, http_status=http_status,
                    status_code=status_code, error=error, sent_at=sent_at, duration_ms=elapsed,
                    sent=sent, answer=answer)


def not_an_envelope(receiver: Receiver, http_status: int) -> HubError:
    return HubError(OcpiStatus.HUB_ERROR,
                    f"the answer of {receiver.key} (HTTP {http_status}) was not an OCPI envelope: "
                    "no JSON object with an integer status_code")
