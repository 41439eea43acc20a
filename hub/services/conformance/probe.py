"""The probe: calls a partner the way the hub calls it and judges each answer, one row per check.

A row is ``{step, module, interface, verdict, detail, ms}``; ``verdict`` is ``pass``, ``fail``,
``warn`` or ``skip``; ``ms`` the time of the call(s) it judged. Steps, in order: ``versions``,
``details``, ``endpoints`` (well-formed, the same as registered), ``roles`` (each interface the
party's role needs, see :mod:`.expectations`), then per published endpoint ``answers`` (an OCPI
envelope; a Sender's GET status 1000), ``sample`` (a Sender's first page against the 2.2.1 model,
field by field) and ``paging`` (``X-Total-Count``, ``X-Limit``, ``Link``); with ``write``,
``write`` and ``cleanup`` per Receiver (:mod:`.write`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode, urljoin, urlsplit

from pydantic import ValidationError

from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
from hub.domain.modules import MODULES, RECEIVER, SENDER
from hub.domain.sync import next_link
from hub.infra.client import OcpiClient, OcpiResponse, PartnerBadResponse, PartnerCallError
from hub.ocpi import models
from hub.ocpi.envelope import format_datetime
from hub.ocpi.validation import format_errors
from hub.services.conformance.expectations import EXPECTED, REQUIRED, expectations, sensible
from hub.services.conformance.samples import test_id

#: The first page asked of a Sender interface: a small sample.
SAMPLE_LIMIT = 5
#: Pages followed by ``Link`` to check ``X-Total-Count`` against what the pages hold.
MAX_PAGES = 4
#: The 2.2.1 model of each Sender's objects (``credentials``: one object, not a list).
LIST_MODELS = {"locations": models.Location, "tariffs": models.Tariff, "sessions": models.Session,
               "cdrs": models.CDR, "tokens": models.Token}
#: Interfaces with no GET in OCPI: probing them would need a write that acts (a command starts a
#: charge) or a response URL; they are listed as ``skip``.
NO_GET = {("commands", RECEIVER): "POST only, and a command acts on a real charge point",
          ("commands", SENDER): "results are POSTed to the response_url of each command",
          ("chargingprofiles", RECEIVER): "a GET needs a live session and a response_url",
          ("chargingprofiles", SENDER): "results are POSTed to the response_url of each request"}
_JSON = re.compile(r"^application/json\b", re.IGNORECASE)

Row = dict
Progress = Callable[[Row], None]


def header(headers: dict[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


class Stop(Exception):
    """The probe cannot go on (no versions, no 2.2.1): the rows so far say why."""


class Probe:
    def __init__(self, client: OcpiClient, token: str, country_code: str, party_id: str, role: str,
                 *, correlation_id: str, run: str, progress: Progress | None = None,
                 record: Callable[[dict], None] | None = None) -> None:
        self.client, self.token = client, token
        self.role = role
        self.correlation_id = correlation_id
        self.run = run  # the suffix of this run's test ids
        self.progress = progress
        self.record = record
        self.rows: list[Row] = []
        self.details_ms: float | None = None  # the GET of the details the endpoints and roles rows judge
        self.headers = {"OCPI-from-country-code": HUB_COUNTRY_CODE, "OCPI-from-party-id": HUB_PARTY_ID,
                        "OCPI-to-country-code": country_code, "OCPI-to-party-id": party_id}

    # Rows and calls -----------------------------------------------------------------------
    def row(self, step: str, module: str | None, interface: str | None, verdict: str, detail: str,
            ms: float | None = None) -> Row:
        row = {"step": step, "module": module, "interface": interface, "verdict": verdict,
               "detail": detail, "ms": None if ms is None else round(ms, 1)}
        self.rows.append(row)
        if self.progress is not None:
            self.progress(row)
        return row

    def call(self, module: str, method: str, url: str, *, json: object = None, params: dict | None = None):
        """(answer or None, the error if the partner gave no OCPI answer, ms). Each call is handed to
        ``record`` (the audit trail's ``Call.Made``, purpose ``check``)."""
        sent_at = format_datetime(datetime.now(UTC))
        try:
            answer = self.client.request(method, url, self.token, json=json, params=params,
                                         headers=self.headers, correlation_id=self.correlation_id)
        except PartnerCallError as exc:
            answer, error, ms = None, exc, exc.elapsed_ms
        else:
            error, ms = None, answer.elapsed_ms
        if self.record is not None:
            self.record({"module": module, "method": method, "url": url + (f"?{urlencode(params)}" if params else ""),
                         "request_id": answer.request_id if answer else error.request_id,
                         "correlation_id": self.correlation_id,
                         "http_status": answer.http_status if answer else error.http_status,
                         "status_code": answer.status_code if answer else None,
                         "error": str(error) if error else None, "sent_at": sent_at, "duration_ms": ms})
        return answer, error, ms

    @staticmethod
    def not_ocpi(exc: PartnerCallError) -> str:
        """Why an answer was no OCPI answer, naming its HTTP status and content type."""
        if isinstance(exc, PartnerBadResponse) and exc.http_status is not None:
            kind = header(exc.headers, "Content-Type") or "no content type"
            return f"HTTP {exc.http_status} ({kind}), not an OCPI envelope"
        return str(exc)

    @staticmethod
    def envelope_problems(answer: OcpiResponse) -> list[str]:
        """What makes an answer not a well-formed OCPI envelope (empty: it is one)."""
        problems = []
        if not isinstance(answer.body.get("status_code"), int):
            problems.append("status_code missing or not a number")
        if not isinstance(answer.body.get("timestamp"), str):
            problems.append("timestamp missing")
        kind = header(answer.headers, "Content-Type")
        if not kind or not _JSON.match(kind):
            problems.append(f"Content-Type {kind or '(none)'}, not application/json")
        return problems

    # Versions and details -----------------------------------------------------------------
    def versions(self, versions_url: str) -> str:
        """The partner's 2.2.1 details URL, from its versions list."""
        answer, error, ms = self.call("versions", "GET", versions_url)
        if error is not None:
            self.row("versions", "versions", None, "fail", f"GET {versions_url}: {self.not_ocpi(error)}", ms)
            raise Stop
        problems = self.envelope_problems(answer)
        data = answer.data
        if answer.status_code != 1000 or not isinstance(data, list):
            problems.append(f"status {answer.status_code}, data {type(data).__name__}: expected 1000 and a list")
        bad = [m for i, item in enumerate(data if isinstance(data, list) else [])
               for m in _errors(models.Version, item, f"data[{i}]")]
        listed = [str(v.get("version")) for v in data if isinstance(v, dict)] if isinstance(data, list) else []
        url = next((v.get("url") for v in data if isinstance(v, dict) and v.get("version") == "2.2.1"
                    and isinstance(v.get("url"), str)), None) if isinstance(data, list) else None
        if url is None:
            self.row("versions", "versions", None, "fail",
                     f"the versions list has no 2.2.1 (it lists {', '.join(listed) or 'nothing'})", ms)
            raise Stop
        if problems or bad:
            self.row("versions", "versions", None, "fail", "; ".join(problems + bad), ms)
        else:
            self.row("versions", "versions", None, "pass", f"lists {', '.join(listed)}", ms)
        return url

    def details(self, details_url: str) -> list[dict]:
        """The partner's 2.2.1 endpoints, as it publishes them now."""
        answer, error, ms = self.call("versions", "GET", details_url)
        self.details_ms = ms
        if error is not None:
            self.row("details", "versions", None, "fail", f"GET {details_url}: {self.not_ocpi(error)}", ms)
            raise Stop
        data = answer.data if isinstance(answer.data, dict) else {}
        problems = self.envelope_problems(answer)
        if answer.status_code != 1000:
            problems.append(f"status {answer.status_code}, expected 1000")
        if data.get("version") != "2.2.1":
            self.row("details", "versions", None, "fail",
                     f"the details at {details_url} are for version {data.get('version')!r}, not 2.2.1", ms)
            raise Stop
        problems += _errors(models.VersionDetails, data, "data")
        listed = data.get("endpoints") if isinstance(data.get("endpoints"), list) else []
        endpoints = [e for e in listed if isinstance(e, dict)  # the others failed the model above
                     and isinstance(e.get("identifier"), str) and isinstance(e.get("role"), str)]
        verdict = "fail" if problems else "pass"
        self.row("details", "versions", None, verdict, "; ".join(problems) or f"{len(endpoints)} endpoints", ms)
        return endpoints

    def endpoints(self, endpoints: list[dict], registered: list[dict]) -> None:
        bad, seen = [], set()
        for item in endpoints:
            url, pair = str(item.get("url") or ""), (item.get("identifier"), item.get("role"))
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                bad.append(f"{pair[0]} {pair[1]}: url {url!r} is not an absolute http(s) URL")
            if pair in seen:
                bad.append(f"{pair[0]} {pair[1]} is published twice")
            seen.add(pair)
        if bad:
            self.row("endpoints", None, None, "fail", "; ".join(bad), self.details_ms)
            return
        now = sorted(str((e.get("identifier"), e.get("role"), e.get("url"))) for e in endpoints)
        then = sorted(str((e.get("identifier"), e.get("role"), e.get("url"))) for e in registered)
        if now != then:
            self.row("endpoints", None, None, "warn", "they differ from those registered: the partner should"
                     " PUT its credentials again so the hub uses the new ones", self.details_ms)
        else:
            self.row("endpoints", None, None, "pass", "well-formed, the same as registered", self.details_ms)

    def roles(self, endpoints: list[dict], platform_roles: list[str]) -> None:
        """Each interface the party's role needs, and any published that none of its platform's roles uses."""
        published = {(e.get("identifier"), e.get("role")) for e in endpoints}
        for want in expectations(self.role):
            if want.met_by(published):
                self.row("roles", want.module, want.interface, "pass", f"published: {want.why}", self.details_ms)
            elif want.need == REQUIRED:
                self.row("roles", want.module, want.interface, "fail", f"missing, required of a party of role"
                         f" {self.role}: {want.why}", self.details_ms)
            elif want.need == EXPECTED:
                self.row("roles", want.module, want.interface, "warn", f"missing: {want.why}", self.details_ms)
        fits = sensible(platform_roles or [self.role])
        for module, interface in sorted(published - fits, key=str):
            if module in MODULES:
                self.row("roles", module, interface, "warn", f"published, but no role of this platform"
                         f" ({', '.join(platform_roles or [self.role])}) offers {module} {interface} in OCPI",
                         self.details_ms)

    # Modules ----------------------------------------------------------------------------------
    def module(self, endpoint: dict) -> None:
        module, interface, url = endpoint.get("identifier"), endpoint.get("role"), endpoint.get("url")
        if not isinstance(url, str) or not urlsplit(url).netloc:
            self.row("answers", module, interface, "fail", f"not probed: its url {url!r} is not a URL")
        elif (module, interface) in NO_GET:
            self.row("answers", module, interface, "skip", f"not probed: {NO_GET[(module, interface)]}")
        elif interface == SENDER and (module in LIST_MODELS or module == "credentials"):
            self.sender(module, url)
        elif interface == RECEIVER:
            self.receiver(module, url)
        else:
            self.row("answers", module, interface, "skip", "not a module of OCPI 2.2.1 the hub knows")

    def sender(self, module: str, url: str) -> None:
        params = None if module == "credentials" else {"offset": "0", "limit": str(SAMPLE_LIMIT)}
        answer, error, ms = self.call(module, "GET", url, params=params)
        if error is not None:
            self.row("answers", module, SENDER, "fail", f"GET {url}: {self.not_ocpi(error)}", ms)
            return
        problems = self.envelope_problems(answer)
        if answer.http_status != 200 or answer.status_code != 1000:
            message = str(answer.body.get("status_message") or "")[:200]
            problems.insert(0, f"HTTP {answer.http_status}, status {answer.status_code}"
                            + (f" ({message})" if message else "") + ": expected 200 and 1000")
        if problems:
            self.row("answers", module, SENDER, "fail", "; ".join(problems), ms)
            return
        self.row("answers", module, SENDER, "pass", f"HTTP 200, status 1000, {header(answer.headers, 'Content-Type')}",
                 ms)
        if module == "credentials":
            bad = _errors(models.Credentials, answer.data, "data")
            self.row("sample", module, SENDER, "fail" if bad else "pass",
                     "; ".join(bad) or "the credentials object is valid 2.2.1", ms)
            return
        data = answer.data if answer.data is not None else []
        if not isinstance(data, list):
            self.row("sample", module, SENDER, "fail", f"data is {type(data).__name__}, expected a list", ms)
            return
        problems, pages, ms, total, limit = self.follow(module, url, answer, len(data))  # ms: every page's GET
        bad = [m for n, page in enumerate([data, *pages]) for i, item in enumerate(page)
               for m in _errors(LIST_MODELS[module], item, f"page {n + 1} data[{i}]" if n else f"data[{i}]")]
        count = len(data) + sum(len(page) for page in pages)
        self.row("sample", module, SENDER, "fail" if bad else "pass",
                 joined(bad) if bad else f"{count} objects of {len(pages) + 1} page(s), every one valid 2.2.1", ms)
        if problems:
            self.row("paging", module, SENDER, "fail", "; ".join(problems), ms)
        else:
            more = f", followed {len(pages) + 1} pages" if pages else ""
            self.row("paging", module, SENDER, "pass", f"X-Total-Count {total}, X-Limit {limit}{more}", ms)

    def follow(self, module: str, url: str, first: OcpiResponse, count: int):
        """The paging of a Sender: ``X-Total-Count`` and ``X-Limit`` on the first page, ``Link`` when
        more pages follow; the pages followed (up to :data:`MAX_PAGES`) must hold what
        ``X-Total-Count`` says. (problems, the data of each page followed, ms, total, X-Limit)."""
        problems: list[str] = []
        total_text, limit_text = header(first.headers, "X-Total-Count"), header(first.headers, "X-Limit")
        link = next_link(header(first.headers, "Link"))
        total = int(total_text) if total_text and total_text.strip().isdigit() else None
        if total is None:
            problems.append(f"X-Total-Count {'missing' if total_text is None else repr(total_text)}: required,"
                            " a whole number")
        if limit_text is None or not limit_text.strip().isdigit():
            problems.append(f"X-Limit {'missing' if limit_text is None else repr(limit_text)}: required,"
                            " a whole number")
        elif count > int(limit_text):
            problems.append(f"the page holds {count} objects, more than its X-Limit {limit_text}")
        if total is not None and total < count:
            problems.append(f"X-Total-Count {total} but the first page alone holds {count} objects")
        if total is not None and total > count and not link:
            problems.append(f'Link missing: X-Total-Count {total}, the first page holds {count}, and no Link'
                            ' rel="next" to the rest')
        ms, seen, pages = first.elapsed_ms, count, []
        while link and not problems and len(pages) + 1 < MAX_PAGES:
            if not urlsplit(link).scheme:
                problems.append(f"Link {link!r} is not an absolute URL")
                break
            answer, error, took = self.call(module, "GET", urljoin(url, link))
            ms += took
            if error is not None or answer.status_code != 1000 or not isinstance(answer.data or [], list):
                why = self.not_ocpi(error) if error else f"status {answer.status_code}"
                problems.append(f"the next page (Link) does not answer: {why}")
                break
            pages.append(answer.data or [])
            seen += len(pages[-1])
            link = next_link(header(answer.headers, "Link"))
        if not problems and not link and total is not None and seen != total:
            problems.append(f"X-Total-Count {total} but the pages hold {seen} objects")
        return problems, pages, ms, total, limit_text

    def receiver(self, module: str, url: str) -> None:
        """A GET of an object the partner cannot have must get an envelope (2003 unknown is fine)."""
        from hub.ocpi.urls import endpoint_url

        missing = test_id("NONE", self.run)
        path = {"hubclientinfo": f"/{HUB_COUNTRY_CODE}/{HUB_PARTY_ID}", "cdrs": f"/{missing}",
                "tokens": f"/{HUB_COUNTRY_CODE}/{HUB_PARTY_ID}/{missing}?type=RFID"}.get(
                    module, f"/{HUB_COUNTRY_CODE}/{HUB_PARTY_ID}/{missing}")
        target = endpoint_url(url, path)
        answer, error, ms = self.call(module, "GET", target)
        if error is not None:
            self.row("answers", module, RECEIVER, "fail", f"GET {target}: {self.not_ocpi(error)}", ms)
            return
        problems = self.envelope_problems(answer)
        if problems:
            self.row("answers", module, RECEIVER, "fail", f"GET {target}: " + "; ".join(problems), ms)
            return
        message = str(answer.body.get("status_message") or "")[:120]
        self.row("answers", module, RECEIVER, "pass", f"an unknown object: HTTP {answer.http_status}, status"
                 f" {answer.status_code}" + (f" ({message})" if message else ""), ms)


def joined(problems: list[str], most: int = 12) -> str:
    """The first ``most`` problems, then how many more."""
    more = len(problems) - most
    return "; ".join(problems[:most]) + (f"; and {more} more" if more > 0 else "")


def _errors(model, item: object, prefix: str) -> list[str]:
    """Each bad field of ``item`` against ``model``: ``prefix.path: why`` (empty: valid)."""
    if not isinstance(item, dict):
        return [f"{prefix}: expected an object, got {type(item).__name__}"]
    try:
        model.model_validate(item)
    except ValidationError as exc:
        return [f"{prefix}.{part}" if ": " in part else part for part in format_errors(exc).split("; ")]
    return []
