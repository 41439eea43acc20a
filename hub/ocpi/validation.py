"""The one validation entry point every module uses for pushed OCPI bodies.

``validate(Location, body)`` checks a full object (PUT/POST);
``validate(EVSE, body, partial=True)`` checks an OCPI PATCH. Failures raise
:class:`hub.ocpi.errors.InvalidParameters` (OCPI 2001) with a message that names
each offending field by its path, e.g.
``evses[0].connectors[1].max_voltage: field required``.

Validation is a check only: callers store and forward the original dict, not
the returned model.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import Field, ValidationError, create_model

from hub.ocpi.errors import InvalidParameters
from hub.ocpi.models import (
    CI_STRING_PATTERN,
    DATETIME_PATTERN,
    EVSE,
    STRING_PATTERN,
    Connector,
    Location,
    OcpiModel,
    Session,
    Token,
)

__all__ = ["MAX_REPORTED_ERRORS", "format_errors", "partial_model", "validate"]

#: At most this many field errors are spelled out in one message.
MAX_REPORTED_ERRORS = 5
_MAX_SHOWN_INPUT = 40
_MAX_MESSAGE = 300

_PATTERN_MESSAGES = {
    CI_STRING_PATTERN: "only printable ASCII characters (U+0020-U+007E) allowed",
    STRING_PATTERN: "control characters (CR, LF, TAB, ...) not allowed",
    DATETIME_PATTERN: (
        "not an OCPI DateTime (RFC 3339 in UTC, e.g. 2015-06-29T20:39:09Z; "
        "offsets such as +00:00 are not allowed)"
    ),
}


def validate(
    model: type[OcpiModel], payload: object, *, partial: bool = False
) -> OcpiModel:
    """Check *payload* (parsed JSON) against *model*; return the validated model.

    With ``partial=True`` (OCPI PATCH) only the properties present are checked,
    each against its full type (a nested object or list in a PATCH is complete);
    ``last_updated`` must be present; ``null`` is accepted only where the field
    is optional; unknown properties pass. The returned PATCH model is a
    subclass of *model* whose absent fields are ``None`` - use
    ``model_fields_set`` to see what was sent.

    Raises :class:`InvalidParameters` naming the offending field(s).
    """
    if type(payload) is not dict:
        raise InvalidParameters("body: expected a JSON object")
    if partial:
        if "last_updated" not in payload:
            raise InvalidParameters("last_updated: required in a PATCH")
        target = partial_model(model)
    else:
        target = model
    try:
        return target.model_validate(payload)
    except ValidationError as exc:
        raise InvalidParameters(format_errors(exc)) from None


@cache
def partial_model(model: type[OcpiModel]) -> type[OcpiModel]:
    """The PATCH variant of *model*, built once per class.

    Every field keeps its full type (so an explicit ``null`` is refused where
    the field is required) but gets a default of ``None`` that is not
    validated, so absent fields are simply skipped.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[name] = (annotation, Field(default=None, alias=info.alias))
    return create_model(
        f"{model.__name__}Patch",
        __base__=model,
        __module__=model.__module__,
        __doc__=f"PATCH body of {model.__name__}: only the fields present are checked.",
        **fields,
    )


def format_errors(exc: ValidationError) -> str:
    """One line naming each failing field (first few only), joined with ``"; "``."""
    errors = exc.errors(include_url=False)
    parts = [
        f"{_path(err['loc'])}: {_describe(err)}" for err in errors[:MAX_REPORTED_ERRORS]
    ]
    extra = len(errors) - MAX_REPORTED_ERRORS
    if extra > 0:
        parts.append(f"and {extra} more error{'s' if extra > 1 else ''}")
    return "; ".join(parts)


def _path(loc: tuple[int | str, ...]) -> str:
    out: list[str] = []
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif out:
            out.append(f".{part}")
        else:
            out.append(str(part))
    return "".join(out) or "body"


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) > _MAX_SHOWN_INPUT:
        text = text[: _MAX_SHOWN_INPUT - 3] + "..."
    return text


def _describe(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "field required"
    if err.get("input", ...) is None:
        return "must not be null"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"at least {ctx.get('min_length')} characters"
    if kind == "too_short":
        minimum = ctx.get("min_length")
        return f"at least {minimum} item{'s' if minimum != 1 else ''} required"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        friendly = _PATTERN_MESSAGES.get(pattern)
        if friendly is None:
            return f"String should match pattern '{pattern}'"
        return friendly
    if kind == "enum":
        msg = (
            f"invalid value {_shown(err.get('input'))}, expected {ctx.get('expected')}"
        )
    else:
        msg = str(err.get("msg", kind))
    if len(msg) > _MAX_MESSAGE:
        msg = msg[: _MAX_MESSAGE - 3] + "..."
    return msg


# The objects pushed by PATCH at high rates: build their PATCH models up front.
for _model in (Location, EVSE, Connector, Session, Token):
    partial_model(_model)
del _model
