"""The web console's logins, sessions and its record of what operators did.

Sessions are rows of ``hub_console_sessions`` (created by ``hub migrate``) keyed by a
SHA-256 of the session id, never the id. Failed logins are counted per account name in
``hub_console_logins`` and throttle further tries (:func:`hub.domain.console.lock_seconds`).
Every login, failed login, logout and console action is an ``OperatorAction`` in the
log with the operator's name (:func:`record`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass

from hub.domain.audit import OperatorAction
from hub.domain.console import (
    SessionTimes,
    csrf_token,
    csrf_valid,
    hash_secret,
    lock_seconds,
    new_session_id,
    secret_matches,
    session_alive,
    session_digest,
)
from hub.services.application import Hub
from hub.services.operators import OperatorError
from hub.services.operators.accounts import get as get_account

log = logging.getLogger(__name__)

CONSOLE_DDL = [
    """CREATE TABLE IF NOT EXISTS hub_console_sessions (
        digest text PRIMARY KEY,
        operator text NOT NULL,
        role text NOT NULL,
        created_at double precision NOT NULL,
        last_seen_at double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS hub_console_sessions_operator ON hub_console_sessions (operator)",
    """CREATE TABLE IF NOT EXISTS hub_console_logins (
        operator text PRIMARY KEY,
        failures integer NOT NULL,
        locked_until double precision NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS hub_console_jobs (
        id bigserial PRIMARY KEY,
        kind text NOT NULL,
        operator text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        progress bigint NOT NULL DEFAULT 0,
        head bigint,
        ok boolean,
        result jsonb,
        beat_at timestamptz DEFAULT now()
    )""",
    # Databases made before the heartbeat: a job of theirs that never finished shows as interrupted.
    "ALTER TABLE hub_console_jobs ADD COLUMN IF NOT EXISTS beat_at timestamptz",
]

JOB_BEAT_SECONDS = 5.0  # a running job's heartbeat; the console calls it interrupted after 6 missed beats



@functools.cache
def _decoy() -> str:
    """Compared against when the name is unknown, so a wrong name costs as long as a wrong secret."""
    return hash_secret("decoy-secret")


class LoginRefused(OperatorError):
    """Wrong name or secret, or too many tries (the message says which, never which part was wrong)."""


@dataclass(frozen=True)
class ConsoleSession:
    session_id: str
    operator: str
    role: str
    csrf: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Console:
    """Logins and sessions against the hub's database (``app.pool``)."""

    def __init__(self, app: Hub, *, absolute: float, idle: float, clock=time.time) -> None:
        self.app = app
        self.absolute = absolute
        self.idle = idle
        self.clock = clock
        self.key = hashlib.sha256(b"console-csrf-key:" + app.settings.resolved_secret_key().encode()).digest()

    # Logging in and out --------------------------------------------------------------
    def login(self, name: str, secret: str, address: str | None = None) -> ConsoleSession:
        name = (name or "").strip().lower()
        now = self.clock()
        with self.app.pool.connection() as conn:
            row = conn.execute("SELECT failures, locked_until FROM hub_console_logins WHERE operator = %s",
                               (name,)).fetchone()
        locked_until = row[1] if row else 0.0
        if locked_until > now:
            self.record("console login", {"address": address}, name, "refused: throttled")
            raise LoginRefused(f"too many failed logins for {name}: try again in {int(locked_until - now) + 1} s")
        account = get_account(self.app, name) if name else None
        if not secret_matches(secret or "", account.secret_hash if account else _decoy()) or account is None:
            name = name[:64]
            with self.app.pool.connection() as conn:  # counted in the database: every web process sees it
                (failures,) = conn.execute(
                    "INSERT INTO hub_console_logins (operator, failures, locked_until) VALUES (%s, 1, 0)"
                    " ON CONFLICT (operator) DO UPDATE SET failures = hub_console_logins.failures + 1"
                    " RETURNING failures", (name,)).fetchone()
                conn.execute("UPDATE hub_console_logins SET locked_until = %s WHERE operator = %s",
                             (now + lock_seconds(failures), name))
            self.record("console login failed", {"address": address}, name or "(none)",
                        f"refused: wrong name or secret ({failures} in a row)")
            raise LoginRefused("wrong operator name or secret")
        session_id = new_session_id()
        with self.app.pool.connection() as conn:
            conn.execute("DELETE FROM hub_console_logins WHERE operator = %s", (name,))
            # Sessions that ended unseen (their browser never came back) go now.
            conn.execute("DELETE FROM hub_console_sessions WHERE created_at < %s OR last_seen_at < %s",
                         (now - self.absolute, now - self.idle))
            conn.execute("INSERT INTO hub_console_sessions (digest, operator, role, created_at, last_seen_at)"
                         " VALUES (%s, %s, %s, %s, %s)", (session_digest(session_id), name, account.role, now, now))
        self.record("console login", {"address": address}, name, "ok")
        return ConsoleSession(session_id, name, account.role, csrf_token(self.key, session_id))

    def logout(self, session: ConsoleSession) -> None:
        with self.app.pool.connection() as conn:
            conn.execute("DELETE FROM hub_console_sessions WHERE digest = %s", (session_digest(session.session_id),))
        self.record("console logout", {}, session.operator, "ok")

    def end_sessions(self, operator: str) -> None:
        """Every session of ``operator`` ends (its account was removed or its secret reset)."""
        with self.app.pool.connection() as conn:
            conn.execute("DELETE FROM hub_console_sessions WHERE operator = %s", (operator,))

    # Each request -------------------------------------------------------------------
    def session(self, session_id: str | None) -> ConsoleSession | None:
        """The live session of this cookie value (its idle clock restarts), else None."""
        if not session_id:
            return None
        digest = session_digest(session_id)
        now = self.clock()
        with self.app.pool.connection() as conn:
            row = conn.execute("SELECT operator, role, created_at, last_seen_at FROM hub_console_sessions"
                               " WHERE digest = %s", (digest,)).fetchone()
            if row is None:
                return None
            if not session_alive(SessionTimes(row[2], row[3]), now, absolute=self.absolute, idle=self.idle):
                conn.execute("DELETE FROM hub_console_sessions WHERE digest = %s", (digest,))
                return None
            conn.execute("UPDATE hub_console_sessions SET last_seen_at = %s WHERE digest = %s", (now, digest))
        return ConsoleSession(session_id, row[0], row[1], csrf_token(self.key, session_id))

    def csrf_ok(self, session: ConsoleSession, sent: str | None) -> bool:
        return csrf_valid(self.key, session.session_id, sent)

    # The record ---------------------------------------------------------------------
    def record(self, command: str, arguments: dict, operator: str, outcome: str | dict,
               correlation_id: str | None = None) -> None:
        if not isinstance(outcome, str):
            outcome = json.dumps(outcome, default=str)
        self.app.save(OperatorAction(command=command, arguments=arguments, operator=operator,
                                     outcome=outcome[:2000], correlation_id=correlation_id))

    # Verification in the background ------------------------------------------------------
    def start_verify(self, operator: str) -> int:
        """Verify the whole log (chain, Merkle tree, checkpoints) in a thread of this process; the
        job's row in ``hub_console_jobs`` shows its progress and result to every web process."""
        with self.app.pool.connection() as conn:
            (job_id,) = conn.execute("INSERT INTO hub_console_jobs (kind, operator, head, beat_at) VALUES ('verify', %s,"
                                     " (SELECT coalesce(max(notification_id), 0) FROM hub_events), now())"
                                     " RETURNING id",
                                     (operator,)).fetchone()
        threading.Thread(target=self._verify, args=(job_id, operator), name=f"console-verify-{job_id}",
                         daemon=True).start()
        return job_id

    def _beat(self, job_id: int, done) -> None:
        """The job's sign of life while it runs: if its web process stops (a restart, a deploy),
        the beats stop and the console shows the job as interrupted instead of running forever."""
        while not done.wait(JOB_BEAT_SECONDS):
            try:
                with self.app.pool.connection() as conn:
                    conn.execute("UPDATE hub_console_jobs SET beat_at = now() WHERE id = %s", (job_id,))
            except Exception:  # a missed beat only makes the page say "interrupted" sooner
                log.warning("console job %s: could not record its heartbeat", job_id, exc_info=True)

    def _verify(self, job_id: int, operator: str) -> None:
        from psycopg.types.json import Jsonb

        from hub.services.operators.audit import verify_chain

        last = [0.0]

        def progress(position: int) -> None:
            if self.clock() - last[0] >= 0.5:
                last[0] = self.clock()
                with self.app.pool.connection() as conn:
                    conn.execute("UPDATE hub_console_jobs SET progress = %s WHERE id = %s", (position, job_id))

        done = threading.Event()
        threading.Thread(target=self._beat, args=(job_id, done), name=f"console-beat-{job_id}", daemon=True).start()
        try:
            verdict = verify_chain(self.app.settings, self.app.database_url, 0, [], [], None, progress)
            ok, result = verdict.ok, verdict.as_dict()
        except Exception as exc:  # the page shows why; the log keeps the action
            ok, result = False, {"ok": False, "problem": f"verification could not run: {exc}"}
        finally:
            done.set()
        with self.app.pool.connection() as conn:
            conn.execute("UPDATE hub_console_jobs SET finished_at = now(), ok = %s, result = %s,"
                         " progress = coalesce(%s, progress) WHERE id = %s",
                         (ok, Jsonb(result), result.get("head_position"), job_id))
        self.record("console audit verify", {"job": job_id}, operator, result)
