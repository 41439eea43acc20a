"""The real-time bulkhead and circuit (hub/services/bulkhead.py): pure rules, a fake clock."""

from __future__ import annotations

import pytest

from hub.ocpi.errors import HubError
from hub.services.bulkhead import Bulkheads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def refused(bulkheads: Bulkheads, platform: str = "p1") -> HubError:
    with pytest.raises(HubError) as caught, bulkheads.call(platform, "IN/EMP/EMSP"):
        pass
    return caught.value


def fail(bulkheads: Bulkheads, platform: str = "p1") -> None:
    with bulkheads.call(platform, "IN/EMP/EMSP") as done:
        done(False)


def test_calls_beyond_the_limit_are_refused_at_once_with_4003_and_other_platforms_are_not():
    bulkheads = Bulkheads(limit=2, failures=0, open_seconds=10)
    with bulkheads.call("p1", "IN/EMP/EMSP"), bulkheads.call("p1", "IN/EMP/EMSP"):
        error = refused(bulkheads)
        assert error.status_code == 4003
        assert "HUB_REALTIME_CONCURRENCY=2" in error.message and "IN/EMP/EMSP" in error.message
        with bulkheads.call("p2", "IN/OTH/EMSP"):  # another platform has its own slots
            pass
    with bulkheads.call("p1", "IN/EMP/EMSP"):  # slots come back when calls end
        pass
    assert bulkheads.state()["p1"]["in_flight"] == 0


def test_a_slot_is_released_when_the_call_raises():
    bulkheads = Bulkheads(limit=1, failures=0, open_seconds=10)
    with pytest.raises(RuntimeError), bulkheads.call("p1", "IN/EMP/EMSP"):
        raise RuntimeError("boom")
    with bulkheads.call("p1", "IN/EMP/EMSP"):
        pass


def test_consecutive_failures_open_the_circuit_then_one_trial_closes_it():
    clock = Clock()
    bulkheads = Bulkheads(limit=4, failures=3, open_seconds=10, clock=clock)
    fail(bulkheads)
    fail(bulkheads)
    with bulkheads.call("p1", "IN/EMP/EMSP"):  # an answer resets the count
        pass
    for _ in range(3):
        fail(bulkheads)
    error = refused(bulkheads)
    assert error.status_code == 4003 and "circuit open" in error.message
    assert bulkheads.state()["p1"]["open"]
    clock.now += 10
    with bulkheads.call("p1", "IN/EMP/EMSP"):  # half open: one trial goes through ...
        assert "circuit open" in refused(bulkheads).message  # ... and only one
    with bulkheads.call("p1", "IN/EMP/EMSP"):  # the trial answered: closed
        pass
    assert not bulkheads.state()["p1"]["open"]


def test_a_failed_trial_opens_the_circuit_again():
    clock = Clock()
    bulkheads = Bulkheads(limit=4, failures=2, open_seconds=5, clock=clock)
    fail(bulkheads)
    fail(bulkheads)
    clock.now += 5
    fail(bulkheads)  # the trial
    assert "circuit open" in refused(bulkheads).message
    clock.now += 5
    with bulkheads.call("p1", "IN/EMP/EMSP"):
        pass


def test_no_circuit_when_failures_is_zero():
    bulkheads = Bulkheads(limit=4, failures=0, open_seconds=5)
    for _ in range(10):
        fail(bulkheads)
    with bulkheads.call("p1", "IN/EMP/EMSP"):
        pass


def test_a_body_that_cannot_be_encoded_is_refused_with_2001():
    from hub.ocpi.errors import InvalidParameters
    from hub.services.realtime import check_forwardable

    deep: dict = {}
    node = deep
    for _ in range(300):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(InvalidParameters) as caught:
        check_forwardable({"response_url": "http://x", "extra": deep})
    assert caught.value.status_code == 2001 and caught.value.message.startswith("body:")
    check_forwardable({"response_url": "http://x", "extra": {"a": {"b": [1, 2]}}})
