"""``hub projections rebuild --processes 2``: the log split between processes, the same views.

The log: a recorded log with every event type of every projection
(``tests/integration/test_projection_batches.py``) and enough Locations with
EVSE updates that the command does split it. The live views are built by the
live followers (the worker's path). The command runs as an operator runs it, a
process; killed with SIGKILL in the middle of a rebuild in two processes, it
leaves the live views as they were, and run again it ends with the views of a
single-process rebuild and of the live followers.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile

import pytest

from hub.domain.objects import Location
from hub.infra.eventlog import PARTITION_FROM, EventLog
from hub.services.application import Hub
from projections import all_projections
from tests import ocpi_examples as ex
from tests.cli import run_hub
from tests.conftest import ROOT
from tests.e2e.test_rebuild import query, structure, view_rows
from tests.integration.test_projection_batches import at, message, record

LOCATIONS = PARTITION_FROM * 2 // 10 + 200  # × 10 events: more than 2 processes' worth


def bulk(app: Hub) -> None:
    """Locations, each pushed and then updated 9 times, saved 20 at a time (a save of 100 such
    Locations, 1,000 events of 3.4 kB in one pipeline, hung on the embedded PostgreSQL's socket)."""
    template = ex.location(last_updated=at(1))
    evses = [e["uid"] for e in template["evses"]]
    for start in range(0, LOCATIONS, 20):
        batch = []
        for n in range(start, min(start + 20, LOCATIONS)):
            location = Location("IN", "ECP", f"BULK{n:05d}", {**template, "id": f"BULK{n:05d}"},
                                message("PUT", f"BULK{n}"))
            for k in range(9):
                location.patch_evse(evses[k % len(evses)], {"status": ("CHARGING", "AVAILABLE")[k % 2],
                                                            "last_updated": at(2 + k)}, message("PATCH", "e"))
            batch.append(location)
        app.save(*batch)


@pytest.fixture
def logged(settings):
    """The log written, and the live views built by the live followers."""
    app = Hub(settings, settings.database_url)
    try:
        record(app, 7)
        bulk(app)
        log = EventLog(app)
        for projection in all_projections():
            log.catch_up(projection)
    finally:
        app.close()
    return settings


def files_of(pid: int) -> list:
    """The rebuild files of the command with process id ``pid``."""
    return glob.glob(os.path.join(tempfile.gettempdir(), f"hub-rebuild-{pid}-*"))


def test_a_rebuild_in_two_processes_gives_the_views_of_one_process_and_of_the_live_followers(logged):
    settings = logged
    live, made = view_rows(settings), structure(settings)
    assert len(live["view_objects"]) > LOCATIONS

    # A live row damaged: each rebuild must put it right.
    query(settings, "UPDATE view_objects SET body = '{}'::json WHERE object_id = 'BULK00007'")
    two = run_hub(settings, "projections", "rebuild", "--processes", "2")
    objects = two.stdout.split("objects: ")[1].splitlines()[0]
    assert "in 2 processes" in objects and "1 rows differed" in objects, two.stdout
    assert view_rows(settings) == live

    query(settings, "UPDATE view_objects SET body = '{}'::json WHERE object_id = 'BULK00007'")
    run_hub(settings, "projections", "rebuild", "--processes", "1")
    assert view_rows(settings) == live
    assert structure(settings) == made  # nothing left beside the live tables


def test_a_rebuild_killed_midway_leaves_the_live_views_and_runs_again(logged):
    settings = logged
    live, made = view_rows(settings), structure(settings)
    query(settings, "UPDATE view_objects SET body = '{}'::json WHERE object_id = 'BULK00011'")
    damaged = view_rows(settings)

    env = {**os.environ, **{k: v for k, v in settings.extra.items() if k.startswith("HUB_")}}
    command = subprocess.Popen([sys.executable, "-m", "hub", "projections", "rebuild", "objects", "--processes", "2",
                                "--progress"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = b""
        while b"events/s" not in seen:  # the partitions applied their first batches
            chunk = os.read(command.stderr.fileno(), 4096)
            assert chunk, f"the command ended first: {seen[-2000:]!r}"
            seen += chunk
        os.kill(command.pid, signal.SIGKILL)
    finally:
        command.wait(timeout=30)
    assert b"rebuilt from" not in command.stdout.read()  # killed before the swap
    assert view_rows(settings) == damaged  # nothing live changed

    # Orphaned partition processes end at their next batch; the next rebuild waits for them.
    again = run_hub(settings, "projections", "rebuild", "--processes", "2")
    assert "in 2 processes" in again.stdout.split("objects: ")[1].splitlines()[0], again.stdout
    assert view_rows(settings) == live
    assert structure(settings) == made
    assert files_of(command.pid) == []  # the killed command's files were removed
