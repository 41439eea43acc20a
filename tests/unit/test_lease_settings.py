"""HUB_LEASE_SECONDS and HUB_DELIVERY_LANES: read, bounded, and what a lane does with the lease."""

from __future__ import annotations

import pytest

from hub.infra.config import Settings
from scheduler.sender import lease_budget


def settings(**env: str) -> Settings:
    return Settings.from_env({"HUB_SECRET_KEY": "k", **env})


def test_defaults():
    s = settings()
    assert s.lease_seconds == 60.0 and s.delivery_lanes == 32


def test_values_are_read():
    s = settings(HUB_LEASE_SECONDS="2.5", HUB_DELIVERY_LANES="4")
    assert s.lease_seconds == 2.5 and s.delivery_lanes == 4


@pytest.mark.parametrize("value", ["0", "-1", "3601", "soon", "nan"])
def test_a_lease_out_of_bounds_is_refused_naming_the_setting(value):
    with pytest.raises(SystemExit, match="HUB_LEASE_SECONDS"):
        settings(HUB_LEASE_SECONDS=value)


@pytest.mark.parametrize("value", ["0", "257", "many", "-3"])
def test_lanes_out_of_bounds_are_refused_naming_the_setting(value):
    with pytest.raises(SystemExit, match="HUB_DELIVERY_LANES"):
        settings(HUB_DELIVERY_LANES=value)


@pytest.mark.parametrize("lease", [1.0, 2.0, 4.0, 20.0, 60.0, 3600.0])
@pytest.mark.parametrize("call", [0.5, 8.0, 33.0])
def test_a_call_and_its_renewal_margin_fit_in_the_lease(lease, call):
    """A call never outlasts the lease it started under, however short the lease."""
    deadline, margin = lease_budget(call, lease)
    assert 0 < deadline <= call and margin > 0
    assert deadline + margin < lease


def test_a_long_lease_keeps_the_whole_call_and_a_ten_second_margin():
    assert lease_budget(8.0, 60.0) == (8.0, 10.0)


def test_a_platforms_rows_go_out_on_up_to_four_lanes():
    from scheduler.sender import PER_PLATFORM, lanes_for

    assert [lanes_for(n) for n in (1, 3, 4, 7, 8, 12, 16, 50)] == [1, 1, 1, 1, 2, 3, 4, 4]
    assert PER_PLATFORM == 4
