"""(CPO) answering the hub's commands: the synchronous ``CommandResponse``, then the
``CommandResult`` POSTed to the hub's ``response_url``, and for START_SESSION and
STOP_SESSION the Session (and CDR) the charge produces."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from hub.ocpi.envelope import envelope
from hub.sandbox import data

log = logging.getLogger("hub.sandbox")

COMMANDS = ("START_SESSION", "STOP_SESSION", "RESERVE_NOW", "CANCEL_RESERVATION", "UNLOCK_CONNECTOR")
#: seconds between the CommandResponse and the CommandResult (a charger answering).
RESULT_AFTER = 0.5
COMMAND_TIMEOUT = 30


def command_answer(partner, command: str, body, headers: dict) -> tuple[int, dict, dict]:
    if command not in COMMANDS:
        return 404, envelope(None, 2000, f"unknown command {command}"), {}
    if not isinstance(body, dict) or not body.get("response_url"):
        return 400, envelope(None, 2001, "response_url: required"), {}
    if partner.fault.mode == "invalid":
        return 200, envelope({"result": "PERHAPS"}), {}  # not a CommandResponseType, no timeout
    sender = (headers.get("OCPI-FROM-COUNTRY-CODE"), headers.get("OCPI-FROM-PARTY-ID"))
    record = {"command": command, "body": body, "from": "/".join(filter(None, sender)), "result": None}
    with partner.lock:
        partner.commands.append(record)
    threading.Thread(target=_finish, args=(partner, command, body, sender if all(sender) else None, record),
                     daemon=True).start()
    return 200, envelope({"result": "ACCEPTED", "timeout": COMMAND_TIMEOUT}), {}


def _finish(partner, command: str, body: dict, sender, record: dict) -> None:
    from hub.sandbox import client

    time.sleep(RESULT_AFTER)
    result = {"result": "ACCEPTED"}
    try:
        if command == "START_SESSION":
            result = _start(partner, body)
        elif command == "STOP_SESSION":
            result = _stop(partner, body)
        record["result"] = result["result"]
        client.post_result(partner, body["response_url"], result, sender)
    except Exception as exc:  # a simulated charger never takes the sandbox down
        record["result"] = f"error: {exc}"
        log.warning("sandbox %s: %s result not sent: %s", partner.key, command, exc)


def _start(partner, body: dict) -> dict:
    from hub.sandbox import client

    location = next((loc for loc in partner.held["locations"] if loc["id"] == body.get("location_id")), None)
    token = body.get("token")
    if location is None or not isinstance(token, dict):
        return {"result": "REJECTED", "message": [{"language": "en", "text": "unknown location"}]}
    session_id = f"{partner.party_id}-S{int(time.time() * 1000) % 10**10}"
    started = data.session((partner.country_code, partner.party_id), location, token, session_id,
                           datetime.now(UTC), 0.0)
    started["auth_method"] = "COMMAND"
    with partner.lock:
        partner.held["sessions"].append(started)
    client.push(partner, "sessions", started)
    return {"result": "ACCEPTED"}


def _stop(partner, body: dict) -> dict:
    from hub.sandbox.runner import finish_session

    with partner.lock:
        session = next((s for s in partner.held["sessions"] if s["id"] == body.get("session_id")), None)
    if session is None or session["status"] != "ACTIVE":
        return {"result": "REJECTED", "message": [{"language": "en", "text": "no such active session"}]}
    finish_session(partner, session)
    return {"result": "ACCEPTED"}
