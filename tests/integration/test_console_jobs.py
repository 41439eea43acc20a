"""The console's background verification: what an operator sees of a job that runs, ends, or
whose web process stopped half-way (docs/console.md, "Audit")."""

from __future__ import annotations

from hub.services.application import Hub
from hub.services.console import Console
from projections import console as reads
from tests.conftest import wait_until


def test_a_verification_runs_to_its_verdict_with_a_heartbeat(settings):
    app = Hub(settings, settings.database_url)
    try:
        console = Console(app, absolute=3600, idle=600)
        job_id = console.start_verify("asha")
        wait_until(lambda: (reads.verification(app, job_id) or {}).get("finished_at") is not None, timeout=60)
        job = reads.verification(app, job_id)
        assert job["ok"] is True and job["interrupted"] is False
        assert reads.last_verification(app)["id"] == job_id
    finally:
        app.close()


def test_a_verification_whose_process_stopped_shows_as_interrupted(settings):
    app = Hub(settings, settings.database_url)
    try:
        with app.pool.connection() as conn:
            # A job that started a minute ago and whose heartbeat stopped 40 s ago: its web process ended.
            (stale,) = conn.execute(
                "INSERT INTO hub_console_jobs (kind, operator, head, started_at, beat_at, progress)"
                " VALUES ('verify', 'asha', 500, now() - interval '60 seconds', now() - interval '40 seconds', 120)"
                " RETURNING id").fetchone()
            # One whose heartbeat is recent: still running somewhere.
            (alive,) = conn.execute(
                "INSERT INTO hub_console_jobs (kind, operator, head, started_at, beat_at, progress)"
                " VALUES ('verify', 'ravi', 500, now() - interval '60 seconds', now() - interval '2 seconds', 80)"
                " RETURNING id").fetchone()
            # A database from before the heartbeat: no beat at all, started long ago.
            (old,) = conn.execute(
                "INSERT INTO hub_console_jobs (kind, operator, head, started_at, beat_at)"
                " VALUES ('verify', 'ravi', 500, now() - interval '1 hour', NULL) RETURNING id").fetchone()
        assert reads.verification(app, stale)["interrupted"] is True
        assert reads.verification(app, stale)["progress"] == 120
        assert reads.verification(app, alive)["interrupted"] is False
        assert reads.verification(app, old)["interrupted"] is True
        # What the audit page shows of it: a final state that says what happened and what to do.
        from handlers.console.base import _templates

        shown = _templates.get_template("_verify.html").render(job=reads.verification(app, stale))
        assert "data-final" in shown and "interrupted at position 120 of 500" in shown
        assert "Verify again" in shown
        assert "verifying" in _templates.get_template("_verify.html").render(job=reads.verification(app, alive))
    finally:
        app.close()
