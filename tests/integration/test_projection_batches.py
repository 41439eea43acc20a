"""Set-based batches build the same views as one event at a time, for every event type.

Each recorded log holds every event type of every projection, written through
the hub's own application (its aggregates, ``app.save``), with the objects'
histories interleaved in an order drawn from the log's seed and saved several
aggregates at a time, as concurrent requests leave them. Each projection then
builds its tables from the log, beside the live ones (the session's temporary
tables, as a rebuild does), in batches of 1 event, of 2, of 7 and of up to
5,000; every table must end row for row and byte for byte the same. The live
follower (its worker batch size) must give the same rows too.
"""

from __future__ import annotations

import random
from contextlib import closing

import pytest

from hub.domain import objects as o
from hub.domain.audit import Call, Request
from hub.domain.commands import Command
from hub.domain.parties import Party, Platform
from hub.domain.rules import RoutingRule
from hub.infra import rebuild as rebuilding
from hub.infra.eventlog import EventLog
from hub.services.application import Hub
from projections import all_projections
from tests import ocpi_examples as ex

SEEDS = (12, 2026)
BATCHES = (1, 2, 7, 5000)


def at(n: int) -> str:
    return f"2026-03-{1 + n // 1440:02d}T{n // 60 % 24:02d}:{n % 60:02d}:00Z"


def message(method: str, path: str, directed_to: str | None = None) -> dict:
    return {"request_id": f"r-{path}-{method}", "correlation_id": "c", "from": "IN/ECP/CPO",
            "scenario": "directed" if directed_to else "broadcast", "to": directed_to or "IN/CIH/HUB",
            "method": method, "path": path, "received_at": at(0)}


def histories(rng: random.Random) -> list[list]:
    """Per aggregate, the steps of its history: the first creates it, each later one changes it."""
    found: list[list] = []
    tick = iter(range(10, 100_000, 7))
    to = lambda: rng.choice([None, "IN/EMP/EMSP", "IN/EM2/EMSP"])  # noqa: E731
    for n in range(3):
        lid, evse = f"LOC{n}", f"EVSE-{n}"
        body = ex.location(id=lid, last_updated=at(next(tick)))
        found.append([
            lambda lid=lid, body=body: o.Location("IN", "ECP", lid, body, message("PUT", lid, to())),
            lambda a, evse=evse: a.put_evse(evse, ex.evse(uid=evse, last_updated=at(next(tick))),
                                            message("PUT", evse, to())),
            lambda a, evse=evse: a.patch_evse(evse, {"status": "CHARGING", "last_updated": at(next(tick))},
                                              message("PATCH", evse)),
            lambda a, evse=evse: a.put_connector(evse, "9", ex.connector(id="9", last_updated=at(next(tick))),
                                                 message("PUT", evse + "/9", to())),
            lambda a, evse=evse: a.patch_connector(evse, "9", {"max_voltage": 400, "last_updated": at(next(tick))},
                                                   message("PATCH", evse + "/9")),
            lambda a: a.patch({"name": f"renamed {rng.random()}", "last_updated": at(next(tick))},
                              message("PATCH", "loc", to())),
            lambda a, lid=lid: a.replace(ex.location(id=lid, last_updated=at(next(tick)), publish=rng.random() < .5),
                                         message("PUT", lid, to())),
            lambda a, evse=evse: a.patch_evse(evse, {"status": "AVAILABLE", "last_updated": at(next(tick))},
                                              message("PATCH", evse)),
        ])
        tid = f"TRF{n}"
        found.append([
            lambda tid=tid: o.Tariff("IN", "ECP", tid, ex.tariff(id=tid, last_updated=at(next(tick))),
                                     message("PUT", tid, to())),
            lambda a, tid=tid: a.replace(ex.tariff(id=tid, last_updated=at(next(tick))), message("PUT", tid)),
            lambda a: a.delete(message("DELETE", "tariff")),
            lambda a, tid=tid: a.replace(ex.tariff(id=tid, last_updated=at(next(tick))), message("PUT", tid, to())),
            lambda a: a.delete(message("DELETE", "tariff")),
        ][: rng.choice([3, 4, 5])])
        sid = f"SES{n}"
        found.append([
            lambda sid=sid: o.Session("IN", "ECP", sid, ex.session(id=sid, last_updated=at(next(tick))),
                                      message("PUT", sid)),
            lambda a: a.patch({"kwh": 3.5, "last_updated": at(next(tick))}, message("PATCH", "s")),
            lambda a, sid=sid: a.replace(ex.session(id=sid, last_updated=at(next(tick))), message("PUT", sid)),
            lambda a: a.patch({"kwh": 7.25, "status": "COMPLETED", "last_updated": at(next(tick))},
                              message("PATCH", "s")),
        ])
        cid = f"CDR{n}"
        found.append([lambda cid=cid: o.Cdr("IN", "ECP", cid, ex.cdr(id=cid, last_updated=at(next(tick))),
                                            message("POST", cid))])
        uid = f"UID{n}"
        found.append([
            lambda uid=uid: o.Token("IN", "EMP", o.Token.object_id_of(uid, "RFID"),
                                    ex.token(uid=uid, last_updated=at(next(tick))), message("PUT", uid)),
            lambda a: a.patch({"valid": False, "last_updated": at(next(tick))}, message("PATCH", "t")),
            lambda a, uid=uid: a.replace(ex.token(uid=uid, last_updated=at(next(tick))), message("PUT", uid)),
        ])
    for n in range(2):  # rules: set, changed, removed, set again (Changed after removal)
        cpo, emsp, module = f"IN/C{n}/CPO", "IN/EMP/EMSP", rng.choice(["locations", "*"])
        found.append([
            lambda cpo=cpo, emsp=emsp, module=module: RoutingRule(cpo, emsp, module, "deny", "r", "op"),
            lambda a: a.change("allow", "again", "op"),
            lambda a: a.remove("op"),
            lambda a: a.change("deny", "back", "op"),
        ][: 4 if n == 0 else rng.choice([3, 4])])
    for n in range(4):  # commands: answered, failed, results before and after the answer, timeouts
        rid, command = f"RID{n}", ("START_SESSION", "RESERVE_NOW")[n % 2]
        first = lambda rid=rid, command=command, n=n: Command(  # noqa: E731
            rid, command, "IN/EMP/EMSP", "IN/ECP/CPO", f"https://emsp.example/{rid}", f"https://hub/{rid}",
            {"reservation_id": f"res{n}"} if command == "RESERVE_NOW" else {}, "c", "r", at(next(tick)))
        answer = lambda a: a.answer(200, 1000, "ACCEPTED", 30, at(next(tick)), at(next(tick)))  # noqa: E731
        result = lambda a: a.receive_result({"result": "ACCEPTED"}, "r", at(next(tick)))  # noqa: E731
        found.append([[first, answer, result], [first, result, answer], [first, answer, lambda a: a.time_out(at(9))],
                      [first, lambda a: a.fail("unreachable", 2001, at(next(tick))), result]][n])
    return found


def parties_and_traffic(rng: random.Random) -> list[list]:
    """Platforms and their parties, and requests from and calls to them once registered."""
    found: list[list] = []
    for n in range(2):
        platform = Platform(f"pending{n}", "operator")
        roles = [{"country_code": "IN", "party_id": f"P{n}", "role": "CPO"}]
        party = Party("IN", f"P{n}", "CPO", f"Party {n}", platform.id, "operator")
        found.append([lambda p=platform: p, lambda p, n=n: p.attach_party(f"IN/P{n}/CPO"),
                      lambda p, roles=roles, n=n: p.register(f"c{n}", "enc", "https://p/versions", "2.2.1", [], roles)])
        found.append([lambda p=party: p, lambda p, platform=platform, n=n: p.connect(platform.id, f"Party {n}"),
                      lambda p: p.go_offline("down"), lambda p: p.come_online(), lambda p: p.suspend("ops"),
                      lambda p: p.resume(), lambda p, platform=platform: p.replan(platform.id),
                      lambda p: p.unregister("gone")][: 8 if n == 0 else rng.choice([6, 8])])
        later = [lambda p, n=n, roles=roles: p.update_credentials(f"c{n}b", "enc2", "https://p/v2", "2.2.1", [],
                                                                   roles),
                 lambda p: p.unregister("partner left"), lambda p, n=n: p.reinvite(f"again{n}", "operator")]
        traffic = []
        for k in range(6):
            moment = at(500 + rng.randrange(300))
            if k % 2:
                traffic.append(lambda platform=platform, moment=moment, k=k: Request(
                    str(platform.id), "IN/P0/CPO", None, "locations", "SENDER", "PUT", "/x", "", f"q{k}", "c", 200,
                    1000, None, moment, 1.0))
            else:
                traffic.append(lambda platform=platform, moment=moment, k=k: Call(
                    str(platform.id), "deliver", "locations", "PUT", "https://p/x", f"q{k}", "c",
                    (200, 502, None)[k % 3], None, None, moment, 1.0))
        found.append(("after", platform, traffic, later))
    return found


def record(app: Hub, seed: int) -> None:
    """Write one recorded log: the histories interleaved, saved a few aggregates at a time."""
    rng = random.Random(seed)
    pending = [list(steps) for steps in histories(rng)]
    platforms = parties_and_traffic(rng)
    extra = [item for item in platforms if isinstance(item, tuple)]
    pending += [list(item) for item in platforms if not isinstance(item, tuple)]
    live: dict[int, object] = {}
    while pending:
        chosen = rng.sample(range(len(pending)), k=min(len(pending), rng.choice([1, 1, 2, 3])))
        batch = []
        for index in chosen:
            step = pending[index].pop(0)
            aggregate = step() if index not in live else (step(live[index]) or live[index])
            live[index] = aggregate
            batch.append(aggregate)
        app.save(*batch)
        # Histories that ended are dropped; the indexes of the others move down.
        kept = [(i, steps) for i, steps in enumerate(pending) if steps]
        live = {new: live[old] for new, (old, _) in enumerate(kept) if old in live}
        pending = [steps for _, steps in kept]
    for _, platform, traffic, later in extra:  # once every platform registered: traffic, then changes
        for make in traffic:
            app.save(make())
        for step in later:
            step(platform)
            app.save(platform)


def views(log: EventLog, projection, batch: int) -> dict[str, list]:
    """The projection's tables built from the whole log in batches of ``batch`` events."""
    projection.rebuild_batch_size = batch
    schema = log.app.settings.database_schema
    with closing(log._session()) as conn:
        for table in projection.tables():
            rebuilding.create_beside(conn, schema, table)
        _, applied = log.fill(conn, projection, 0, log.head(), rebuilding.Timer())
        assert applied > 0
        return {table: rows(conn, f'pg_temp."{table}"') for table in projection.tables()}


def rows(conn, relation: str) -> list:
    columns = [f'"{name}"::text' for (name,) in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum", (relation,)).fetchall()]
    return conn.execute(f"SELECT {', '.join(columns)} FROM {relation} ORDER BY 1, 2, 3").fetchall()


@pytest.fixture
def app(settings):
    app = Hub(settings, settings.database_url)
    yield app
    app.close()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", [p.name for p in all_projections()])
def test_set_based_batches_give_the_views_of_one_event_at_a_time(app, seed, name):
    record(app, seed)
    log = EventLog(app)
    projection = next(p for p in all_projections() if p.name == name)
    with app.pool.connection() as conn:
        topics = {t for (t,) in conn.execute("SELECT DISTINCT topic FROM hub_events").fetchall()}
    assert set(projection.topics) <= topics, f"the log lacks {set(projection.topics) - topics}"

    one_at_a_time = views(log, projection, 1)
    assert any(one_at_a_time.values()), "the projection built nothing"
    for batch in BATCHES[1:]:
        assert views(log, projection, batch) == one_at_a_time, f"batches of {batch} differ"
    log.catch_up(type(projection)())  # the live follower, in its own batch size
    schema = app.settings.database_schema
    with closing(log._session()) as conn:
        live = {table: rows(conn, f'"{schema}"."{table}"') for table in projection.tables()}
    assert live == one_at_a_time
