"""The console's read pages: overview (and its refreshed fragment), parties, one party."""

from __future__ import annotations

import falcon

from handlers.console.base import PREFIX, Page, Refused
from handlers.console.chart import traffic_svg
from hub.services.operators import OperatorError, parties
from hub.services.operators.names import PartyName, parse_party_name
from hub.services.operators.sync import pulls_of
from projections import console as reads
from projections.health import read_hub_state
from projections.queries import list_parties


class Overview(Page):
    def values(self) -> dict:
        return {"o": reads.overview(self.app), "chart": traffic_svg(reads.traffic(self.app))}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.viewer(req)
        every = req.get_param_as_int("refresh", min_value=2, max_value=3600, default=15)  # a wall display's choice
        self.gate.render(resp, "overview.html", session, notice=req.get_param("notice"), every=every,
                         **self.values())


class OverviewFragment(Overview):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.viewer(req)
        self.gate.render(resp, "_overview.html", session, **self.values())


def _key(row: dict) -> str:
    return f"{row['country_code']}/{row['party_id']}/{row['role']}"


class Parties(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self.gate.viewer(req)
        backlog: dict[str, int] = {}
        for party, state, count, _, _ in read_hub_state(self.app.pool).queues:
            if state == "PENDING":
                backlog[party] = backlog.get(party, 0) + count
        rows = [{"party": _key(r), "name": r["name"], "state": r["state"],
                 "last_seen_at": r["last_seen_at"].isoformat(timespec="seconds") if r.get("last_seen_at") else None,
                 "backlog": backlog.get(_key(r), 0)} for r in list_parties(self.app.pool)]
        self.gate.render(resp, "parties.html", session, notice=req.get_param("notice"), parties=rows)


def party_name(cc: str, pid: str, role: str) -> PartyName:
    try:
        return parse_party_name(f"{cc}/{pid}/{role}")
    except ValueError as exc:
        raise OperatorError(str(exc)) from None


class PartyPage(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response, cc: str, pid: str, role: str,
               report=None, notice: str | None = None) -> None:
        session = self.gate.viewer(req)
        try:
            name = parse_party_name(f"{cc}/{pid}/{role}")
            party, platform = parties.describe(self.app, name)
        except (ValueError, OperatorError) as exc:
            notice = notice or req.get_param("notice")
            message = f"{notice}; " if notice else ""
            self.gate.refused(resp, Refused("404 Not Found", f"{message}{exc} (the Parties page lists every party)"),
                              session)
            return
        rows = [r for r in list_parties(self.app.pool) if _key(r) == party.key]
        last_seen = rows[0].get("last_seen_at") if rows else None
        deliveries = None
        if self.gate.queue is not None:
            from hub.services.operators.deliveries import listed

            deliveries = listed(self.gate.queue.list_deliveries, self.app.pool, name, False, 50)
        self.gate.render(
            resp, "party.html", session, notice=notice or req.get_param("notice"), party=party, platform=platform,
            here=f"{PREFIX}/parties/{party.key}", last_seen=last_seen.isoformat(timespec="seconds") if last_seen else None,
            deliveries=deliveries, traffic=reads.party_traffic(self.app, str(platform.id)), report=report,
            pulls=pulls_of(self.app, party))
