"""``--write``: send a test object to each Receiver interface of a test party, read it back and
clean it up as far as its module allows (:mod:`.samples`). Rows ``write`` and ``cleanup``."""

from __future__ import annotations

from datetime import UTC, datetime

from hub import HUB_COUNTRY_CODE, HUB_PARTY_ID
from hub.domain.modules import RECEIVER
from hub.ocpi.envelope import format_datetime
from hub.ocpi.urls import endpoint_url
from hub.services.conformance import samples
from hub.services.conformance.probe import Probe

#: The Receivers a test object can be sent to, and the test id's kind.
WRITABLE = {"locations": "LOC", "tariffs": "TRF", "tokens": "TOK", "sessions": "SES", "cdrs": "CDR"}


def _now() -> str:
    return format_datetime(datetime.now(UTC))


def write(probe: Probe, module: str, url: str) -> None:
    """PUT (CDRs: POST) one test object; it must be accepted (status 1000), then cleaned up."""
    if module not in WRITABLE:
        return
    object_id = samples.test_id(WRITABLE[module], probe.run)
    now = _now()
    owner = f"/{HUB_COUNTRY_CODE}/{HUB_PARTY_ID}/{object_id}"
    body = {"locations": samples.location, "tariffs": samples.tariff, "tokens": samples.token,
            "sessions": samples.session, "cdrs": samples.cdr}[module](object_id, now)
    if module == "cdrs":
        method, target = "POST", endpoint_url(url)
    else:
        method, target = "PUT", endpoint_url(url, owner + ("?type=RFID" if module == "tokens" else ""))
    answer, error, ms = probe.call(module, method, target, json=body)
    if error is not None:
        probe.row("write", module, RECEIVER, "fail", f"{method} {target}: {probe.not_ocpi(error)}", ms)
        return
    problems = probe.envelope_problems(answer)
    if answer.status_code != 1000 or not 200 <= answer.http_status < 300:
        message = str(answer.body.get("status_message") or "")[:200]
        probe.row("write", module, RECEIVER, "fail", f"refused a well-formed test object {object_id}: HTTP"
                  f" {answer.http_status}, status {answer.status_code}" + (f" ({message})" if message else ""), ms)
        return
    if problems:
        probe.row("write", module, RECEIVER, "fail", f"accepted {object_id}, but " + "; ".join(problems), ms)
    else:
        probe.row("write", module, RECEIVER, "pass", f"accepted {object_id} ({method}, status 1000)", ms)
    _cleanup(probe, module, url, owner, object_id)


def _cleanup(probe: Probe, module: str, url: str, owner: str, object_id: str) -> None:
    now = _now()
    if module == "cdrs":
        probe.row("cleanup", module, RECEIVER, "warn", f"a CDR cannot be withdrawn in OCPI: {object_id} stays"
                  " at the partner (its remark says it is a test; ask them to drop it)")
        return
    if module == "tariffs":
        method, target, body, what = "DELETE", endpoint_url(url, owner), None, "deleted"
    elif module == "locations":
        method, target, body = "PUT", endpoint_url(url, owner), samples.location(object_id, now, removed=True)
        what = "unpublished, its EVSE REMOVED (a Location cannot be deleted in OCPI)"
    elif module == "tokens":
        method, target = "PATCH", endpoint_url(url, owner + "?type=RFID")
        body, what = {"valid": False, "last_updated": now}, "made invalid (a Token cannot be deleted in OCPI)"
    else:
        method, target = "PATCH", endpoint_url(url, owner)
        body, what = {"status": "INVALID", "last_updated": now}, "declared INVALID, never billed"
    answer, error, ms = probe.call(module, method, target, json=body)
    if error is not None:
        probe.row("cleanup", module, RECEIVER, "warn", f"{method} {target}: {probe.not_ocpi(error)};"
                  f" {object_id} stays at the partner", ms)
    elif answer.status_code != 1000:
        probe.row("cleanup", module, RECEIVER, "warn", f"{method} {object_id}: HTTP {answer.http_status}, status"
                  f" {answer.status_code}; it stays at the partner", ms)
    else:
        probe.row("cleanup", module, RECEIVER, "pass", f"{object_id} {what}", ms)
