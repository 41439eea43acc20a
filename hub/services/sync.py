"""Pulling a partner's Sender interfaces (issue 14 item 3): one sync of one party.

For each module (a CPO's Locations, Tariffs, Sessions, CDRs; an eMSP's Tokens) the
hub GETs the partner's SENDER endpoint with ``date_from`` = the start of the last
successful pull (none with ``full``), follows ``Link`` (``rel="next"``) page by page,
every call through the outbound client and its guard, and hands every object to
the push path (:class:`hub.services.pushes.Pushes`): validated with the OCPI model,
the stale guard applied, stored, then forwarded and listed by the followers as a
push is. Its ``message`` says ``received_by: pull`` and carries the GET's
``X-Request-ID``; each GET is itself a ``Call.Made`` record (purpose ``pull``).
An object equal to the hub's copy is counted ``unchanged`` and not stored again.

One sync per party and module runs at a time, across every process of the
database: a run holds a PostgreSQL advisory lock on its own connection and
another run of the same party and module finds it taken (``busy``).
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import psycopg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from psycopg.errors import IntegrityError as PgIntegrityError

from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
from hub.domain.audit import Call
from hub.domain.modules import MODULES
from hub.domain.objects import Token
from hub.domain.parties import UNREGISTERED, Party
from hub.domain.sync import PartySync, next_link, pullable
from hub.infra.client import OcpiClient, PartnerCallError
from hub.ocpi import models
from hub.ocpi.envelope import format_datetime
from hub.ocpi.errors import OcpiError
from hub.services.application import Hub, UnitOfWork
from hub.services.pushes import Pushes

MODELS = {"locations": models.Location, "tariffs": models.Tariff, "sessions": models.Session,
          "cdrs": models.CDR, "tokens": models.Token}
MAX_PAGES = 100_000  # a partner whose Link never ends is stopped here
CONFLICT_RETRIES = 3
LOCK_CLASS = 0x53594E43  # the advisory locks of syncs ("SYNC")

Progress = Callable[["ModuleSync"], None]
# (module, owner party key, body) -> None to accept, or the reason the hub refuses it
Acceptance = Callable[[str, str, dict], str | None]


class SyncError(Exception):
    """A sync that cannot start (not a CPO or eMSP, not registered, suspended), or a module's run
    that cannot go on (a page the partner did not serve); the message names the cause."""


@dataclass
class ModuleSync:
    """What one module's run did: ``state`` completed, failed, busy or skipped."""

    party: str
    module: str
    state: str = "running"
    date_from: str | None = None
    pages: int = 0
    received: int = 0
    stored: int = 0
    unchanged: int = 0
    stale: int = 0
    refused: int = 0
    total: int | None = None  # the partner's X-Total-Count, if it sends one
    correlation_id: str | None = None  # of the run's GETs and stored events (hub audit trace)
    error: str | None = None
    refusals: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


_LOCAL: dict[tuple[str, str], threading.Lock] = {}  # (party, module) -> threading.Lock: a process without a database pool (in memory)
_LOCAL_GUARD = threading.Lock()


class Sync:
    def __init__(self, app: Hub, client: OcpiClient, *, accept: Acceptance | None = None,
                 stopping: Callable[[], bool] | None = None) -> None:
        """``accept``: the recipient policy's verdict on a pulled Session or CDR (whose eMSP must be
        known, as for a push); the caller supplies it from the views. ``stopping``: true when the
        process is shutting down; a run then ends (failed) before its next page."""
        self.app = app
        self.client = client
        self.pushes = Pushes(app)
        self.accept = accept
        self.stopping = stopping or (lambda: False)
        self._owners: dict[tuple[str, str], set] = {}

    # Which party and modules ------------------------------------------------------------
    def party(self, parties: list[Party]) -> Party:
        """The one party of ``parties`` that can be pulled (a CPO or eMSP)."""
        candidates = [p for p in parties if pullable(p.role)]
        if not candidates:
            named = ", ".join(p.key for p in parties) or "no party"
            raise SyncError(f"{named}: only CPO and EMSP parties offer Sender interfaces to pull")
        if len(candidates) > 1:
            raise SyncError("several roles can be pulled: write " + " or ".join(p.key for p in candidates))
        return candidates[0]

    def modules(self, party: Party, wanted: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
        allowed = pullable(party.role)
        for mod in wanted:
            if mod not in allowed:
                raise SyncError(f"--module {mod}: a {party.role} can be pulled for {', '.join(allowed)}")
        return tuple(dict.fromkeys(wanted)) or allowed  # each module once, in the order given

    # Running --------------------------------------------------------------------------
    def run(self, party: Party, modules: tuple[str, ...], *, full: bool = False,
            progress: Progress | None = None) -> list[ModuleSync]:
        if party.suspended:
            raise SyncError(f"{party.key} is suspended: `hub parties resume {party.key}` first")
        if party.connection == UNREGISTERED:
            raise SyncError(f"{party.key} is UNREGISTERED: its platform removed it; re-onboard it first")
        platform = self.app.platform(party.platform_id)
        if platform.state != "REGISTERED" or not getattr(platform, "partner_token", None):
            raise SyncError(f"{party.key} has not registered (platform {platform.state}): the credentials"
                            " handshake comes first")
        token = self.app.cipher.decrypt(platform.partner_token)
        self._owners.clear()
        results = []
        for mod in modules:
            result = ModuleSync(party.key, mod)
            url = platform.endpoint(mod, "SENDER")
            if not url:
                result.state = "skipped"
                result.error = f"{party.key} offers no {mod} SENDER interface (its version details)"
            else:
                with self._exclusive(party.key, mod) as mine:
                    if not mine:
                        result.state = "busy"
                        result.error = f"a sync of {party.key} {mod} is running; this one did not start"
                    else:
                        self._module(party, str(platform.id), token, url, result, full, progress)
            if progress is not None:
                progress(result)
            results.append(result)
        return results

    @contextmanager
    def _exclusive(self, party_key: str, mod: str):
        """True while this process holds the only run of ``party_key`` ``mod``."""
        if self.app.pool is None:
            with _LOCAL_GUARD:
                lock = _LOCAL.setdefault((party_key, mod), threading.Lock())
            got = lock.acquire(blocking=False)
            try:
                yield got
            finally:
                if got:
                    lock.release()
            return
        # One key per schema, party and module (two hubs may share a database).
        key = zlib.crc32(f"{self.app.settings.database_schema}/{party_key}/{mod}".encode()) - 2**31
        with psycopg.connect(self.app.database_url, autocommit=True) as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, key)).fetchone()[0]
            try:
                yield got
            finally:
                if got:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, key))

    def _state(self, party_key: str, mod: str) -> PartySync:
        try:
            return self.app.repository.get(PartySync.create_id(party_key, mod))
        except AggregateNotFoundError:
            return PartySync(party=party_key, module=mod)

    def _module(self, party: Party, platform_id: str, token: str, url: str, result: ModuleSync,
                full: bool, progress: Progress | None) -> None:
        state = self._state(party.key, result.module)
        started = datetime.now(UTC)
        started_at = format_datetime(started)
        result.date_from = None if full else state.last_success
        correlation_id = result.correlation_id = str(uuid.uuid4())
        params = {"date_from": _second(result.date_from)} if result.date_from else None
        headers = {"OCPI-from-country-code": HUB_COUNTRY_CODE, "OCPI-from-party-id": HUB_PARTY_ID,
                   "OCPI-to-country-code": party.country_code, "OCPI-to-party-id": party.party_id}
        seen: set[str] = set()
        try:
            while url:
                if url in seen:
                    raise SyncError(f"the partner's Link led back to a page already read ({url})")
                if self.stopping():
                    raise SyncError("stopped before the next page: the process is shutting down")
                if result.pages >= MAX_PAGES:
                    raise SyncError(f"stopped after {MAX_PAGES} pages: the partner's Link does not end")
                seen.add(url)
                response = self._get(platform_id, result.module, url, token, headers, params, correlation_id)
                params = None  # the next page's URL (Link) carries every parameter itself
                result.pages += 1
                if not response.ok:
                    raise SyncError(f"GET {url}: HTTP {response.http_status}, status {response.status_code}: "
                                    f"{str(response.body.get('status_message') or '')[:200]}")
                data = [] if response.data is None else response.data  # an empty list left out
                if not isinstance(data, list):
                    raise SyncError(f"GET {url}: data is not a list of objects")
                self._page(party, result, data, response.request_id, correlation_id)
                if progress is not None:
                    progress(result)
                total = _header(response.headers, "X-Total-Count")
                result.total = int(total) if total and total.isdigit() else result.total
                following = next_link(_header(response.headers, "Link"))
                url = urljoin(url, following) if following else None  # a relative Link, liberally
        except (SyncError, PartnerCallError) as exc:
            result.state, result.error = "failed", str(exc)
            state.failed(started_at, result.date_from, full, result.pages, result.received, str(exc),
                         correlation_id)
        else:
            result.state = "completed"
            state.completed(started_at, result.date_from, full, result.pages, result.received, result.stored,
                            result.unchanged, result.stale, result.refused, correlation_id)
        self._commit(state)

    def _get(self, platform_id: str, mod: str, url: str, token: str, headers: dict, params, correlation_id):
        """One GET, recorded as a ``Call.Made`` (purpose ``pull``) whatever its outcome."""
        sent_at = format_datetime(datetime.now(UTC))
        started = time.perf_counter()
        try:
            response = self.client.request("GET", url, token, headers=headers, params=params,
                                           correlation_id=correlation_id)
        except PartnerCallError as exc:
            self._commit(Call(platform_id=platform_id, purpose="pull", module=mod, method="GET", url=url,
                              request_id=exc.request_id, correlation_id=correlation_id,
                              http_status=exc.http_status, status_code=None, error=str(exc), sent_at=sent_at,
                              duration_ms=exc.elapsed_ms))
            raise
        error = None if response.ok else f"HTTP {response.http_status}, status {response.status_code}"
        self._commit(Call(platform_id=platform_id, purpose="pull", module=mod, method="GET",
                          url=url + (_query(params) if params else ""), request_id=response.request_id,
                          correlation_id=correlation_id, http_status=response.http_status,
                          status_code=response.status_code, error=error, sent_at=sent_at,
                          duration_ms=round((time.perf_counter() - started) * 1000, 3)))
        return response

    def _commit(self, *aggregates) -> None:
        uow = UnitOfWork(self.app)
        uow.add(*aggregates)
        uow.commit()

    # The objects of a page ------------------------------------------------------------
    def _page(self, party: Party, result: ModuleSync, data: list, request_id: str, correlation_id: str) -> None:
        """Check every object, then store the accepted ones in one unit of work (their object locks
        taken in lock order). A conflict (a push of one of them committed meanwhile, or one object
        twice in the page) stores the page again one object at a time."""
        mod, accepted = result.module, []
        for body in data:
            result.received += 1
            reason = self._check(party, mod, body)
            if reason is None and self.accept is not None:
                reason = self.accept(mod, _owner_key(mod, body), body)
            if reason is not None:
                _refuse(result, reason)
            else:
                accepted.append(body)
        if not accepted:
            return
        uow, tally, refusals = UnitOfWork(self.app), [], []
        try:
            uow.hold_all(_class(mod).key_of(*_ids(mod, body)) for body in accepted)
            for body in accepted:
                try:
                    tally.append(self._apply(uow, mod, body, request_id, correlation_id))
                except OcpiError as exc:  # e.g. a CDR already held with other content
                    refusals.append(f"{_describe(mod, body)}: {exc}")
            uow.commit()
        except (PgIntegrityError, IntegrityError):
            uow.discard()
            for body in accepted:
                self._object(result, body, request_id, correlation_id)
            return
        finally:
            uow.release()
        for outcome in tally:
            setattr(result, outcome, getattr(result, outcome) + 1)
        for reason in refusals:
            _refuse(result, reason)

    def _object(self, result: ModuleSync, body: dict, request_id: str, correlation_id: str) -> None:
        """One object in a unit of work of its own, applied again if a push wins the race."""
        mod = result.module
        for attempt in range(CONFLICT_RETRIES + 1):
            uow = UnitOfWork(self.app)
            try:
                outcome = self._apply(uow, mod, body, request_id, correlation_id)
                uow.commit()
            except (PgIntegrityError, IntegrityError) as exc:
                uow.discard()
                if attempt == CONFLICT_RETRIES:
                    raise SyncError(f"{_describe(mod, body)}: could not be stored: {exc}") from exc
                time.sleep(0.01 * (attempt + 1))
                continue
            except OcpiError as exc:
                _refuse(result, f"{_describe(mod, body)}: {exc}")
                return
            finally:
                uow.release()
            setattr(result, outcome, getattr(result, outcome) + 1)
            return

    def _check(self, party: Party, mod: str, body: object) -> str | None:
        """Why the hub refuses this object (the push path's checks), or None."""
        if not isinstance(body, dict):
            return f"an item of data is not an object: {str(body)[:80]}"
        try:
            from hub.ocpi.validation import validate

            validate(MODELS[mod], body)
        except OcpiError as exc:
            return f"{_describe(mod, body)}: {exc}"
        owner_cc, owner_pid = str(body.get("country_code", "")).upper(), str(body.get("party_id", "")).upper()
        owners = self._owners.get((party.key, mod))
        if owners is None:  # once per run and module
            platform = self.app.platform(party.platform_id)
            owners = self._owners[(party.key, mod)] = {
                tuple(k.split("/")[:2]) for k in platform.party_keys if k.endswith("/" + MODULES[mod].owner)}
        if (owner_cc, owner_pid) not in owners:
            return (f"{_describe(mod, body)}: {owner_cc}/{owner_pid} is not a {MODULES[mod].owner} party of"
                    f" {party.key}'s platform; the hub stores only a platform's own objects")
        return None

    def _apply(self, uow: UnitOfWork, mod: str, body: dict, request_id: str, correlation_id: str) -> str:
        """Hand one pulled object to the push path in ``uow``; returns the counter it goes to:
        ``stored``, ``unchanged`` (equal to the hub's copy, or a CDR received before) or ``stale``."""
        cc, pid, object_id = _ids(mod, body)
        held = self.pushes.load(uow, _class(mod), cc, pid, object_id)
        if held is not None and held.body == body and not getattr(held, "deleted", False):
            return "unchanged"
        if mod == "tokens":
            path = f"/{cc}/{pid}/{body['uid']}?type={body['type']}"
        else:
            path = "" if mod == "cdrs" else f"/{cc}/{pid}/{object_id}"
        message = {
            "request_id": request_id, "correlation_id": correlation_id,
            "from": f"{cc.upper()}/{pid.upper()}/{MODULES[mod].owner}", "scenario": "open", "to": None,
            "method": "POST" if mod == "cdrs" else "PUT", "path": path,
            "received_at": format_datetime(datetime.now(UTC)), "received_by": "pull",
        }
        if mod == "cdrs":
            pushed = self.pushes.post_cdr(uow, body, message)
        elif mod == "tokens":
            pushed = self.pushes.put_token(uow, cc, pid, body["uid"], body["type"], body, message)
        else:
            pushed = getattr(self.pushes, f"put_{mod[:-1]}")(uow, cc, pid, object_id, body, message)
        return "stale" if pushed.stale else "unchanged" if pushed.repeated else "stored"


def _refuse(result: ModuleSync, reason: str) -> None:
    result.refused += 1
    if len(result.refusals) < 20:
        result.refusals.append(reason)


def _ids(mod: str, body: dict) -> tuple[str, str, str]:
    """``country_code``, ``party_id`` and the hub's object id of a pulled object."""
    object_id = Token.object_id_of(body["uid"], body["type"]) if mod == "tokens" else body["id"]
    return body["country_code"], body["party_id"], object_id


def _class(mod: str):
    from hub.domain import objects

    return {"locations": objects.Location, "tariffs": objects.Tariff, "sessions": objects.Session,
            "cdrs": objects.Cdr, "tokens": objects.Token}[mod]


def _owner_key(mod: str, body: dict) -> str:
    return f"{str(body.get('country_code')).upper()}/{str(body.get('party_id')).upper()}/{MODULES[mod].owner}"


def _describe(mod: str, body: object) -> str:
    if not isinstance(body, dict):
        return mod
    ident = body.get("uid") if mod == "tokens" else body.get("id")
    return f"{mod[:-1]} {body.get('country_code')}/{body.get('party_id')}/{ident}"


def _header(headers: dict, name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _second(value: str) -> str:
    """An OCPI DateTime to whole seconds (rounded down: a pull from it misses nothing)."""
    return value[:19] + "Z" if len(value) >= 19 else value


def _query(params: dict) -> str:
    from urllib.parse import urlencode

    return "?" + urlencode(params)
