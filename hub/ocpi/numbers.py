"""JSON numbers kept exactly as a partner sent them: the hub never changes partner data.

orjson, the fast parser, reads every number with a fraction or exponent as a 64-bit float and
refuses to write integers beyond 64 bits: ``2.50`` would come back as ``2.5`` and
``0.12345678901234567890`` as ``0.12345678901234568``. :func:`loads` reads a document that may hold
such a number with the standard library instead, keeping each number that a float would change
as a :class:`~decimal.Decimal` of the same digits (integers stay Python integers, exact at any
size); :func:`dumps` writes both back as the same digits. Documents without such numbers (the
usual case) take the orjson path both ways.

The event store's transcoder keeps a ``Decimal`` as its text (eventsourcing's ``DecimalAsStr``)
and integers as integers, so a number read here is stored, projected, pulled and forwarded as sent.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import orjson

# A number (after ``:``, ``,`` or ``[``) a float may not keep: 17+ digits (with its point), a
# fraction ending in 0, an exponent. Strings ("12.975410") do not match; a string that happens to
# look like ``:2.50`` inside just sends its document down the slower exact path.
_MAYBE_INEXACT = re.compile(rb"[:,\[]\s*-?(?:\d[\d.]{16,}|\d+\.\d*0(?![\d])|\d[\d.]*[eE])")
_INT64 = (-(2 ** 63), 2 ** 64 - 1)


def _number(text: str) -> float | Decimal:
    value = float(text)
    return value if repr(value) == text else Decimal(text)


def loads(data: bytes | str) -> object:
    """Parse JSON; every number comes back exactly (see the module docstring)."""
    raw = data.encode() if isinstance(data, str) else data
    if not _MAYBE_INEXACT.search(raw):
        return orjson.loads(raw)
    try:
        return json.loads(raw, parse_float=_number, parse_constant=_refuse)
    except ValueError as exc:  # the same error type the fast path raises
        raise orjson.JSONDecodeError(str(exc), raw.decode(errors="replace"), 0) from None


def _refuse(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: object, option: int | None = None) -> bytes:
    """JSON bytes (orjson), numbers as :func:`loads` read them: a ``Decimal`` as its digits, an
    integer beyond 64 bits as its digits."""
    try:
        return orjson.dumps(value, default=_default, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(_big_ints(value), default=_default, option=option)  # rare: the slow walk


def _big_ints(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {k: _big_ints(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints(v) for v in value]
    return value
