"""Every 2.2.1 role (issue 14 item 4): each registers, gets only what its role may receive,
and HubClientInfo lists them all."""

from __future__ import annotations

from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import wait_until
from tests.integration.test_forwarding import Cpo, received, stamp
from tests.partner import role

ALL_ROLES = ("CPO", "EMSP", "NAP", "NSP", "OTHER", "SCSP")


def _get(hub, partner, pid: str, path: str, to=("IN", "CIH")):
    headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": pid,
               "OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]}
    return hub.call("GET", f"/ocpi/2.2.1/{path}", partner.hub_token, headers=headers)


def test_nap_receives_and_pulls_locations_and_tariffs_scsp_gets_none(hub, worker, settings):
    nap = hub.connect_partner([role("NAP", "IN", "NAP")])
    scsp = hub.connect_partner([role("SCSP", "IN", "SCS")])
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo = Cpo(hub, hub.connect_partner([role("CPO", "IN", "ECP")]))
    try:
        location, tariff = ex.location(id="LOC1", last_updated=stamp(1)), ex.tariff(id="T1", last_updated=stamp(1))
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", location).status_code == 201
        assert cpo.push("PUT", "tariffs/receiver/IN/ECP/T1", tariff).status_code == 201
        for module, body in (("locations", location), ("tariffs", tariff)):
            got = wait_until(lambda m=module: received(nap, m, "PUT"))
            assert got and got[0].body == body and got[0].header("OCPI-to-party-id") == "NAP"
            assert got[0].header("OCPI-from-party-id") == "CIH"  # a broadcast comes FROM the hub
        assert wait_until(lambda: received(emsp, "tariffs", "PUT"))
        # The NAP pulls them from the hub's SENDER interfaces.
        listed = _get(hub, nap, "NAP", "locations/sender").json()
        assert [o["id"] for o in listed["data"]] == ["LOC1"]
        assert [o["id"] for o in _get(hub, nap, "NAP", "tariffs/sender").json()["data"]] == ["T1"]
        # Sessions and CDRs are for the eMSP of cdr_token: a NAP may not pull them.
        refused = _get(hub, nap, "NAP", "sessions/sender").json()
        assert refused["status_code"] == 2001 and "sessions sender interface is for EMSP" in refused["status_message"]
        # A smart charging provider gets no site data: nothing forwarded to it, and it may not pull.
        assert not received(scsp, "locations") and not received(scsp, "tariffs")
        scsp_pull = _get(hub, scsp, "SCS", "locations/sender").json()
        assert scsp_pull["status_code"] == 2001 and "is for EMSP, NAP, NSP, OTHER" in scsp_pull["status_message"]
        # Nor can a CPO address a Location to it.
        directed = cpo.push("PUT", "locations/receiver/IN/ECP/LOC2", ex.location(id="LOC2"), to=("IN", "SCS")).json()
        assert directed["status_code"] == 4000
        assert directed["status_message"] == "IN/SCS/SCSP: locations go to EMSP/NAP/NSP/OTHER parties"
        # The hub pulls only what a CPO's or eMSP's Sender interfaces hold.
        done = run_hub(settings, "parties", "sync", "IN/NAP", ok=False)
        assert done.returncode == 1 and "only CPO and EMSP parties offer Sender interfaces" in done.stderr
    finally:
        for partner in (nap, scsp, emsp, cpo.partner):
            partner.stop()


def test_other_registers_and_hubclientinfo_lists_every_role(hub):
    partners = [hub.connect_partner([role(r, "IN", f"{r[:2]}X")]) for r in ALL_ROLES]
    try:
        other = partners[ALL_ROLES.index("OTHER")]
        assert other.hub_token  # the credentials handshake of an OTHER completed
        listed = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", other.hub_token, params={"limit": 100}).json()
        assert listed["status_code"] == 1000
        assert {c["role"] for c in listed["data"]} == set(ALL_ROLES)
        assert {c["status"] for c in listed["data"]} == {"CONNECTED"}
    finally:
        for partner in partners:
            partner.stop()
