"""Operator commands (the ``hub`` CLI's writes and checks), one module per subject.

Each function takes the application (and, where it needs a read model or the
delivery queue, the function that reads it: ``hub`` imports none of
``projections`` or ``scheduler``), does one thing and returns plain data. A
command that cannot go ahead raises :class:`OperatorError`, whose message
says what to do instead; the CLI prints it as one line.
"""

from __future__ import annotations


class OperatorError(Exception):
    """An operator command that cannot go ahead; the message names the fix."""


def operator_name() -> str:
    """Who runs the command (kept in rules and operator actions)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
