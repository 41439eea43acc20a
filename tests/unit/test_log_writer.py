"""The worker's log writer: every line logged from many threads is written, whole and in order."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

from hub.infra.logs import BackgroundHandler


def test_lines_from_many_threads_are_written_whole_and_in_order_by_the_time_it_closes():
    stream = io.StringIO()
    handler = BackgroundHandler(stream)
    logger = logging.getLogger("test.log_writer")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        def lane(n: int) -> None:
            for attempt in range(200):
                logger.info("delivery %s attempt %s: delivered", n, attempt,
                            extra={"delivery_id": n, "attempt": attempt})

        threads = [threading.Thread(target=lane, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        logger.removeHandler(handler)
        handler.close()
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(entries) == 8 * 200
    for n in range(8):
        assert [e["attempt"] for e in entries if e["delivery_id"] == n] == list(range(200))
    assert entries[0]["logger"] == "test.log_writer" and entries[0]["level"] == "INFO"
    assert entries[0]["message"] == f"delivery {entries[0]['delivery_id']} attempt 0: delivered"


def test_an_exception_keeps_its_own_field():
    stream = io.StringIO()
    handler = BackgroundHandler(stream)
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, exc_info=True)
        record.exc_info = sys.exc_info()
        handler.handle(record)
    handler.close()
    (entry,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["message"] == "failed" and "ValueError: boom" in entry["exception"]
