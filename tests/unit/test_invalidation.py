"""The web caches' invalidation rules (hub/infra/invalidation.py), without a database:
the version is read from a counter, time from a hand-moved clock."""

from __future__ import annotations

import re

from hub.infra.invalidation import Freshness, VersionedCache, ddl, freshness_of, register, unregister


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Database:
    """The version row: ``reads`` counts the round trips."""

    def __init__(self) -> None:
        self.version = 7
        self.reads = 0

    def read(self) -> int:
        self.reads += 1
        return self.version


def setup(max_age: float = 1.0):
    clock, db = Clock(), Database()
    return clock, db, Freshness(db.read, max_age, clock)


def test_within_the_bound_the_version_is_not_read_again():
    clock, db, fresh = setup()
    first = fresh.current()
    clock.now += 0.9
    assert fresh.current() == first and db.reads == 1


def test_past_the_bound_a_request_reads_the_version_itself_and_sees_the_change():
    # No listener at all (a dropped connection): the bound still holds.
    clock, db, fresh = setup()
    cache = VersionedCache()
    assert cache.lookup(fresh, "token", lambda: "platform A") == "platform A"
    db.version += 1  # another process revoked it
    clock.now += 0.5
    assert cache.lookup(fresh, "token", lambda: "revoked") == "platform A"  # within the bound
    clock.now += 0.6
    assert cache.lookup(fresh, "token", lambda: "revoked") == "revoked"


def test_a_notification_or_poll_moves_the_version_at_once():
    clock, db, fresh = setup()
    cache = VersionedCache()
    cache.lookup(fresh, "rules", lambda: "allow")
    db.version += 1
    fresh.refresh()  # what the listener thread does on NOTIFY or on its poll
    assert cache.lookup(fresh, "rules", lambda: "deny") == "deny"
    assert db.reads == 2


def test_a_read_that_started_before_a_newer_one_does_not_win():
    clock, db, fresh = setup()
    fresh.observe(9, started_at=clock.now)
    fresh.observe(8, started_at=clock.now - 0.1)  # slower, older read finishing late
    assert fresh.version[0] == 9


def test_the_bound_counts_from_when_the_read_started():
    clock, db, fresh = setup()
    fresh.observe(7, started_at=clock.now - 0.8)  # a read that took 0.8 s to come back
    clock.now += 0.3
    fresh.current()
    assert db.reads == 1  # 1.1 s since the read started: read again


def test_local_invalidation_forgets_everything_cached_in_this_process():
    clock, db, fresh = setup()
    cache = VersionedCache()
    cache.lookup(fresh, "caller", lambda: "old")
    fresh.invalidate()  # this process changed the views (credentials handler catch-up)
    assert cache.lookup(fresh, "caller", lambda: "new") == "new"
    assert db.reads == 1


def test_values_read_under_a_version_that_is_gone_are_not_kept():
    cache = VersionedCache()
    assert cache.get((1, 0), "k") is not None  # the miss marker; the cache now holds version 1
    cache.get((2, 0), "other")
    cache.put((1, 0), "k", "stale")
    assert len(cache) == 0


def test_unknown_answers_are_not_kept_when_told_so():
    clock, db, fresh = setup()
    cache = VersionedCache()
    loads = []
    for _ in range(3):
        assert cache.lookup(fresh, "unknown token", lambda: loads.append(1), keep=lambda v: v is not None) is None
    assert len(loads) == 3


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    clock, db, fresh = setup()
    cache = VersionedCache(maxsize=3)
    for key in "abc":
        cache.lookup(fresh, key, lambda k=key: k.upper())
    cache.lookup(fresh, "a", lambda: "reloaded")  # a is now the most recent
    cache.lookup(fresh, "d", lambda: "D")
    assert len(cache) == 3
    assert cache.lookup(fresh, "b", lambda: "reloaded") == "reloaded"  # b was dropped
    assert cache.lookup(fresh, "a", lambda: "again") == "A"


def test_max_age_zero_turns_caching_off():
    clock, db, fresh = setup(max_age=0)
    cache = VersionedCache()
    values = iter(["one", "two"])
    assert cache.lookup(fresh, "k", lambda: next(values)) == "one"
    assert cache.lookup(fresh, "k", lambda: next(values)) == "two"
    fresh.listen(lambda: None, "s")  # no listener either
    assert fresh._thread is None


def test_only_registered_pools_are_cached():
    pool, other = object(), object()
    clock, db, fresh = setup()
    register(pool, fresh)
    try:
        assert freshness_of(pool) is fresh
        assert freshness_of(other) is None  # the worker and the CLI always read the views
    finally:
        unregister(pool)
    assert freshness_of(pool) is None


def test_ddl_watches_what_the_caches_hold_and_not_last_seen():
    statements = ddl({"view_platforms": ("state", "partner_token"), "view_parties": ()})
    text = "\n".join(statements)
    assert "AFTER INSERT OR UPDATE OF state, partner_token OR DELETE ON view_platforms" in text
    assert "AFTER INSERT OR UPDATE OR DELETE ON view_parties" in text
    assert "DEFERRABLE INITIALLY DEFERRED" in text and "pg_notify('hub_cache'" in text
    # A follower's rebuild swaps the tables its DDL creates "IF NOT EXISTS": never the version row.
    assert not re.search(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS", text, re.I)



def test_a_change_made_in_this_process_is_read_as_soon_as_it_is_committed():
    # The follower marks the caches before its transaction commits; requests then read the
    # version each time (one round trip) for max_age, and the first after the commit sees it.
    clock, db, fresh = setup()
    cache = VersionedCache()
    cache.lookup(fresh, "party", lambda: "CONNECTED")
    fresh.suspect()
    clock.now += 0.01
    assert cache.lookup(fresh, "party", lambda: "CONNECTED") == "CONNECTED"  # not committed yet
    db.version += 1  # the commit
    clock.now += 0.01
    assert cache.lookup(fresh, "party", lambda: "OFFLINE") == "OFFLINE"
    reads = db.reads
    clock.now += 1.5  # the window is over: back to one read per max_age
    fresh.current()
    fresh.current()
    assert db.reads == reads + 1
