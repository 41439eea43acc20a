"""2. Real-time authorization: a CPO asks the hub, the hub asks the token's eMSP.

The eMSP is a partner test server that answers every request after a fixed
20 ms. The same client threads send the same POST ``tokens/sender/{uid}/authorize``
at the same steady rate either through the hub (directed, ``OCPI-to`` = the
eMSP) or directly to the eMSP server; the two are measured in alternating
blocks so machine noise hits both alike. Two modes, each with its own direct
figures from the same run: a steady rate (open loop), and ``callers`` closed-loop
concurrent callers (each sends its next request as soon as the answer came).
Figures: p50 and p99 latency and what the hub adds. Goal, in both modes: added
p50 ≤ 10 % and added p99 ≤ 25 % of the direct figures.

A third path in the same alternating blocks, the stack's floor
(``ops/bench/floor.py``): a Falcon app under the same gunicorn settings that only
relays the request to the eMSP with ``requests``. What it adds is what this stack
on this machine adds before the hub does any work of its own.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from urllib.parse import urlsplit

from ops.bench.common import Http, Result, Row, cpo, emsp, log, percentile, run_threads
from ops.bench.floor import FloorServer
from ops.bench.processes import HubProcesses
from tests import ocpi_examples as ex
from tests.partner import Partner, envelope

SIZES = {
    "smoke": {"threads": 2, "rate": 20.0, "block_seconds": 1.0, "rounds": 1, "web_workers": 2, "callers": 8},
    "full": {"threads": 4, "rate": 30.0, "block_seconds": 5.0, "rounds": 4, "web_workers": 2, "callers": 8},
}
DELAY = 0.020
UIDS = [f"RFID{n:04d}" for n in range(50)]
BODY = {"location_id": "LOC-BLR-0001", "evse_uids": ["EVSE-BLR-0001-1"]}


def answering_emsp(r: dict) -> Partner:
    """An eMSP server that allows every token, after ``DELAY`` seconds (all requests)."""
    partner = Partner(roles=[r], delay=DELAY)
    original = partner.answer

    def answer(record):
        if record.path.endswith("/authorize"):
            uid = record.path.split("/")[-2]
            return envelope({"allowed": "ALLOWED", "token": ex.token(uid=uid, party_id="EMA"),
                             "authorization_reference": "REF-" + uid})
        return original(record)

    partner.answer = answer
    return partner


def paced(threads: int, rate: float, seconds: float, send) -> list[float]:
    """``threads`` clients together sending ``rate`` requests/s for ``seconds``; latencies in ms."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    interval = threads / rate
    start = time.monotonic() + 0.05

    def client(i: int) -> None:
        due = start + i * interval / threads
        end = start + seconds
        n = 0
        while due < end:
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            sent = time.monotonic()
            send(i, n)
            latencies[i].append((time.monotonic() - sent) * 1000)
            n += 1
            due = max(due + interval, time.monotonic())  # never burst to catch up
    run_threads(threads, client)
    return [x for xs in latencies for x in xs]


def closed_loop(callers: int, seconds: float, send) -> list[float]:
    """``callers`` clients each sending its next request as soon as it has the answer; latencies in ms."""
    latencies: list[list[float]] = [[] for _ in range(callers)]
    end = time.monotonic() + seconds

    def client(i: int) -> None:
        n = 0
        while time.monotonic() < end:
            sent = time.monotonic()
            send(i, n)
            latencies[i].append((time.monotonic() - sent) * 1000)
            n += 1
    run_threads(callers, client)
    return [x for xs in latencies for x in xs]


def figures(result: Result, mode: str, hub_lat: list[float], direct_lat: list[float],
            floor_lat: list[float]) -> None:
    """The rows of one mode: latencies, what the hub and the floor add, and whether the goals are met."""
    p50h, p99h = percentile(hub_lat, 50), percentile(hub_lat, 99)
    p50d, p99d = percentile(direct_lat, 50), percentile(direct_lat, 99)
    added50, added99 = p50h - p50d, p99h - p99d
    result.add(
        Row(f"{mode}: latency p50", p50h, p50d, "ms"),
        Row(f"{mode}: latency p99", p99h, p99d, "ms"),
        Row(f"{mode}: added by the hub, p50 (of direct p50)", added50, p50d, "ms", goal="≤ 0.10",
            met=added50 <= 0.10 * p50d),
        Row(f"{mode}: added by the hub, p99 (of direct p99)", added99, p99d, "ms", goal="≤ 0.25",
            met=added99 <= 0.25 * p99d),
        Row(f"{mode}: mean latency", sum(hub_lat) / len(hub_lat), sum(direct_lat) / len(direct_lat), "ms"),
    )
    if floor_lat:
        p50f, p99f = percentile(floor_lat, 50), percentile(floor_lat, 99)
        result.add(
            Row(f"{mode}: added by the stack's floor (relay only), p50 (of direct p50)", p50f - p50d, p50d, "ms"),
            Row(f"{mode}: added by the stack's floor (relay only), p99 (of direct p99)", p99f - p99d, p99d, "ms"),
        )


def run(db, size: str) -> Result:
    cfg = SIZES[size]
    result = Result("authorize", "real-time authorization through the hub vs directly to the eMSP", size)
    hub = HubProcesses(db.url, "authorize")
    floor = None
    try:
        hub.migrate()
        hub.start_web(workers=cfg["web_workers"])
        hub.start_worker()
        (cpo_partner,) = hub.connect_partners([cpo("CPA")])
        (emsp_partner,) = hub.connect_partners([emsp("EMA")], factory=answering_emsp)
        threads = cfg["threads"]
        errors: list[str] = []
        lock = threading.Lock()
        via_hub = [Http(hub.url, cpo_partner.hub_token) for _ in range(threads)]
        direct = [Http(emsp_partner.base, emsp_partner.token_for_hub) for _ in range(threads)]
        hub_headers = {"OCPI-from-country-code": "IN", "OCPI-from-party-id": "CPA",
                       "OCPI-to-country-code": "IN", "OCPI-to-party-id": "EMA"}
        # The eMSP's Tokens SENDER endpoint as its version details advertise it (tests/partner.py).
        emsp_path = urlsplit(f"{emsp_partner.base}/ocpi/2.2.1/tokens/sender").path

        def check(kind: str, status: int, payload: bytes) -> None:
            answer = json.loads(payload)
            if status != 200 or answer.get("status_code") != 1000 or \
                    (answer.get("data") or {}).get("allowed") != "ALLOWED":
                with lock:
                    errors.append(f"{kind}: {status} {payload[:200]!r}")

        def send_hub(i: int, n: int) -> None:
            uid = UIDS[(i * 7 + n) % len(UIDS)]
            headers = {**hub_headers, "X-Correlation-ID": str(uuid.uuid4())}
            status, _, payload = via_hub[i].request(
                "POST", f"/ocpi/2.2.1/tokens/sender/{uid}/authorize?type=RFID", BODY, headers)
            check("hub", status, payload)

        def send_direct(i: int, n: int) -> None:
            uid = UIDS[(i * 7 + n) % len(UIDS)]
            headers = {**hub_headers, "X-Correlation-ID": str(uuid.uuid4()), "X-Request-ID": str(uuid.uuid4())}
            status, _, payload = direct[i].request("POST", f"{emsp_path}/{uid}/authorize?type=RFID", BODY, headers)
            check("direct", status, payload)

        floor = FloorServer(cfg["web_workers"], 8,
                            {"FLOOR_RELAY_TO": f"{emsp_partner.base}/ocpi/2.2.1/tokens/sender"})
        via_floor = [Http(floor.url, emsp_partner.token_for_hub) for _ in range(threads)]

        def send_floor(i: int, n: int) -> None:
            uid = UIDS[(i * 7 + n) % len(UIDS)]
            headers = {**hub_headers, "X-Correlation-ID": str(uuid.uuid4()), "X-Request-ID": str(uuid.uuid4())}
            status, _, payload = via_floor[i].request("POST", f"/relay/{uid}/authorize?type=RFID", BODY, headers)
            check("floor", status, payload)

        # Warm up every path (connections, first requests of each gunicorn worker).
        paced(threads, cfg["rate"], 0.5, send_direct)
        paced(threads, cfg["rate"], 0.5, send_floor)
        paced(threads, cfg["rate"], 1.0, send_hub)
        errors.clear()
        floor_lat: list[float] = []
        hub_lat: list[float] = []
        direct_lat: list[float] = []
        log(f"authorize: {cfg['rounds']} rounds of {cfg['block_seconds']:.0f} s direct + "
            f"{cfg['block_seconds']:.0f} s through the hub at {cfg['rate']:.0f} requests/s")
        meter = None
        for _ in range(cfg["rounds"]):
            direct_lat += paced(threads, cfg["rate"], cfg["block_seconds"], send_direct)
            floor_lat += paced(threads, cfg["rate"], cfg["block_seconds"], send_floor)
            meter = meter or hub.cpu_meter().start()
            hub_lat += paced(threads, cfg["rate"], cfg["block_seconds"], send_hub)
        cpu = meter.stop()
        figures(result, "steady", hub_lat, direct_lat, floor_lat)

        callers = cfg["callers"]
        via_hub += [Http(hub.url, cpo_partner.hub_token) for _ in range(callers - threads)]
        direct += [Http(emsp_partner.base, emsp_partner.token_for_hub) for _ in range(callers - threads)]
        via_floor += [Http(floor.url, emsp_partner.token_for_hub) for _ in range(callers - threads)]
        log(f"authorize: {cfg['rounds']} rounds of {cfg['block_seconds']:.0f} s direct + "
            f"{cfg['block_seconds']:.0f} s through the hub, {callers} closed-loop callers")
        hub_cl: list[float] = []
        floor_cl: list[float] = []
        direct_cl: list[float] = []
        meter = None
        for _ in range(cfg["rounds"]):
            direct_cl += closed_loop(callers, cfg["block_seconds"], send_direct)
            floor_cl += closed_loop(callers, cfg["block_seconds"], send_floor)
            meter = meter or hub.cpu_meter().start()
            hub_cl += closed_loop(callers, cfg["block_seconds"], send_hub)
        cpu_cl = meter.stop()
        figures(result, f"{callers} callers", hub_cl, direct_cl, floor_cl)
        seconds = cfg["rounds"] * cfg["block_seconds"]
        result.add(Row(f"{callers} callers: authorizations/s", len(hub_cl) / seconds, len(direct_cl) / seconds,
                       "/s"))

        result.note(f"steady: {threads} client threads, {cfg['rate']:.0f} requests/s in total, "
                    f"{len(hub_lat)} requests through the hub and {len(direct_lat)} direct; "
                    f"{callers} callers: {len(hub_cl)} through the hub and {len(direct_cl)} direct; the eMSP "
                    f"server answers after {DELAY * 1000:.0f} ms; hub web = gunicorn {cfg['web_workers']} "
                    f"workers × 16 threads (gthread), plus hub worker")
        result.note(f"{len(errors)} answers were not status 1000 / ALLOWED"
                    + (f" (first: {errors[0]})" if errors else ""))
        result.note("steady: " + cpu + " (during the blocks through the hub and the direct blocks between them)")
        result.note(f"{callers} callers: " + cpu_cl)
        result.note("the stack's floor: a Falcon app under the same gunicorn settings that only relays "
                    "the request to the eMSP with requests (ops/bench/floor.py), measured in the same "
                    "alternating blocks")
        for client in [*via_hub, *direct, *via_floor]:
            client.close()
        return result
    finally:
        if floor is not None:
            floor.close()
        hub.close()
