"""What becomes of a delivery after one call to its recipient: a pure decision.

Given what happened to the call (:class:`CallResult`), :func:`outcome_of` says:

- ``DELIVERED``: an OCPI answer with HTTP 2xx and a 1xxx status code;
- ``RETRY`` after a delay: no answer at all (no connection, timeout, a broken
  answer without a status line), an answer that asks for patience (HTTP 5xx,
  401/403/408/425/429) or a body that is not an OCPI envelope (a proxy's error
  page, say). The delay is :func:`backoff` of the attempts made, or the
  partner's ``Retry-After`` if longer (that one capped at ``BACKOFF_CAP``);
  a call that found no answer ignores ``Retry-After``;
- ``RESEND``: a refused PATCH of a module whose backlog may collapse (OCPI:
  when a PATCH fails, e.g. 404 because the receiver lacks the object, send the
  whole object): the row sends the object's current state next, at once;
- ``FAILED``: any other refusal (HTTP 4xx, or 2xx with a 2xxx/3xxx status):
  the partner understood and said no, so the row is parked for the operator.

``answered`` is False only when the call found no answer at all: such calls
count towards the platform going OFFLINE (:func:`count_unanswered`), any
answer resets the count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hub.domain.modules import COLLAPSIBLE  # backlog collapses, a refused PATCH becomes a PUT

BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
OFFLINE_AFTER_FAILURES = 3  # calls in a row to one platform that found no answer
RETRY_HTTP = frozenset({401, 403, 408, 425, 429})  # worth another try later; 404 and other 4xx are not

DELIVERED = "DELIVERED"
RETRY = "RETRY"
RESEND = "RESEND"
FAILED = "FAILED"

#: What went wrong when a call raised instead of answering (``PartnerTimeout`` -> ``timeout``).
FAILURE_KINDS = {"Timeout": "timeout", "Unreachable": "unreachable", "BadResponse": "not an OCPI answer"}

Jitter = Callable[[float, float], float]


@dataclass(frozen=True)
class CallResult:
    """What happened to one call of a delivery.

    ``failure``: set when the client raised instead of returning an OCPI answer
    (``timeout``, ``unreachable``, ``not an OCPI answer``); ``http_status`` is then
    the status line if one came. ``status_code``: the OCPI status of an OCPI answer.
    ``retry_after``: the answer's headers (only ``Retry-After`` is read).
    ``attempts``: calls made for the row, this one included.
    """

    method: str
    module: str
    attempts: int
    failure: str | None = None
    http_status: int | None = None
    status_code: int | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Outcome:
    action: str  # DELIVERED, RETRY, RESEND or FAILED
    delay: float | None = None  # RETRY: seconds until the next attempt
    answered: bool = True  # False: the call found no answer at all (counts towards OFFLINE)


def backoff(attempts: int, jitter: Jitter = random.uniform) -> float:
    """Exponential backoff with jitter (between half and all of it), capped at ``BACKOFF_CAP``."""
    return jitter(0.5, 1.0) * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The ``Retry-After`` header in seconds (capped at ``BACKOFF_CAP``); None if absent or
    not a number (an HTTP date is not honoured)."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return min(float(value), BACKOFF_CAP)
            except ValueError:
                return None
    return None


def accepted(http_status: int | None, status_code: int | None) -> bool:
    """An OCPI answer that accepted the request (as ``OcpiResponse.ok``): HTTP 2xx and 1xxx."""
    return (http_status is not None and 200 <= http_status < 300
            and status_code is not None and 1000 <= status_code < 2000)


def failure_kind(exception_name: str) -> str:
    """``PartnerTimeout`` -> ``timeout``: what went wrong in a word (the message names the URL)."""
    return FAILURE_KINDS.get(exception_name.removeprefix("Partner"), "call failed")


def outcome_of(call: CallResult, jitter: Jitter = random.uniform) -> Outcome:
    """The outcome of one call (see the module docstring)."""
    def later(wait: float | None = None, *, answered: bool = True) -> Outcome:
        return Outcome(RETRY, max(backoff(call.attempts, jitter), wait or 0.0), answered)

    if call.failure is not None:
        if call.http_status is None:  # no answer at all: the platform may be down
            return later(answered=False)
        return later(retry_after(call.headers))  # an answer, but not OCPI: usually passes
    if accepted(call.http_status, call.status_code):
        return Outcome(DELIVERED)
    http_status = call.http_status or 0
    if http_status >= 500 or http_status in RETRY_HTTP:
        return later(retry_after(call.headers))
    if call.method == "PATCH" and call.module in COLLAPSIBLE:
        return Outcome(RESEND)
    return Outcome(FAILED)


def count_unanswered(count: int) -> tuple[int, bool]:
    """One more call in a row that found no answer, after ``count``: the count to keep and
    whether the platform's parties now go OFFLINE (the count then starts again)."""
    count += 1
    if count >= OFFLINE_AFTER_FAILURES:
        return 0, True
    return count, False
