"""Records as a timeline of readable steps (``hub audit trace`` and ``history``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg

from hub.audit.records import parse_moment


def delivery_recipients(conn, delivery_ids: list[int]) -> dict[int, str]:
    """The party each delivery was for, from the outbox (when it is there)."""
    if not delivery_ids:
        return {}
    try:
        rows = conn.execute("SELECT id, recipient FROM hub_deliveries WHERE id = ANY(%s)",
                            (sorted(set(delivery_ids)),)).fetchall()
    except psycopg.errors.UndefinedTable:
        return {}
    return {row[0]: row[1] for row in rows if row[1]}


def _sort_moment(text: str) -> datetime:
    try:
        return parse_moment(text)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)


def _ocpi_outcome(http_status, status_code, message=None, duration_ms=None) -> str:
    text = f"HTTP {http_status if http_status is not None else '-'}"
    text += f", status {status_code if status_code is not None else '-'}"
    if message:
        text += f": {message}"
    if duration_ms is not None:
        text += f" ({float(duration_ms):.1f} ms)"
    return text


CALL_STEPS = {"delivery": "delivered", "realtime": "forwarded", "registration": "called",
              "still-alive": "probed"}
COMMAND_STEPS = {"Command.Requested": "command stored", "Command.Answered": "command answered",
                 "Command.Failed": "command failed", "Command.ResultReceived": "result received",
                 "Command.TimedOut": "command timed out"}
PROFILE_STEPS = {"ProfileRequest.Requested": "profile request stored", "ProfileRequest.Answered": "profile answered",
                 "ProfileRequest.Failed": "profile failed", "ProfileRequest.ResultReceived": "result received",
                 "ProfileUpdate.Received": "profile update stored"}


def step_of(record: dict, recipients: dict[int, str] | None = None) -> dict:
    """One record as a timeline step: ``at``, ``step``, ``who``, ``what``, ``outcome``."""
    data, topic = record["data"], record["topic"]
    at, who, what, outcome = record["recorded_at"], "", topic, ""
    if topic == "Request.Answered":
        at = data.get("received_at") or at
        step = "received"
        sender = data.get("from_party") or ",".join(record["parties"]) or "?"
        who = f"{sender} -> {data.get('to_party') or 'hub'}"
        what = f"{data.get('method')} {data.get('path')}" + (f"?{data['query']}" if data.get("query") else "")
        outcome = "answered " + _ocpi_outcome(data.get("http_status"), data.get("status_code"),
                                              data.get("status_message"), data.get("duration_ms"))
    elif topic == "Call.Made":
        at = data.get("sent_at") or at
        realtime = data.get("purpose") == "realtime"
        if realtime:  # the partner's envelope was relayed, whatever its status code: it answered
            ok = data.get("http_status") is not None and data.get("status_code") is not None
        else:
            ok = (data.get("http_status") or 0) // 100 == 2 and data.get("status_code") == 1000
        step = CALL_STEPS.get(data.get("purpose"), data.get("purpose") or "called")
        if not ok:
            step = {"delivered": "delivery failed", "forwarded": "forward failed"}.get(step, step + " (failed)")
        recipient = (recipients or {}).get(data.get("delivery_id")) or ",".join(record["parties"]) or "?"
        who = f"hub -> {recipient}"
        what = f"{data.get('method')} {data.get('url')}"
        if data.get("delivery_id") is not None:
            what += f" (delivery {data['delivery_id']}, attempt {data.get('attempt')})"
        outcome = _ocpi_outcome(data.get("http_status"), data.get("status_code"), data.get("error"),
                                data.get("duration_ms"))
        if realtime and ok:
            outcome = "answered " + outcome
        facts = [f"{k} {v if isinstance(v, str) else json.dumps(v)}" for part in ("answer", "sent")
                 if isinstance(data.get(part), dict) for k, v in data[part].items()]
        if facts:
            outcome += ": " + ", ".join(facts)
    elif topic in COMMAND_STEPS:
        step = COMMAND_STEPS[topic]
        if topic == "Command.Requested":
            who = f"{data.get('emsp')} -> {data.get('cpo')}"
            what = str(data.get("command"))
            outcome = "to be forwarded with the hub's response_url"
        elif topic == "Command.Answered":
            outcome = f"{_ocpi_outcome(data.get('http_status'), data.get('status_code'))}, result {data.get('result')}"
        elif topic == "Command.Failed":
            outcome = f"status {data.get('status_code')}: {data.get('reason')}"
        elif topic == "Command.ResultReceived":
            result = data.get("result") if isinstance(data.get("result"), dict) else {}
            outcome = f"result {result.get('result')}"
        elif topic == "Command.TimedOut":
            outcome = f"no result by {data.get('at')}"
    elif topic in PROFILE_STEPS:  # ChargingProfiles (hub/domain/chargingprofiles.py)
        step = PROFILE_STEPS[topic]
        if topic == "ProfileRequest.Requested":
            who = f"{data.get('requester')} -> {data.get('cpo')}"
            what = f"{data.get('method')} session {data.get('session_id')}"
            outcome = "to be forwarded with the hub's response_url"
        elif topic == "ProfileRequest.Answered":
            outcome = f"{_ocpi_outcome(data.get('http_status'), data.get('status_code'))}, result {data.get('result')}"
        elif topic == "ProfileRequest.Failed":
            outcome = f"status {data.get('status_code')}: {data.get('reason')}"
        elif topic == "ProfileRequest.ResultReceived":
            result = data.get("result") if isinstance(data.get("result"), dict) else {}
            who, outcome = f"{data.get('cpo')} -> {data.get('requester')}", f"result {result.get('result')}"
        else:
            who = f"{data.get('cpo')} -> {data.get('recipient')}"
            what, outcome = f"ActiveChargingProfile session {data.get('session_id')}", "to be delivered"
    elif topic in ("Delivery.Parked", "Delivery.Collapsed"):
        ids = ", ".join(str(i) for i in data.get("delivery_ids") or [])
        who = f"hub -> {data.get('recipient') or ','.join(record['parties']) or '?'}"
        what = f"{data.get('module')} {data.get('object_key')} (deliveries {ids})"
        if topic == "Delivery.Parked":
            step, outcome = "parked", f"left for the operator: {data.get('reason')}"
        else:
            step, outcome = "collapsed", str(data.get("reason"))
    elif record.get("object"):
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        step = {"StalePushIgnored": "ignored (stale)", "RepeatIgnored": "ignored (repeat)"}.get(
            topic.rsplit(".", 1)[-1], "stored")
        if message.get("received_by") == "pull":  # hub/services/sync.py: the hub GOT it from the owner
            who = f"hub pulled from {message.get('from')} (open routing)"
        elif message:
            who = f"{message.get('from')} -> {message.get('to') or 'open routing'} ({message.get('scenario')})"
        target = "/".join(str(data[k]) for k in ("evse_uid", "connector_id") if data.get(k))
        what = f"{topic} {record['object']}" + (f" {target}" if target else "") + f" v{record['version']}"
        if step == "stored":
            outcome = "validated and stored"
        elif step == "ignored (stale)":
            outcome = f"older than the hub's copy ({data.get('pushed_last_updated')}): not applied, not forwarded"
        else:
            outcome = "already received: not stored twice, not forwarded"
    elif topic == "OperatorAction.Taken":
        step = "operator action"
        who = f"operator {data.get('operator')}"
        arguments = data.get("arguments") if isinstance(data.get("arguments"), dict) else {}
        what = f"hub {data.get('command')}" + "".join(
            f" --{k.replace('_', '-')} {v}" for k, v in arguments.items() if v not in (None, "", False))
        outcome = str(data.get("outcome") or "")
    else:
        step = topic
        who = ",".join(record["parties"])
    return {"at": at, "position": record["position"], "step": step, "who": who, "what": what,
            "outcome": outcome, "topic": topic, "record": record}


def timeline_of(records: list[dict], recipients: dict[int, str]) -> list[dict]:
    """Records as readable steps, ordered by when each happened (a request
    by when it was received, a call by when it was sent), then by position.
    ``recipients``: the party of each delivery id (:func:`delivery_recipients`)."""
    unique = {r["position"]: r for r in records}
    steps = [step_of(r, recipients) for r in unique.values()]
    steps.sort(key=lambda s: (_sort_moment(s["at"]), s["position"]))
    return steps


def delivery_ids(records: list[dict]) -> list[int]:
    """The delivery ids the ``Call.Made`` records among ``records`` name."""
    return [r["data"].get("delivery_id") for r in records
            if r["topic"] == "Call.Made" and r["data"].get("delivery_id")]
