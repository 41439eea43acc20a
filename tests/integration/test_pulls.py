"""Pulls through the hub: what an eMSP sees on the SENDER interfaces.

GET all (``/{module}/sender``, paginated by keyset, ``Link`` / ``X-Total-Count``
/ ``X-Limit``) and single objects (``/{module}/sender/{id}``, Locations also
``/{evse_uid}[/{connector_id}]``), served from the hub's store: the union of
every CPO the caller may see, each object exactly as its owner pushed it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.integration.test_forwarding import Cpo, stamp
from tests.partner import role

HUB_ADDRESS = ("IN", "CIH")
DC_EVSE = "EVSE-BLR-0001-1"  # the DC EVSE of ex.location(), connectors "1" and "2"
PAGE_LIMIT = 10  # the hub's maximum page size in these tests, so the cap shows


@pytest.fixture
def settings(settings):
    """The test hub, with a small maximum page size (``HUB_PAGE_LIMIT``)."""
    return replace(settings, page_limit=PAGE_LIMIT,
                   extra={**settings.extra, "HUB_PAGE_LIMIT": str(PAGE_LIMIT)})


# Parties ---------------------------------------------------------------------

class Emsp:
    """An eMSP back office pulling from the hub's SENDER interfaces."""

    def __init__(self, hub, partner, pid: str, cc: str = "IN") -> None:
        self.hub, self.partner, self.cc, self.pid = hub, partner, cc, pid

    def get(self, path: str, params: dict | None = None, *, to: tuple[str, str] | None = HUB_ADDRESS,
            party: tuple[str, str] | None = None):
        """GET ``/ocpi/2.2.1/{path}`` (or an absolute URL such as a ``Link``)."""
        cc, pid = party or (self.cc, self.pid)
        headers = {"OCPI-from-country-code": cc, "OCPI-from-party-id": pid}
        if to:
            headers.update({"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]})
        url = path if path.startswith("http") else f"/ocpi/2.2.1/{path}"
        return self.hub.call("GET", url, self.partner.hub_token, headers=headers, params=params)

    def crawl(self, module: str, params: dict | None = None, between_pages=None) -> list:
        """Every page of a GET all, following ``Link`` to the end.

        ``between_pages(pages)`` runs after each page that has a next one, before
        the next is fetched."""
        pages = [self.get(f"{module}/sender", params)]
        while "next" in pages[-1].links:
            assert pages[-1].status_code == 200 and pages[-1].json()["status_code"] == 1000, pages[-1].text
            assert len(pages) < 100, "the Link chain does not end"
            if between_pages is not None:
                between_pages(pages)
            pages.append(self.get(pages[-1].links["next"]["url"]))
        assert pages[-1].status_code == 200 and pages[-1].json()["status_code"] == 1000, pages[-1].text
        return pages

    def listed(self, module: str, params: dict | None = None) -> list[dict]:
        """All objects of a GET all, every page together."""
        return [obj for page in self.crawl(module, params) for obj in page.json()["data"]]


@pytest.fixture
def connect(hub):
    """``connect("EMSP", "EM1")`` connects a partner; all are stopped afterwards."""
    started = []

    def connect(role_name: str, pid: str):
        partner = hub.connect_partner([role(role_name, "IN", pid)])
        started.append(partner)
        return Emsp(hub, partner, pid) if role_name == "EMSP" else Cpo(hub, partner, "IN", pid)

    yield connect
    for partner in started:
        partner.stop()


# Pushing and waiting -----------------------------------------------------------

def accepted(answer) -> None:
    assert answer.status_code in (200, 201) and answer.json()["status_code"] == 1000, answer.text


def put_location(cpo: Cpo, location_id: str, last_updated: str, *, to=HUB_ADDRESS, **overrides) -> dict:
    body = ex.location(country_code=cpo.cc, party_id=cpo.pid, id=location_id, last_updated=last_updated,
                       **overrides)
    accepted(cpo.push("PUT", f"locations/receiver/{cpo.cc}/{cpo.pid}/{location_id}", body, to=to))
    return body


def patch_evse(cpo: Cpo, location_id: str, status: str, last_updated: str) -> None:
    accepted(cpo.push("PATCH", f"locations/receiver/{cpo.cc}/{cpo.pid}/{location_id}/{DC_EVSE}",
                      {"status": status, "last_updated": last_updated}))


def put_tariff(cpo: Cpo, tariff_id: str, last_updated: str) -> dict:
    body = ex.tariff(country_code=cpo.cc, party_id=cpo.pid, id=tariff_id, last_updated=last_updated)
    accepted(cpo.push("PUT", f"tariffs/receiver/{cpo.cc}/{cpo.pid}/{tariff_id}", body))
    return body


def settle(worker) -> None:
    """Wait until every view has applied everything logged so far."""
    head = worker.log.head()
    caught_up = wait_until(lambda: all(worker.log.position(p.name) >= head for p in worker.projections))
    assert caught_up, "the projections did not catch up with the event log"


# Reading answers -------------------------------------------------------------

def key(obj: dict) -> tuple[str, str, str]:
    return obj["country_code"], obj["party_id"], obj["id"]


def keys(objects: list[dict]) -> list[tuple[str, str, str]]:
    return [key(obj) for obj in objects]


def refused(answer, status_code: int, http_status: int = 200, mentions: str | None = None) -> None:
    body = answer.json()
    assert (answer.status_code, body["status_code"]) == (http_status, status_code), answer.text
    assert not body.get("data")
    if mentions:
        assert mentions in body["status_message"], body["status_message"]


def link_query(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.links["next"]["url"]).query)


def snapshot_views(settings) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        return conn.execute("SELECT * FROM view_objects ORDER BY module, seq").fetchall()


# GET all -----------------------------------------------------------------------

def test_get_all_pages_through_every_cpo_location(hub, worker, settings, connect):
    em1 = connect("EMSP", "EM1")
    ecp, cp2 = connect("CPO", "ECP"), connect("CPO", "CP2")
    pushed = {}
    for n in range(25):
        cpo = ecp if n % 2 else cp2
        # Pushed values are kept exactly, fraction and all.
        last_updated = stamp(100 + n) if n % 3 else stamp(100 + n).replace("Z", ".250Z")
        body = put_location(cpo, f"LOC-{n:02d}", last_updated)
        pushed[key(body)] = body
    settle(worker)

    pages = em1.crawl("locations", {"limit": 7})
    assert [len(p.json()["data"]) for p in pages] == [7, 7, 7, 4]
    for page in pages:
        assert page.headers["X-Total-Count"] == "25"
        assert page.headers["X-Limit"] == str(settings.page_limit)
    for page in pages[:-1]:
        assert link_query(page)["limit"] == ["7"]
    assert "Link" not in pages[-1].headers
    objects = [obj for page in pages for obj in page.json()["data"]]
    assert len(objects) == len(set(keys(objects))) == 25
    assert {key(obj): obj for obj in objects} == pushed  # owner ids, last_updated, everything as pushed

    # A client paging by offset only gets the same order.
    second = em1.get("locations/sender", {"offset": 7, "limit": 7})
    assert keys(second.json()["data"]) == keys(pages[1].json()["data"])

    # No limit, or one above the hub's maximum: pages of the maximum.
    for params in (None, {"limit": 1000}):
        pages = em1.crawl("locations", params)
        assert [len(p.json()["data"]) for p in pages] == [10, 10, 5]
        assert {p.headers["X-Limit"] for p in pages} == {str(PAGE_LIMIT)}
        assert link_query(pages[0])["limit"] == [str(PAGE_LIMIT)]
        assert {key(obj) for p in pages for obj in p.json()["data"]} == set(pushed)


def test_crawl_while_locations_change_neither_skips_nor_repeats(hub, worker, connect):
    em1 = connect("EMSP", "EM1")
    ecp = connect("CPO", "ECP")
    originals = [key(put_location(ecp, f"LOC-{n:02d}", stamp(n))) for n in range(15)]
    settle(worker)

    def change(pages) -> None:
        crawled = {k[2] for page in pages for k in keys(page.json()["data"])}
        assert len(crawled) == 5 * len(pages)
        if len(pages) == 1:
            assert crawled == {f"LOC-{n:02d}" for n in range(5)}
            patch_evse(ecp, "LOC-01", "CHARGING", stamp(1001))  # already crawled
            patch_evse(ecp, "LOC-07", "BLOCKED", stamp(1002))   # not yet crawled
            put_location(ecp, "LOC-NEW", stamp(1003))
            # An already-crawled location leaves the list: offsets shift, the cursor does not.
            accepted(ecp.push("PATCH", "locations/receiver/IN/ECP/LOC-02",
                              {"publish": False, "last_updated": stamp(1004)}))
        elif len(pages) == 2:
            patch_evse(ecp, "LOC-03", "OUTOFORDER", stamp(1005))
            patch_evse(ecp, "LOC-12", "OUTOFORDER", stamp(1006))
        settle(worker)

    pages = em1.crawl("locations", {"limit": 5}, between_pages=change)
    objects = [obj for page in pages for obj in page.json()["data"]]
    seen = Counter(keys(objects))
    assert [k for k in originals if seen[k] != 1] == []
    assert seen[("IN", "ECP", "LOC-NEW")] <= 1 and set(seen) <= {*originals, ("IN", "ECP", "LOC-NEW")}
    # Pages fetched after a change show the hub's current copy.
    by_id = {obj["id"]: obj for obj in objects}
    assert by_id["LOC-07"]["last_updated"] == stamp(1002)
    assert by_id["LOC-07"]["evses"][0]["status"] == "BLOCKED"
    assert by_id["LOC-12"]["evses"][0]["status"] == "OUTOFORDER"
    # Afterwards the list is the new truth: LOC-02 unpublished, LOC-NEW added.
    now = em1.listed("locations")
    assert keys(now) == [k for k in originals if k[2] != "LOC-02"] + [("IN", "ECP", "LOC-NEW")]


def test_date_from_inclusive_date_to_exclusive(hub, worker, connect):
    em1 = connect("EMSP", "EM1")
    ecp = connect("CPO", "ECP")
    for n in range(10):
        put_location(ecp, f"LOC-{n}", stamp(10 * n))
    settle(worker)

    window = {"date_from": stamp(20), "date_to": stamp(60), "limit": 3}
    pages = em1.crawl("locations", window)
    assert [p.headers["X-Total-Count"] for p in pages] == ["4", "4"]
    assert link_query(pages[0])["date_from"] == [stamp(20)]
    assert link_query(pages[0])["date_to"] == [stamp(60)]
    objects = [obj for page in pages for obj in page.json()["data"]]
    assert [obj["last_updated"] for obj in objects] == [stamp(20), stamp(30), stamp(40), stamp(50)]

    newest = em1.get("locations/sender", {"date_from": stamp(90)})
    assert keys(newest.json()["data"]) == [("IN", "ECP", "LOC-9")]
    assert newest.headers["X-Total-Count"] == "1"
    nothing = em1.get("locations/sender", {"date_to": stamp(0)})
    assert nothing.json()["data"] == [] and nothing.headers["X-Total-Count"] == "0"
    assert "Link" not in nothing.headers
    refused(em1.get("locations/sender", {"date_from": "yesterday"}), 2001, mentions="date_from")

    # The filter follows the Location's last_updated, bumped by an EVSE change.
    patch_evse(ecp, "LOC-0", "CHARGING", stamp(95))
    settle(worker)
    moved = em1.get("locations/sender", {"date_from": stamp(90)})
    assert keys(moved.json()["data"]) == [("IN", "ECP", "LOC-0"), ("IN", "ECP", "LOC-9")]


# Single objects ----------------------------------------------------------------

def test_single_location_evse_and_connector(hub, worker, connect):
    em1 = connect("EMSP", "EM1")
    ecp, cp2 = connect("CPO", "ECP"), connect("CPO", "CP2")
    put_location(ecp, "LOC-A", stamp(1))
    patch_evse(ecp, "LOC-A", "CHARGING", stamp(2))
    accepted(ecp.push("PATCH", f"locations/receiver/IN/ECP/LOC-A/{DC_EVSE}/2",
                      {"max_electric_power": 12000, "last_updated": stamp(3)}))
    settle(worker)

    held = ecp.push("GET", "locations/receiver/IN/ECP/LOC-A").json()["data"]
    location = em1.get("locations/sender/LOC-A")
    assert location.status_code == 200 and location.json()["data"] == held
    assert held["last_updated"] == stamp(3) and held["evses"][0]["status"] == "CHARGING"
    evse = em1.get(f"locations/sender/LOC-A/{DC_EVSE}").json()["data"]
    assert evse == held["evses"][0]
    connector = em1.get(f"locations/sender/LOC-A/{DC_EVSE}/2").json()["data"]
    assert connector["max_electric_power"] == 12000 and connector["last_updated"] == stamp(3)
    assert connector == evse["connectors"][1]
    assert em1.get("locations/sender/loc-a").json()["data"] == held  # ids are CiStrings

    refused(em1.get("locations/sender/NO-SUCH-LOC"), 2003, http_status=404)
    refused(em1.get("locations/sender/LOC-A/NO-SUCH-EVSE"), 2003, http_status=404)
    refused(em1.get(f"locations/sender/LOC-A/{DC_EVSE}/9"), 2003, http_status=404)

    # Two CPOs use one location id: the eMSP must say whose it means.
    theirs = put_location(cp2, "LOC-A", stamp(4), name="CP2 Depot")
    settle(worker)
    refused(em1.get("locations/sender/LOC-A"), 2001, mentions="OCPI-to")
    refused(em1.get("locations/sender/LOC-A", to=None), 2001, mentions="OCPI-to")
    assert em1.get("locations/sender/LOC-A", to=("IN", "CP2")).json()["data"] == theirs
    assert em1.get("locations/sender/LOC-A", to=("IN", "ECP")).json()["data"] == held
    assert em1.get(f"locations/sender/LOC-A/{DC_EVSE}", to=("IN", "CP2")).json()["data"] == theirs["evses"][0]


# Visibility --------------------------------------------------------------------

def test_routing_rules_publish_and_directed_pushes_filter_lists(hub, worker, settings, connect):
    em1, em2 = connect("EMSP", "EM1"), connect("EMSP", "EM2")
    ecp, cp2 = connect("CPO", "ECP"), connect("CPO", "CP2")
    run_hub(settings, "routing", "deny", "IN/ECP", "IN/EM2", "--module", "locations")
    put_location(ecp, "LOC-E1", stamp(1))
    put_location(ecp, "LOC-E2", stamp(2))
    put_tariff(ecp, "TRF-E1", stamp(3))
    put_location(cp2, "LOC-C1", stamp(4))
    put_location(cp2, "LOC-PRIVATE", stamp(5), publish=False)
    put_location(cp2, "LOC-FOR-EM1", stamp(6), to=("IN", "EM1"))
    settle(worker)

    em1_list = em1.get("locations/sender")
    assert keys(em1_list.json()["data"]) == [("IN", "ECP", "LOC-E1"), ("IN", "ECP", "LOC-E2"),
                                             ("IN", "CP2", "LOC-C1"), ("IN", "CP2", "LOC-FOR-EM1")]
    assert em1_list.headers["X-Total-Count"] == "4"
    em2_list = em2.get("locations/sender")
    assert keys(em2_list.json()["data"]) == [("IN", "CP2", "LOC-C1")]
    assert em2_list.headers["X-Total-Count"] == "1"
    # The rule denies locations only: EM2 still sees IN/ECP's tariffs.
    assert keys(em2.listed("tariffs")) == [("IN", "ECP", "TRF-E1")]

    refused(em2.get("locations/sender/LOC-E1"), 2003, http_status=404)
    refused(em2.get("locations/sender/LOC-FOR-EM1"), 2003, http_status=404)
    refused(em1.get("locations/sender/LOC-PRIVATE"), 2003, http_status=404)
    assert em1.get("locations/sender/LOC-FOR-EM1").json()["data"]["id"] == "LOC-FOR-EM1"
    assert em1.get("locations/sender/LOC-E1").json()["data"]["id"] == "LOC-E1"


def test_sessions_and_cdrs_only_to_the_emsp_of_the_token(hub, worker, connect):
    em1, em2 = connect("EMSP", "EM1"), connect("EMSP", "EM2")
    ecp = connect("CPO", "ECP")
    sessions, cdrs = {}, {}
    for n, emsp in enumerate(("EM1", "EM2"), start=1):
        token = ex.cdr_token(party_id=emsp)
        sessions[emsp] = ex.session(id=f"SES-{emsp}", cdr_token=token, last_updated=stamp(n))
        accepted(ecp.push("PUT", f"sessions/receiver/IN/ECP/SES-{emsp}", sessions[emsp], to=None))
        cdrs[emsp] = ex.cdr(id=f"CDR-{emsp}", cdr_token=token, last_updated=stamp(10 + n))
        accepted(ecp.push("POST", "cdrs/receiver", cdrs[emsp], to=None))
    accepted(ecp.push("PATCH", "sessions/receiver/IN/ECP/SES-EM1", {"kwh": 30.5, "last_updated": stamp(5)},
                      to=None))
    settle(worker)

    for emsp, other in ((em1, "EM2"), (em2, "EM1")):
        own = emsp.get("sessions/sender", {"date_from": stamp(0)})
        assert keys(own.json()["data"]) == [("IN", "ECP", f"SES-{emsp.pid}")]
        assert own.headers["X-Total-Count"] == "1"
        own_cdrs = emsp.get("cdrs/sender")  # date_from is optional for CDRs
        assert own_cdrs.json()["data"] == [cdrs[emsp.pid]] and own_cdrs.headers["X-Total-Count"] == "1"
        assert emsp.get(f"cdrs/sender/CDR-{emsp.pid}").json()["data"] == cdrs[emsp.pid]
        assert emsp.get(f"sessions/sender/SES-{emsp.pid}").json()["data"]["id"] == f"SES-{emsp.pid}"
        refused(emsp.get(f"sessions/sender/SES-{other}"), 2000, http_status=404)
        refused(emsp.get(f"cdrs/sender/CDR-{other}"), 2000, http_status=404)

    patched = em1.get("sessions/sender/SES-EM1").json()["data"]
    assert patched == {**sessions["EM1"], "kwh": 30.5, "last_updated": stamp(5)}
    assert em2.get("sessions/sender/SES-EM2").json()["data"] == sessions["EM2"]
    refused(em1.get("sessions/sender"), 2001, mentions="date_from")


def test_an_id_used_by_two_cpos_is_addressed_with_ocpi_to(hub, worker, connect):
    em1 = connect("EMSP", "EM1")
    ecp, cp2 = connect("CPO", "ECP"), connect("CPO", "CP2")
    token = ex.cdr_token(party_id="EM1")
    pushed = {}
    for n, cpo in enumerate((ecp, cp2), start=1):
        owner = {"country_code": "IN", "party_id": cpo.pid, "last_updated": stamp(n)}
        session = ex.session(id="SES-SAME", cdr_token=token, **owner)
        accepted(cpo.push("PUT", f"sessions/receiver/IN/{cpo.pid}/SES-SAME", session, to=None))
        cdr = ex.cdr(id="CDR-SAME", cdr_token=token, **owner)
        accepted(cpo.push("POST", "cdrs/receiver", cdr, to=None))
        pushed[cpo.pid] = {"sessions": session, "cdrs": cdr, "tariffs": put_tariff(cpo, "TRF-SAME", stamp(n))}
    settle(worker)

    for module, object_id in (("sessions", "SES-SAME"), ("cdrs", "CDR-SAME"), ("tariffs", "TRF-SAME")):
        refused(em1.get(f"{module}/sender/{object_id}"), 2001, mentions="OCPI-to")
        for pid in ("ECP", "CP2"):
            answer = em1.get(f"{module}/sender/{object_id}", to=("IN", pid))
            assert answer.json().get("data") == pushed[pid][module], (module, answer.text)


def test_tariffs_list_drops_a_deleted_tariff(hub, worker, connect):
    em1 = connect("EMSP", "EM1")
    ecp = connect("CPO", "ECP")
    tariffs = [put_tariff(ecp, f"TRF-{n}", stamp(n)) for n in range(1, 4)]
    settle(worker)
    listed = em1.get("tariffs/sender")
    assert listed.json()["data"] == tariffs and listed.headers["X-Total-Count"] == "3"

    accepted(ecp.push("DELETE", "tariffs/receiver/IN/ECP/TRF-2"))
    settle(worker)
    listed = em1.get("tariffs/sender")
    assert listed.json()["data"] == [tariffs[0], tariffs[2]] and listed.headers["X-Total-Count"] == "2"
    refused(em1.get("tariffs/sender/TRF-2"), 2000, http_status=404)
    assert em1.get("tariffs/sender/TRF-3").json()["data"] == tariffs[2]


def test_list_requests_the_hub_refuses(hub, worker, connect):
    em1 = connect("EMSP", "EM1")
    connect("EMSP", "EM2")
    ecp = connect("CPO", "ECP")
    put_location(ecp, "LOC-1", stamp(1))
    settle(worker)

    refused(em1.get("locations/sender", to=None), 2001, mentions="OCPI-to")
    refused(em1.get("locations/sender", party=("IN", "EM2")), 2001, mentions="IN/EM2")
    cpo_pull = ecp.push("GET", "locations/sender")
    refused(cpo_pull, 2001, mentions="OCPI-from-party-id")
    refused(em1.get("tariffs/sender", {"limit": "lots"}), 2001, mentions="limit")
    assert keys(em1.listed("locations")) == [("IN", "ECP", "LOC-1")]


# Rebuild -----------------------------------------------------------------------

def test_rebuilt_objects_view_serves_the_same_pulls(hub, worker, settings, connect):
    em1, em2 = connect("EMSP", "EM1"), connect("EMSP", "EM2")
    ecp, cp2 = connect("CPO", "ECP"), connect("CPO", "CP2")
    for n in range(6):
        put_location(ecp if n % 2 else cp2, f"LOC-{n}", stamp(n))
    patch_evse(ecp, "LOC-1", "CHARGING", stamp(50))
    put_location(cp2, "LOC-FOR-EM1", stamp(51), to=("IN", "EM1"))
    put_tariff(ecp, "TRF-1", stamp(52))
    put_tariff(ecp, "TRF-2", stamp(53))
    accepted(ecp.push("DELETE", "tariffs/receiver/IN/ECP/TRF-1"))
    session = ex.session(id="SES-1", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(54))
    accepted(ecp.push("PUT", "sessions/receiver/IN/ECP/SES-1", session, to=None))
    accepted(ecp.push("POST", "cdrs/receiver",
                      ex.cdr(id="CDR-1", cdr_token=ex.cdr_token(party_id="EM1"), last_updated=stamp(55)),
                      to=None))
    settle(worker)

    def pulls() -> list:
        found = []
        for emsp in (em1, em2):
            for module, params in (("locations", {"limit": 3}), ("tariffs", None), ("cdrs", None),
                                   ("sessions", {"date_from": stamp(0)})):
                found += [(p.headers["X-Total-Count"], p.headers.get("Link"), p.json()["data"])
                          for p in emsp.crawl(module, params)]
        return found

    views, pages = snapshot_views(settings), pulls()
    assert len(views) == 11
    done = run_hub(settings, "projections", "rebuild", "objects")
    assert "objects: rebuilt" in done.stdout
    assert snapshot_views(settings) == views
    assert pulls() == pages


def test_gets_addressed_to_one_cpo_see_only_that_cpo(hub, worker, settings, connect):
    """A list GET with ``OCPI-to`` = one CPO lists only that CPO's objects, as a single GET finds
    only that CPO's; an OFFLINE CPO is fine (the hub answers from its store), a SUSPENDED one is 4003."""
    em1 = connect("EMSP", "EM1")
    ecp, cp2 = connect("CPO", "ECP"), connect("CPO", "CP2")
    mine = [put_location(ecp, f"LOC-E{n}", stamp(n)) for n in range(3)]
    theirs = put_location(cp2, "LOC-C1", stamp(5))
    put_tariff(ecp, "TRF-E", stamp(6))
    put_tariff(cp2, "TRF-C", stamp(7))
    settle(worker)

    assert sorted(keys(em1.listed("locations"))) == sorted(keys([*mine, theirs]))
    addressed = em1.get("locations/sender", to=("IN", "ECP"))
    assert addressed.status_code == 200 and addressed.json()["status_code"] == 1000, addressed.text
    assert sorted(keys(addressed.json()["data"])) == sorted(keys(mine))
    assert addressed.headers["X-Total-Count"] == "3"
    tariffs = em1.get("tariffs/sender", to=("IN", "CP2")).json()["data"]
    assert [(t["party_id"], t["id"]) for t in tariffs] == [("CP2", "TRF-C")]
    refused(em1.get("locations/sender/LOC-C1", to=("IN", "ECP")), 2003, http_status=404)

    # OFFLINE: still answered from the store (emsp-guide, "Single objects").
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        (platform_id,) = conn.execute("SELECT platform_id FROM view_parties WHERE party_id = 'ECP'").fetchone()
    worker.still_alive.unreachable(platform_id, "test: the CPO went away")

    def ecp_status() -> str:
        listed = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", em1.partner.hub_token).json()["data"]
        return next(c["status"] for c in listed if c["party_id"] == "ECP")

    assert wait_until(lambda: ecp_status() == "OFFLINE")
    single = em1.get("locations/sender/LOC-E1", to=("IN", "ECP"))
    assert single.status_code == 200 and single.json()["data"] == mine[1], single.text
    assert sorted(keys(em1.get("locations/sender", to=("IN", "ECP")).json()["data"])) == sorted(keys(mine))

    # SUSPENDED: refused, for lists and single objects alike.
    run_hub(settings, "parties", "suspend", "IN", "CP2")
    settle(worker)
    refused(em1.get("locations/sender/LOC-C1", to=("IN", "CP2")), 4003, mentions="SUSPENDED")
    refused(em1.get("locations/sender", to=("IN", "CP2")), 4003, mentions="SUSPENDED")
