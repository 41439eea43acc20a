"""The web process's recorder of answered real-time requests (handlers/context.py), on the
in-memory event store: every record submitted is stored, one failing record costs no other."""

from __future__ import annotations

from handlers.context import Recorder
from hub.domain.audit import Request


def answered(n: int) -> Request:
    return Request(platform_id="p", from_party="IN/CPA/CPO", to_party="IN/EMA/EMSP", module="tokens",
                   interface="SENDER", method="POST", path=f"/ocpi/2.2.1/tokens/sender/U{n}/authorize",
                   query="", request_id=f"r{n}", correlation_id=f"c{n}", http_status=200, status_code=1000,
                   status_message=None, received_at="2026-01-01T00:00:00Z", duration_ms=1.0)


def test_every_submitted_record_is_stored_by_close(app):
    recorder = Recorder(app, pending=3)  # fewer slots than records: submit waits, drops nothing
    records = [answered(n) for n in range(20)]
    for record in records:
        recorder.submit(record.collect_events(), record.path)
    recorder.close()
    stored = [app.repository.get(r.id) for r in records]
    assert [s.request_id for s in stored] == [f"r{n}" for n in range(20)]


def test_a_record_that_cannot_be_stored_costs_no_other(app):
    recorder = Recorder(app)
    first, second = answered(1), answered(2)
    first_events = first.collect_events()
    app.save(*first_events)  # stored already: storing it again fails
    recorder._thread, thread = None, recorder._thread  # submit in this thread, one batch
    recorder._save([(first_events, "the duplicate"), (second.collect_events(), "the good one")])
    recorder._thread = thread
    recorder.close()
    assert app.repository.get(second.id).request_id == "r2"
