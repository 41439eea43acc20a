"""Concurrent pushes to one object: every one is accepted and applied, none is lost.

Two PATCHes of different EVSEs of one Location may reach two web workers (or
two threads) at the same moment; both load version N of the Location and both
want to write N+1. The event store refuses the second write, and the hub must
then apply that PATCH again on top of the first, not answer with an error.
"""

from __future__ import annotations

import base64
import threading

import pytest
import requests

from tests import ocpi_examples as ex
from tests.integration.test_forwarding import HUB, Cpo, stamp
from tests.partner import role

EVSES = [f"EVSE-{n}" for n in range(8)]
ROUNDS = 12
STATUSES = ("CHARGING", "AVAILABLE", "BLOCKED", "OUTOFORDER")


@pytest.mark.parametrize("server", ["hub", "gunicorn_hub"])
def test_concurrent_evse_patches_of_one_location_are_all_applied(server, request):
    # "hub": threads of one process; "gunicorn_hub": two gunicorn workers racing.
    hub = request.getfixturevalue(server)
    cpo_partner = hub.connect_partner([role("CPO", "IN", "ECP")])
    cpo = Cpo(hub, cpo_partner)
    evses = [ex.evse(uid=uid, evse_id=f"IN*ECP*E{n}", last_updated=stamp(0)) for n, uid in enumerate(EVSES)]
    body = ex.location(id="LOC1", evses=evses, last_updated=stamp(0))
    assert cpo.push("PUT", "locations/receiver/IN/ECP/LOC1", body).status_code == 201

    token = base64.b64encode(cpo_partner.hub_token.encode()).decode()
    headers = {"Authorization": f"Token {token}", "OCPI-from-country-code": "IN",
               "OCPI-from-party-id": "ECP", **HUB}
    answers: list[tuple[int, int | None, str | None]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(EVSES))

    def patch(uid: str) -> None:
        session = requests.Session()
        start.wait()
        for n in range(1, ROUNDS + 1):
            reply = session.patch(f"{hub.url}/ocpi/2.2.1/locations/receiver/IN/ECP/LOC1/{uid}",
                                  json={"status": STATUSES[n % 4], "last_updated": stamp(n)},
                                  headers=headers, timeout=30)
            envelope = reply.json()
            with lock:
                answers.append((reply.status_code, envelope.get("status_code"), envelope.get("status_message")))

    threads = [threading.Thread(target=patch, args=(uid,)) for uid in EVSES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    refused = [a for a in answers if a[:2] != (200, 1000) or a[2]]
    assert len(answers) == len(EVSES) * ROUNDS
    assert refused == []
    stored = cpo.push("GET", "locations/receiver/IN/ECP/LOC1").json()["data"]
    assert {e["uid"]: e["status"] for e in stored["evses"]} == {uid: STATUSES[ROUNDS % 4] for uid in EVSES}
    assert {e["uid"]: e["last_updated"] for e in stored["evses"]} == {uid: stamp(ROUNDS) for uid in EVSES}
