"""Stored events to domain events for the followers, faster than the event store's mapper.

The mapper (eventsourcing's ``Mapper`` with its ``JSONTranscoder``) parses an event's
JSON with the standard library and calls a Python hook on every object of it, to
revive typed values (``{"_type_": ..., "_data_": ...}``). A Location body has dozens of
objects and no typed value; the hub's events hold typed values only at the top level
(``timestamp``), unless a body holds a ``Decimal``. :class:`EventDecoder` parses with
orjson, revives the typed values of the top level with the transcoder's own
transcodings, and builds the domain event as the mapper does. It gives the mapper's
event or hands the row to the mapper: whenever a typed value sits deeper (counted in
the raw bytes), the JSON holds an integer orjson would read as a float (19 digits or
more) or something orjson refuses (``NaN``, lone surrogates), the class upcasts, or
the mapper has a cipher, a compressor or another transcoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, StoredEvent, find_id_convertor
from eventsourcing.utils import resolve_topic

_TYPED = b'"_type_"'
_DIGITS = bytes(48 if 48 <= i < 58 else 32 for i in range(256))  # digits stay, all else a space
_LONG = b"0" * 19  # an integer this long may not fit 64 bits: orjson would make it a float


class EventDecoder:
    """``decoder((originator_id, originator_version, topic, state))`` → the domain event."""

    def __init__(self, mapper: Any) -> None:
        self.mapper = mapper
        transcoder = mapper.transcoder
        self.fast = (mapper.cipher is None and mapper.compressor is None
                     and type(transcoder) is JSONTranscoder)
        self.transcodings = dict(transcoder.names) if self.fast else {}
        self._classes: dict[str, tuple] = {}

    def __call__(self, row: Sequence[Any]) -> Any:
        originator_id, originator_version, topic, state = row
        return self.decode(originator_id, originator_version, topic, bytes(state))

    def positioned(self, rows: Sequence[Sequence[Any]]) -> list[tuple[int, Any]]:
        """``(notification_id, originator_id, originator_version, topic, state)`` rows →
        ``(notification_id, domain event)`` pairs."""
        decode = self.decode
        return [(position, decode(originator_id, version, topic, bytes(state)))
                for position, originator_id, version, topic, state in rows]

    def decode(self, originator_id: Any, originator_version: int, topic: str, state: bytes) -> Any:
        if self.fast:
            found = self._classes.get(topic) or self._class(topic)
            if found[1] is type(originator_id):
                event = self._fast(found, originator_id, originator_version, state)
                if event is not None:
                    return event
        return self.mapper.to_domain_event(StoredEvent(originator_id, originator_version, topic, state))

    def _class(self, topic: str) -> tuple:
        """``(class, originator id type, id convertor)``; the id type None when the class upcasts
        or has no ``originator_id_type`` (the mapper's way then)."""
        cls = resolve_topic(topic)
        id_type = getattr(cls, "originator_id_type", None)
        if getattr(cls, "class_version", 1) != 1 or not isinstance(id_type, type):
            found = (cls, None, None)
        else:
            found = (cls, id_type, find_id_convertor(cls, id_type))
        self._classes[topic] = found
        return found

    def _fast(self, found: tuple, originator_id: Any, originator_version: int, raw: bytes) -> Any:
        if _LONG in raw.translate(_DIGITS):
            return None
        try:
            state = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if type(state) is not dict or "class_version" in state:
            return None
        typed = raw.count(_TYPED)
        if typed:
            for key, value in state.items():
                if type(value) is dict and "_type_" in value and len(value) == 2 and "_data_" in value:
                    name = value["_type_"]
                    transcoding = self.transcodings.get(name) if type(name) is str else None
                    if transcoding is None:
                        return None  # the mapper raises its own error for it
                    state[key] = transcoding.decode(value["_data_"])
                    typed -= 1
            if typed:
                return None  # a typed value deeper down, or "_type_" as text: the mapper's hook
        cls, _, id_convertor = found
        state["originator_id"] = id_convertor(originator_id)
        state["originator_version"] = originator_version
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event
