"""What becomes of a delivery after one call: delivered, retried when, resent as a PUT, parked,
and when the recipient's platform goes OFFLINE."""

from __future__ import annotations

import pytest

from hub.infra.client import OcpiResponse
from scheduler.outcomes import (
    BACKOFF_CAP,
    DELIVERED,
    FAILED,
    OFFLINE_AFTER_FAILURES,
    RESEND,
    RETRY,
    CallResult,
    accepted,
    backoff,
    count_unanswered,
    failure_kind,
    outcome_of,
    retry_after,
)


def full(low: float, high: float) -> float:
    """Jitter that takes the whole backoff, so delays are exact."""
    return high


def half(low: float, high: float) -> float:
    return low


def answer(http_status: int, status_code: int | None, *, method: str = "PUT", module: str = "locations",
           attempts: int = 1, headers: dict | None = None):
    return outcome_of(CallResult(method, module, attempts, http_status=http_status, status_code=status_code,
                             headers=headers), jitter=full)


def raised(failure: str, http_status: int | None = None, *, attempts: int = 1, headers: dict | None = None):
    return outcome_of(CallResult("PUT", "locations", attempts, failure=failure, http_status=http_status,
                             headers=headers), jitter=full)


# Answers ---------------------------------------------------------------------------
@pytest.mark.parametrize(("http_status", "status_code"), [(200, 1000), (201, 1000), (200, 1999), (204, 1001)])
def test_a_2xx_answer_with_a_1xxx_status_is_delivered(http_status, status_code):
    outcome = answer(http_status, status_code)
    assert outcome.action == DELIVERED and outcome.answered and outcome.delay is None


@pytest.mark.parametrize("http_status", [500, 502, 503, 504, 599, 401, 403, 408, 425, 429])
def test_answers_that_ask_for_patience_are_retried(http_status):
    outcome = answer(http_status, None, attempts=3)
    assert outcome.action == RETRY and outcome.answered
    assert outcome.delay == 4.0  # 1 s doubled per attempt after the first


@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST", "DELETE"])
def test_a_5xx_is_retried_whatever_the_method(method):
    assert answer(503, 3000, method=method).action == RETRY


@pytest.mark.parametrize(("http_status", "status_code"), [(404, 2003), (400, 2001), (405, None), (410, None),
                                                          (200, 2001), (200, 3001), (200, None)])
@pytest.mark.parametrize("module", ["locations", "tariffs", "sessions", "tokens"])
def test_a_refused_patch_of_a_collapsible_module_is_resent_as_the_whole_object(http_status, status_code, module):
    outcome = answer(http_status, status_code, method="PATCH", module=module)
    assert outcome.action == RESEND and outcome.answered and outcome.delay is None


@pytest.mark.parametrize(("method", "module"), [("PUT", "locations"), ("DELETE", "tariffs"), ("POST", "cdrs"),
                                                ("PATCH", "cdrs"), ("POST", "commands"), ("PUT", "hubclientinfo")])
@pytest.mark.parametrize(("http_status", "status_code"), [(404, 2003), (400, 2001), (200, 2001), (200, 3000)])
def test_any_other_refusal_parks_the_row(method, module, http_status, status_code):
    outcome = answer(http_status, status_code, method=method, module=module)
    assert outcome.action == FAILED and outcome.answered and outcome.delay is None


def test_a_patch_asking_for_patience_is_retried_not_resent():
    assert answer(429, None, method="PATCH").action == RETRY


# Calls that raised -----------------------------------------------------------------
@pytest.mark.parametrize("failure", ["timeout", "unreachable", "not an OCPI answer", "call failed"])
def test_no_answer_at_all_is_retried_and_counts_towards_offline(failure):
    outcome = raised(failure, attempts=2)
    assert outcome.action == RETRY and not outcome.answered and outcome.delay == 2.0


def test_no_answer_ignores_retry_after():
    assert raised("timeout", headers={"Retry-After": "120"}).delay == 1.0


@pytest.mark.parametrize("http_status", [200, 404, 429, 502])
def test_an_answer_that_is_not_ocpi_is_retried_and_resets_the_count(http_status):
    outcome = raised("not an OCPI answer", http_status)
    assert outcome.action == RETRY and outcome.answered


def test_a_page_that_is_not_ocpi_honours_retry_after():
    assert raised("not an OCPI answer", 503, headers={"retry-after": "42"}).delay == 42.0


# Delays ----------------------------------------------------------------------------
@pytest.mark.parametrize(("attempts", "most"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0),
                                                (50, 300.0)])
def test_backoff_doubles_per_attempt_up_to_the_cap_with_jitter_down_to_half(attempts, most):
    assert backoff(attempts, full) == most
    assert backoff(attempts, half) == most / 2
    for _ in range(50):
        assert most / 2 <= backoff(attempts) <= most


def test_backoff_never_exceeds_the_cap():
    assert max(backoff(n) for n in range(1, 200)) <= BACKOFF_CAP


def test_retry_after_longer_than_the_backoff_wins():
    assert answer(429, None, attempts=1, headers={"Retry-After": "30"}).delay == 30.0


def test_backoff_longer_than_retry_after_wins():
    assert answer(503, None, attempts=9, headers={"Retry-After": "5"}).delay == 256.0


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "12"}, 12.0),
    ({"RETRY-AFTER": "1.5"}, 1.5),
    ({"Retry-After": "86400"}, BACKOFF_CAP),  # a partner cannot park a row for a day
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # an HTTP date is not honoured
    ({"Content-Type": "text/html"}, None),
    ({}, None),
    (None, None),
])
def test_retry_after_header(headers, seconds):
    assert retry_after(headers) == seconds


def test_an_unreadable_retry_after_leaves_the_backoff():
    assert answer(503, None, attempts=2, headers={"Retry-After": "soon"}).delay == 2.0


# OFFLINE ---------------------------------------------------------------------------
def test_the_platform_goes_offline_after_calls_in_a_row_without_answer():
    count, seen = 0, []
    for _ in range(2 * OFFLINE_AFTER_FAILURES):
        count, offline = count_unanswered(count)
        seen.append(offline)
    assert seen == ([False] * (OFFLINE_AFTER_FAILURES - 1) + [True]) * 2  # the count starts again after


# Consistency with the client -------------------------------------------------------
@pytest.mark.parametrize(("http_status", "status_code"), [
    (200, 1000), (299, 1999), (200, 2000), (300, 1000), (199, 1000), (500, 1000), (200, None), (200, 999),
])
def test_accepted_is_what_the_client_calls_ok(http_status, status_code):
    response = OcpiResponse(http_status=http_status, body={"status_code": status_code}, headers={},
                            request_id="r", correlation_id="c", elapsed_ms=1.0)
    assert accepted(http_status, status_code) is response.ok


@pytest.mark.parametrize(("name", "kind"), [("PartnerTimeout", "timeout"), ("PartnerUnreachable", "unreachable"),
                                            ("PartnerBadResponse", "not an OCPI answer"),
                                            ("PartnerCallError", "call failed")])
def test_failure_kind_names_what_went_wrong_in_a_word(name, kind):
    assert failure_kind(name) == kind
