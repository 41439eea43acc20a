"""What every command shares: tables for people, ``--json`` for scripts, one-line
errors, and how a party is named on the command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from hub.services.operators.names import PartyName, parse_party_name


class Usage(Exception):
    """The command line cannot be used as written (one line on stderr, exit 2)."""


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def emit(args, rows, columns: Sequence[str]) -> None:
    """``rows`` (a list, or one dict) as JSON under ``--json``, else as a table."""
    if getattr(args, "json", False):
        print(json.dumps(rows, default=str, indent=2))
    else:
        print_table(rows if isinstance(rows, list) else [rows], columns)


def fail(message: str, code: int = 1) -> int:
    print(f"hub: {message}", file=sys.stderr)
    return code


def deprecated(old: str, new: str) -> None:
    """One line on stderr: the form used still works for this release."""
    print(f"hub: deprecated: {old} -> write {new} (the old form goes in the next release)", file=sys.stderr)


# Naming a party: CC/PID or CC/PID/ROLE ------------------------------------------
PARTY_METAVAR = "CC/PID[/ROLE]"
PARTY_HELP = "the party: IN/ABC, or IN/ABC/CPO to pick one of its roles"


def add_party_argument(parser, *, help: str = PARTY_HELP, role_option: bool = True) -> None:
    """The positional party of a command (``IN/ABC`` or ``IN/ABC/ROLE``).

    Also takes, for this release, the old two words (``IN ABC``) and ``--role``.
    """
    parser.add_argument("party", nargs="+", metavar=PARTY_METAVAR, help=help)
    if role_option:
        parser.add_argument("--role", type=str.upper, help="deprecated: write CC/PID/ROLE")


def party_of(args, command: str) -> PartyName:
    """The party a command names, from its positional words (and the deprecated ``--role``)."""
    words = list(args.party)
    role = getattr(args, "role", None)
    if len(words) == 2 and not any("/" in w for w in words):  # the old `IN ABC`
        new = "/".join(w.upper() for w in words) + (f"/{role}" if role else "")
        old = " ".join(words) + (f" --role {role}" if role else "")
        deprecated(f"hub {command} {old}", f"hub {command} {new}")
        return parse(new)
    if len(words) != 1:
        raise Usage(f"{command}: expected one party, {PARTY_METAVAR} (IN/ABC), got {' '.join(words)!r}")
    name = parse(words[0])
    if role:
        deprecated(f"hub {command} {words[0]} --role {role}", f"hub {command} {name.ids}/{role}")
        return parse(f"{name.ids}/{role}")
    return name


def parse(text: str, option: str | None = None) -> PartyName:
    """:func:`parse_party_name`, its error as a :class:`Usage` (prefixed with the option)."""
    try:
        return parse_party_name(text)
    except ValueError as exc:
        raise Usage(f"{option} {exc}" if option else str(exc)) from None


def optional_party(text: str | None, option: str = "--party") -> PartyName | None:
    return parse(text, option) if text else None


class lazy:
    """A module imported on first use: the ``hub`` command builds its whole parser at start-up,
    and a command should not pay for the imports of the others (each ``hub`` process starts
    in about a second, most of it imports)."""

    def __init__(self, name: str) -> None:
        self._name, self._module = name, None

    def __getattr__(self, attr: str):
        if self._module is None:
            import importlib

            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)
