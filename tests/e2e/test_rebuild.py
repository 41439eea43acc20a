"""``hub projections rebuild``: fresh tables beside the live ones, then one swap.

The hub runs as in production (``hub web`` under gunicorn, ``hub worker``), a
CPO pushes over HTTP, an eMSP keeps pulling over HTTP; the rebuild runs in
this process through ``EventLog.rebuild``, the function the command calls
(so the test can hold it at chosen moments), or through the command itself.
"""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
import requests

from projections.objects import ObjectsProjection
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import HubUnderTest, wait_until
from tests.integration.test_forwarding import Cpo, stamp
from tests.integration.test_pulls import DC_EVSE, Emsp, accepted, key, put_location, put_tariff
from tests.partner import role

MODULES = ("locations", "tariffs", "sessions", "cdrs")
VIEW_TABLES = ("view_objects", "view_parties", "view_platforms", "view_platform_tokens",
               "view_routing_rules", "view_commands")
# Moves with the worker's health probes of the partners, rebuild or not.
VOLATILE = {("view_platforms", "last_seen_at")}


# Helpers ---------------------------------------------------------------------------

def query(settings, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def view_rows(settings) -> dict[str, list[tuple]]:
    """Every row of every view, ``json`` columns as text (byte for byte)."""
    found = {}
    for table in VIEW_TABLES:
        columns = [f'"{name}"::text' if kind == "json" else f'"{name}"' for name, kind in query(
            settings, "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,))
            if (table, name) not in VOLATILE]
        found[table] = query(settings, f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1, 2, 3")
    return found


def structure(settings) -> list[tuple]:
    """Tables, columns, indexes and constraints of the hub's schema, as ``hub migrate`` made them."""
    schema = settings.database_schema
    return [
        *query(settings, "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s"
                         " ORDER BY 1, 2", (schema,)),
        *query(settings, "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)"
                         " FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
                         " WHERE n.nspname = %s ORDER BY 1, 2", (schema,)),
        *query(settings, "SELECT table_name, column_name, data_type || coalesce(column_default, '')"
                         " FROM information_schema.columns WHERE table_schema = %s ORDER BY 1, 2", (schema,)),
    ]


def lags(settings) -> dict[str, int]:
    status = json.loads(run_hub(settings, "projections", "status", "--json").stdout)
    return {row["name"]: row["lag"] for row in status}


def wait_caught_up(settings) -> None:
    assert wait_until(lambda: set(lags(settings).values()) == {0}, timeout=30), lags(settings)


class Puller:
    """An eMSP back office pulling every list and a few single objects, over and over, in a thread.

    Its own HTTP session; every answer that is not a full success, or lists
    fewer objects than ``floor``, is kept in ``failures``."""

    def __init__(self, emsp: Emsp, floor: dict[str, int], singles: list[str]) -> None:
        self.emsp, self.floor, self.singles = emsp, floor, singles
        self.http = requests.Session()
        self.rounds = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def get(self, path: str, params: dict | None = None) -> requests.Response:
        import base64

        token = base64.b64encode(self.emsp.partner.hub_token.encode()).decode()
        headers = {"Authorization": f"Token {token}", "OCPI-from-country-code": "IN",
                   "OCPI-from-party-id": self.emsp.pid, "OCPI-to-country-code": "IN",
                   "OCPI-to-party-id": "CIH"}
        url = path if path.startswith("http") else f"{self.emsp.hub.url}/ocpi/2.2.1/{path}"
        return self.http.get(url, headers=headers, params=params, timeout=15)

    def _check(self, answer: requests.Response, what: str) -> dict | None:
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200 or body.get("status_code") != 1000:
            self.failures.append(f"{what}: HTTP {answer.status_code} {answer.text[:300]}")
            return None
        return body

    def listed(self, module: str) -> list[dict]:
        params = {"date_from": stamp(0)} if module == "sessions" else None
        answer, objects = self.get(f"{module}/sender", params), []
        while True:
            body = self._check(answer, f"GET {module}/sender")
            if body is None:
                return objects
            objects += body["data"]
            if "next" not in answer.links:
                return objects
            answer = self.get(answer.links["next"]["url"])

    def _run(self) -> None:
        while not self._stop.is_set():
            for module in MODULES:
                objects = self.listed(module)
                if len(objects) < self.floor[module]:
                    self.failures.append(f"{module}: {len(objects)} objects listed, {self.floor[module]} before")
            for path in self.singles:
                self._check(self.get(path), f"GET {path}")
            self.rounds += 1

    def start(self) -> Puller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_rounds(self, more: int, timeout: float = 30) -> None:
        """Until ``more`` whole rounds of reads have been done from now."""
        target = self.rounds + more + 1  # the round under way may have started before now
        assert wait_until(lambda: self.rounds >= target, timeout=timeout), "the eMSP's reads stalled"


class Pusher:
    """A CPO pushing new Locations one after another, in a thread (its own HTTP session)."""

    def __init__(self, cpo: Cpo) -> None:
        self.cpo = Cpo(HubUnderTest(cpo.hub.settings, cpo.hub.url), cpo.partner, cpo.cc, cpo.pid)
        self.pushed: dict[tuple, dict] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                body = put_location(self.cpo, f"LOC-DURING-{n:03d}", stamp(5000 + n))
                self.pushed[key(body)] = body
            except AssertionError as exc:
                self.failures.append(str(exc))
            n += 1

    def start(self) -> Pusher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_pushed(self, more: int, timeout: float = 30) -> None:
        target = len(self.pushed) + more
        assert wait_until(lambda: len(self.pushed) >= target, timeout=timeout), "the CPO's pushes stalled"


@pytest.fixture
def roaming(gunicorn_hub):
    """An eMSP and a CPO connected to the hub; the CPO has pushed objects of every module."""
    emsp_partner = gunicorn_hub.connect_partner([role("EMSP", "IN", "EM1")])
    cpo_partner = gunicorn_hub.connect_partner([role("CPO", "IN", "ECP")])
    em1, ecp = Emsp(gunicorn_hub, emsp_partner, "EM1"), Cpo(gunicorn_hub, cpo_partner, "IN", "ECP")
    for n in range(30):
        put_location(ecp, f"LOC-{n:02d}", stamp(n))
    accepted(ecp.push("PATCH", f"locations/receiver/IN/ECP/LOC-01/{DC_EVSE}",
                      {"status": "CHARGING", "last_updated": stamp(100)}))
    accepted(ecp.push("PATCH", f"locations/receiver/IN/ECP/LOC-02/{DC_EVSE}/2",
                      {"max_electric_power": 60000, "last_updated": stamp(101)}))
    for n in range(6):
        put_tariff(ecp, f"TRF-{n}", stamp(200 + n))
    accepted(ecp.push("DELETE", "tariffs/receiver/IN/ECP/TRF-5"))
    token = ex.cdr_token(party_id="EM1")
    for n in range(6):
        accepted(ecp.push("PUT", f"sessions/receiver/IN/ECP/SES-{n}",
                          ex.session(id=f"SES-{n}", cdr_token=token, last_updated=stamp(300 + n)), to=None))
        accepted(ecp.push("POST", "cdrs/receiver",
                          ex.cdr(id=f"CDR-{n}", cdr_token=token, last_updated=stamp(400 + n)), to=None))
    accepted(ecp.push("PATCH", "sessions/receiver/IN/ECP/SES-0", {"kwh": 12.5, "last_updated": stamp(500)},
                      to=None))
    wait_caught_up(gunicorn_hub.settings)
    yield em1, ecp
    emsp_partner.stop()
    cpo_partner.stop()


def pulls(puller: Puller) -> dict[str, dict[tuple, dict]]:
    return {module: {key(obj): obj for obj in puller.listed(module)} for module in MODULES}


# Tests -------------------------------------------------------------------------------

def test_rebuild_with_reads_in_flight_no_read_fails_and_views_equal(roaming, settings, monkeypatch):
    from hub.infra import eventlog
    from hub.infra import rebuild as rebuilding
    from hub.services.application import Hub

    em1, ecp = roaming
    views, answers, made = view_rows(settings), pulls(Puller(em1, {}, [])), structure(settings)
    assert {m: len(found) for m, found in answers.items()} == {"locations": 30, "tariffs": 5, "sessions": 6,
                                                               "cdrs": 6}
    # A view in doubt: one Location's row no longer says what the log says.
    query(settings, "UPDATE view_objects SET body = json_build_object('id', 'LOC-03', 'name', 'damaged',"
                    " 'last_updated', body->>'last_updated') WHERE object_id = 'LOC-03'")
    assert Puller(em1, {}, []).get("locations/sender/LOC-03").json()["data"]["name"] == "damaged"

    floor = {module: len(found) for module, found in answers.items()}
    singles = ["locations/sender/LOC-03", "locations/sender/LOC-01", f"locations/sender/LOC-02/{DC_EVSE}/2",
               "tariffs/sender/TRF-0", "sessions/sender/SES-0", "cdrs/sender/CDR-0"]
    puller, pusher = Puller(em1, floor, singles).start(), Pusher(ecp).start()

    # Hold the rebuild while the eMSP reads and the CPO pushes: after its first batch,
    # and inside the swap transaction, with the live rows changed but not committed.
    held: dict = {"build": False, "swap": None}

    def progress(position: int, head: int, events: int) -> None:
        if not held["build"]:
            held["build"] = True
            puller.wait_rounds(2)
            pusher.wait_pushed(5)

    swap_rows = rebuilding.swap_rows

    def swap_and_hold(cur, schema, table):
        changed = swap_rows(cur, schema, table)
        if table == "view_objects":
            held["swap"] = changed
            puller.wait_rounds(2)
        return changed

    monkeypatch.setattr(rebuilding, "swap_rows", swap_and_hold)
    projection = ObjectsProjection()
    projection.batch_size = projection.rebuild_batch_size = 10  # many batches
    app = Hub(settings, settings.database_url, pool_size=2)
    try:
        done = eventlog.EventLog(app).rebuild(projection, progress)
    finally:
        app.close()
        monkeypatch.undo()
    pusher.wait_pushed(3)  # and some after the swap
    pusher.stop()
    puller.stop()

    assert puller.rounds >= 4 and not puller.failures, puller.failures[:5]
    assert not pusher.failures, pusher.failures
    assert held["build"] and held["swap"] is not None
    assert done.rows_changed >= 1  # the damaged row (and what the worker had not applied yet)
    assert done.events >= 52 + 5  # everything pushed before, and Locations pushed meanwhile

    # The views: as before the damage, plus the Locations pushed meanwhile.
    wait_caught_up(settings)
    after = view_rows(settings)
    assert {t: rows for t, rows in after.items() if t != "view_objects"} == \
        {t: rows for t, rows in views.items() if t != "view_objects"}
    before_objects = {row[:5]: row for row in views["view_objects"]}
    after_objects = {row[:5]: row for row in after["view_objects"]}
    assert {k: after_objects[k] for k in before_objects} == before_objects
    added = {(k[2], k[3], k[4]) for k in after_objects.keys() - before_objects.keys()}
    assert added == set(pusher.pushed) and len(added) >= 8
    # What the eMSP pulls: the same objects as before, plus the new Locations exactly as pushed.
    now = pulls(Puller(em1, {}, []))
    assert {m: now[m] for m in MODULES if m != "locations"} == {m: answers[m] for m in MODULES if m != "locations"}
    assert now["locations"] == {**answers["locations"], **pusher.pushed}

    # Operators: the schema is exactly what migrate made, and migrate finds nothing to change.
    assert structure(settings) == made
    assert "schema is up to date" in run_hub(settings, "migrate").stdout
    assert structure(settings) == made
    again = run_hub(settings, "projections", "rebuild").stdout
    assert [line.split(":")[0] for line in again.splitlines()] == ["parties", "objects", "routing-rules",
                                                                  "commands"]
    assert "objects: rebuilt from" in again and "swapped in, 0 rows differed" in again.splitlines()[1]
    assert view_rows(settings)["view_objects"] == after["view_objects"]
    wait_caught_up(settings)


def test_a_second_rebuild_of_the_same_projection_is_refused(roaming, settings):
    from hub.infra.eventlog import EventLog
    from hub.services.application import Hub

    views = view_rows(settings)
    holding, release = threading.Event(), threading.Event()

    def progress(position: int, head: int, events: int) -> None:
        holding.set()
        assert release.wait(60)

    app = Hub(settings, settings.database_url, pool_size=2)
    outcome: dict = {}

    def first() -> None:
        try:
            outcome["done"] = EventLog(app).rebuild(ObjectsProjection(), progress)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(30), "the first rebuild did not start"
        second = run_hub(settings, "projections", "rebuild", "objects", ok=False)
        assert second.returncode == 1
        assert "a rebuild of objects is already running" in second.stderr
        assert "Traceback" not in second.stderr and "rebuilt" not in second.stdout
        # Another projection is not held up by it.
        assert "parties: rebuilt from" in run_hub(settings, "projections", "rebuild", "parties").stdout
        assert view_rows(settings) == views
    finally:
        release.set()
        thread.join(timeout=60)
        app.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["done"].rows_changed == 0
    # Once it is done, the next one runs.
    assert "objects: rebuilt from" in run_hub(settings, "projections", "rebuild", "objects").stdout
    assert view_rows(settings) == views


class FailingObjects(ObjectsProjection):
    """The objects projection failing in its third batch, as a crash in the middle would stop it."""

    rebuild_batch_size = 10

    def __init__(self) -> None:
        self.batches = 0

    def apply(self, cur, events) -> None:
        self.batches += 1
        if self.batches == 3:
            raise RuntimeError("stopped in the middle")
        super().apply(cur, events)


def test_a_rebuild_stopped_in_the_middle_leaves_the_live_views_and_a_rerun_works(roaming, settings):
    from hub.infra.eventlog import EventLog
    from hub.services.application import Hub

    views, made = view_rows(settings), structure(settings)
    app = Hub(settings, settings.database_url, pool_size=2)
    try:
        with pytest.raises(RuntimeError, match="stopped in the middle"):
            EventLog(app).rebuild(FailingObjects())
    finally:
        app.close()
    assert view_rows(settings) == views
    assert structure(settings) == made  # nothing left beside the live tables
    # The rerun is not refused: the first one's lock went with its session.
    rerun = run_hub(settings, "projections", "rebuild", "objects", "--progress")
    assert "objects: rebuilt from" in rerun.stdout and "100.0%" in rerun.stderr
    assert "swapped in, 0 rows differed from the live view" in rerun.stdout
    assert view_rows(settings) == views
