"""Nothing lost, nothing reordered: a partner down for a while, the hub killed mid-stream."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import replace

import psutil

from scheduler.worker import Worker
from tests import ocpi_examples as ex
from tests.conftest import wait_until
from tests.integration.test_forwarding import Cpo, received, stamp
from tests.partner import role

EVSE = "EVSE-BLR-0001-1"


def replay(messages) -> dict:
    """What an eMSP holds after applying what it received, as its own back office would."""
    objects: dict[str, dict] = {}
    for message in messages:
        parts = message.path.split("/receiver/")[1].split("/")
        key = "/".join(parts[:3])
        if message.method == "PUT" and len(parts) == 3:
            objects[key] = dict(message.body)
        elif message.method == "PATCH" and len(parts) == 3:
            body = dict(message.body)
            if "charging_periods" in body:  # Session PATCH appends
                body["charging_periods"] = objects[key].get("charging_periods", []) + body["charging_periods"]
            objects[key].update(body)
        elif message.method == "PATCH" and len(parts) == 4:
            for evse in objects[key]["evses"]:
                if evse["uid"] == parts[3]:
                    evse.update(message.body)
            objects[key]["last_updated"] = message.body["last_updated"]
    return objects


def in_order(messages) -> bool:
    """Per object, each message carries a last_updated no older than the one before."""
    seen: dict[str, str] = {}
    for message in messages:
        key = "/".join(message.path.split("/receiver/")[1].split("/")[:3])
        stamp_ = message.body["last_updated"]
        if key in seen and stamp_ < seen[key]:
            return False
        seen[key] = stamp_
    return True


def test_emsp_down_gets_the_current_state_when_back(hub, settings):
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    worker = Worker(replace(settings, still_alive_after=1.0), settings.database_url)
    worker.start()
    try:
        assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", ex.location(id="LOC1", last_updated=stamp(0))).status_code == 201
        session = ex.session(id="S1", charging_periods=[], last_updated=stamp(0))
        assert cpo.push("PUT", "sessions/receiver/IN/ECP/S1", session, to=None).status_code == 201
        assert wait_until(lambda: received(emsp, "sessions") and received(emsp, "locations"))

        emsp.stop()
        statuses = ["CHARGING", "AVAILABLE", "BLOCKED", "OUTOFORDER", "AVAILABLE"]
        for n in range(1, 51):
            answer = cpo.push("PATCH", f"locations/receiver/IN/ECP/LOC1/{EVSE}",
                              {"status": statuses[n % 5], "last_updated": stamp(n)})
            assert answer.json()["status_code"] == 1000
            if n <= 20:
                period = {"start_date_time": stamp(n), "dimensions": [{"type": "ENERGY", "volume": n}]}
                answer = cpo.push("PATCH", "sessions/receiver/IN/ECP/S1",
                                  {"charging_periods": [period], "kwh": float(n), "last_updated": stamp(n)},
                                  to=None)
                assert answer.json()["status_code"] == 1000

        def emsp_status():
            listed = hub.call("GET", "/ocpi/2.2.1/hubclientinfo", cpo_partner.hub_token).json()["data"]
            return next(c["status"] for c in listed if c["party_id"] == "EMP")

        assert wait_until(lambda: emsp_status() == "OFFLINE", timeout=60)

        emsp.start()
        assert wait_until(lambda: emsp_status() == "CONNECTED", timeout=60)
        hub_session = hub.call("GET", "/ocpi/2.2.1/sessions/receiver/IN/ECP/S1", cpo_partner.hub_token,
                               headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP"}).json()["data"]
        hub_location = hub.call("GET", "/ocpi/2.2.1/locations/receiver/IN/ECP/LOC1", cpo_partner.hub_token,
                                headers={"OCPI-from-country-code": "IN", "OCPI-from-party-id": "ECP"}).json()["data"]
        assert len(hub_session["charging_periods"]) == 20

        def caught_up():
            state = replay(received(emsp, "sessions") + received(emsp, "locations"))
            return state.get("IN/ECP/S1") == hub_session and state.get("IN/ECP/LOC1") == hub_location

        assert wait_until(caught_up, timeout=60), replay(received(emsp, "sessions"))
        periods = replay(received(emsp, "sessions"))["IN/ECP/S1"]["charging_periods"]
        assert [p["dimensions"][0]["volume"] for p in periods] == list(range(1, 21))
        assert in_order(received(emsp, "sessions")) and in_order(received(emsp, "locations"))
        # The backlog was collapsed: far fewer requests than the 70 updates pushed meanwhile.
        assert len(received(emsp, "locations")) + len(received(emsp, "sessions")) < 30
    finally:
        worker.stop()
        emsp.stop()
        cpo_partner.stop()


def _kill_tree(pid: int) -> None:
    process = psutil.Process(pid)
    for child in process.children(recursive=True):
        child.send_signal(signal.SIGKILL)
    process.send_signal(signal.SIGKILL)


def test_hub_killed_while_a_cpo_pushes(gunicorn_hub, processes, settings):
    hub = gunicorn_hub
    emsp = hub.connect_partner([role("EMSP", "IN", "EMP")])
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    accepted: list[str] = []
    stop = threading.Event()

    def push_all() -> None:
        for n in range(200):
            if stop.is_set():
                return
            location_id = f"K{n:03d}"
            try:
                answer = cpo.push("PUT", f"locations/receiver/IN/ECP/{location_id}",
                                  ex.location(id=location_id, last_updated=stamp(n)))
                if answer.json().get("status_code") == 1000:
                    accepted.append(location_id)
            except Exception:
                pass  # the hub is down: this push was not accepted

    pusher = threading.Thread(target=push_all)
    pusher.start()
    assert wait_until(lambda: len(accepted) >= 40, timeout=60)
    for child in processes.children:
        _kill_tree(child.pid)
    for child in processes.children:
        child.wait(timeout=10)
    stop.set()
    pusher.join(timeout=30)
    assert accepted, "nothing was accepted before the kill"

    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    port = settings.extra["port"]
    processes.start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env)
    processes.start(["worker"], env)
    assert wait_until(lambda: _up(hub), timeout=30)
    try:
        def delivered() -> set[str]:
            return {r.path.rsplit("/", 1)[1] for r in received(emsp, "locations", "PUT")}

        assert wait_until(lambda: set(accepted) <= delivered(), timeout=90), set(accepted) - delivered()
        # And every accepted location is in the hub's views: the eMSP pulls them all.
        pulled, url = [], "/ocpi/2.2.1/locations/sender?limit=50"
        headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMP",
                   "OCPI-to-country-code": "IN", "OCPI-to-party-id": "CIH"}
        while url:
            page = hub.call("GET", url, emsp.hub_token, headers=headers)
            pulled += [loc["id"] for loc in page.json()["data"]]
            link = page.headers.get("Link")
            url = link[1:link.index(">")] if link else None
        assert set(accepted) <= set(pulled)
        assert len(pulled) == len(set(pulled))
    finally:
        emsp.stop()
        cpo_partner.stop()


def _up(hub) -> bool:
    try:
        return hub.call("GET", "/health").status_code == 200
    except Exception:
        return False
