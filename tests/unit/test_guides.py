"""The role guides open with a checklist and a status-code table that must match the code.

- The checklist of each guide lists exactly the endpoints :func:`hub.domain.checklist.partner_endpoints`
  derives from the module table for that role, each with the reasons the hub calls it.
- The status-code table is the same in every role guide and has a row for every OCPI status code
  and HTTP status the hub's code answers with.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.domain.checklist import PULLED, PUSHED, REALTIME, REGISTRATION, partner_endpoints
from hub.ocpi.status import OcpiStatus

ROOT = Path(__file__).resolve().parents[2]
GUIDES = {"CPO": ROOT / "docs" / "cpo-guide.md", "EMSP": ROOT / "docs" / "emsp-guide.md"}
#: The words a checklist row's "why" column uses for each reason the hub calls the endpoint.
WORDING = {REGISTRATION: "Registration", PUSHED: "Pushes", REALTIME: "Real time", PULLED: "Pulls"}


def _block(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    assert match, f"no block between {start!r} and {end!r}"
    return match.group(1)


def _rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _checklist(role: str) -> dict[tuple[str, str | None], str]:
    rows = _rows(_block(GUIDES[role].read_text(), f"<!-- checklist {role} -->", "<!-- /checklist -->"))
    found = {}
    for endpoint, interface, why, _needed in rows:
        module = endpoint.strip("`")
        found[(module, interface if interface in ("SENDER", "RECEIVER") else None)] = why
    return found


@pytest.mark.parametrize("role", sorted(GUIDES))
def test_each_guide_opens_with_its_checklist(role):
    text = GUIDES[role].read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:2] == ["Checklist: the endpoints you serve",
                            "Status codes: what the hub answers and what you do"], headings[:3]


@pytest.mark.parametrize("role", sorted(GUIDES))
def test_checklist_lists_exactly_what_the_hub_calls(role):
    listed = _checklist(role)
    derived = {(e.module, e.interface): e for e in partner_endpoints(role)}
    assert set(listed) == set(derived), (
        f"{GUIDES[role].name}: missing {sorted(set(derived) - set(listed), key=str)}, "
        f"not called by the hub {sorted(set(listed) - set(derived), key=str)}")
    for key, endpoint in derived.items():
        why = listed[key]
        for purpose, word in WORDING.items():
            assert (word.lower() in why.lower()) == (purpose in endpoint.purposes), (
                f"{GUIDES[role].name} {key}: the hub calls it for {endpoint.purposes}; the row says {why!r}")
    rows = _rows(_block(GUIDES[role].read_text(), f"<!-- checklist {role} -->", "<!-- /checklist -->"))
    required = {(r[0].strip("`"), r[1] if r[1] in ("SENDER", "RECEIVER") else None)
                for r in rows if r[3] == "required"}
    assert required == {k for k, e in derived.items() if e.required}


def _status_table(path: Path) -> str:
    return _block(path.read_text(), "<!-- status-codes -->", "<!-- /status-codes -->")


def _answered_by_code() -> tuple[set[int], set[int]]:
    """The OCPI status codes and HTTP statuses the hub's own code answers with."""
    codes, https = {1000}, {200, 201}
    for path in [*ROOT.glob("hub/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        if path.name == "status.py" or "sandbox" in path.parts:
            continue
        source = path.read_text()
        codes |= {int(OcpiStatus[name]) for name in re.findall(r"OcpiStatus\.([A-Z_]+)", source)}
        if path.parts[-2] == "handlers" or "ocpi" in path.parts:
            https |= {int(n) for n in re.findall(r"(?:http_status=|resp\.status = )(\d{3})", source)}
    return codes, https | {400, 404}  # Falcon's own: a body that is not JSON, no such route


def test_status_table_is_the_same_in_every_guide():
    tables = {path.name: _status_table(path) for path in GUIDES.values()}
    assert len(set(tables.values())) == 1, "the status-code tables of the role guides differ"


def test_status_table_covers_every_answer_of_the_hub():
    rows = _rows(_status_table(GUIDES["CPO"]))
    codes = {int(r[0]) for r in rows}
    https = {int(h) for r in rows for h in re.findall(r"\d{3}", r[1])}
    answered_codes, answered_https = _answered_by_code()
    assert answered_codes <= codes, f"no row for status_code {sorted(answered_codes - codes)}"
    assert answered_https <= https, f"no row for HTTP {sorted(answered_https - https)}"
    assert codes <= {int(s) for s in OcpiStatus}, "a row names a status code OCPI does not define"
