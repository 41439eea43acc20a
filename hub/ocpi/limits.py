"""How deep a JSON document the hub reads, in requests and in partners' answers.

OCPI objects nest a handful of levels (a Location's EVSE's connector's ...);
free-form fields add a few more. A document nested far deeper is no OCPI
object, and copying, validating or serializing it recursively (``copy.deepcopy``,
``orjson.dumps``, whose limit is lower than ``orjson.loads``') can fail deep
inside the hub. So such a document is refused where it is read, with a 2001
naming the problem, before anything else touches it.
"""

from __future__ import annotations

import orjson

#: Deepest nesting of objects and arrays accepted (orjson.dumps refuses beyond 254).
MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    """A JSON document nested deeper than :data:`MAX_JSON_DEPTH`."""

    def __str__(self) -> str:
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"


def depth_exceeds(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON) nests objects and arrays more than ``limit`` deep.

    Iterative, so any depth is measured without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads_bounded(data: bytes | str) -> object:
    """:func:`hub.ocpi.numbers.loads` (numbers kept exactly), refusing documents nested deeper than
    :data:`MAX_JSON_DEPTH` (:class:`JsonTooDeep`, a ``ValueError``); other bad JSON raises
    ``orjson.JSONDecodeError``."""
    from hub.ocpi.numbers import loads

    try:
        value = loads(data)
    except RecursionError:  # the exact (standard library) path on a very deep document
        raise JsonTooDeep() from None
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
            raise JsonTooDeep() from None
        raise
    if depth_exceeds(value):
        raise JsonTooDeep()
    return value
