"""The interop defects of issue 14, again against the hub as deployed: ``hub web`` under real
gunicorn and ``hub worker`` as separate processes (tests/integration/test_interop.py runs the
same scenarios against the hub served in the test process).

Each scenario is the integration test's own function, given the deployed hub; none of them
reaches into the hub's process, so what they assert is what a partner observes over HTTP.
"""

from __future__ import annotations

import pytest

from tests.integration import test_interop as scenarios

DEPLOYED = [
    scenarios.test_a_receivers_401_or_403_is_a_hub_error_4003_counted_per_partner,
    scenarios.test_request_and_correlation_ids_are_echoed_as_sent,
    scenarios.test_a_partner_whose_urls_end_in_a_slash_receives_every_kind_of_push,
    scenarios.test_a_directed_get_answered_from_the_store_comes_from_the_owner,
    scenarios.test_hub_module_urls_take_ids_appended_with_or_without_a_slash,
    scenarios.test_a_command_result_needs_no_routing_headers_but_present_ones_must_match,
    scenarios.test_an_emsp_that_stops_seeing_a_location_gets_that_update_once,
    scenarios.test_numbers_are_stored_pulled_and_forwarded_exactly_as_sent,
]


@pytest.mark.parametrize("scenario", DEPLOYED, ids=[f.__name__.removeprefix("test_") for f in DEPLOYED])
def test_interop_scenario_under_gunicorn(scenario, gunicorn_hub, settings):
    params = scenario.__code__.co_varnames[:scenario.__code__.co_argcount]
    given = {"hub": gunicorn_hub, "worker": None, "settings": settings}
    scenario(**{name: given[name] for name in params})
