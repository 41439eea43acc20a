"""The layout's rules, checked on the code itself (no database, no HTTP).

- The import contracts of ``pyproject.toml`` (``[tool.importlinter]``): the layers
  of docs/architecture.md, checked from the import graph, imports inside functions
  included.
- No module over 450 lines (the benchmarks and scripts of ``ops`` too), except the declarative OCPI
  models.
- No SQL in the web handlers or the entry points: they call a projection or a service.
- No unit test asks for a fixture that needs the database.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "handlers", "projections", "scheduler")
MAX_LINES = 450
LONG_ALLOWED = {"hub/ocpi/models.py"}  # declarative OCPI models
SQL = re.compile(r"\bSELECT\b[\s\S]+\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
                 r"|\b(?:CREATE|ALTER|DROP)\s+(?:TABLE|SCHEMA|INDEX)\b")


def _modules(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_import_contracts_are_kept(capsys):
    from importlinter import api  # noqa: F401  (configures import-linter's adapters)
    from importlinter.application import use_cases

    options = use_cases.read_user_options(str(ROOT / "pyproject.toml"))
    use_cases._register_built_in_contract_types()
    report = use_cases.create_report(options, cache_dir=None)
    assert not report.could_not_run, report.invalid_contract_options
    broken = []
    for contract, check in report.get_contracts_and_checks():
        if not check.kept:
            broken.append(contract.name)
            contract.render_broken_contract(check)  # the import chains, shown with the failure
    chains = capsys.readouterr().out
    assert len(report.contracts) >= 3
    assert not broken, f"broken import contracts: {broken}\n{chains}"


def test_no_module_is_over_450_lines():
    long = {_name(p): n for p in _modules(*PACKAGES, "ops")
            if (n := len(p.read_text().splitlines())) > MAX_LINES and _name(p) not in LONG_ALLOWED}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _sql_in(path: Path) -> list[str]:
    """Lines of ``path`` that run a statement (``.execute(``) or hold SQL text."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("execute", "executemany", "copy"):
            found.append(f"{_name(path)}:{node.lineno} .{node.func.attr}(")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append(f"{_name(path)}:{node.lineno} {node.value.strip()[:60]!r}")
    return found


def test_handlers_and_entry_points_hold_no_sql():
    files = [*sorted((ROOT / "handlers").glob("*.py")), *_modules("hub/entrypoints")]
    found = [line for path in files for line in _sql_in(path)]
    assert not found, "SQL belongs in projections or services:\n" + "\n".join(found)


def _database_fixtures() -> set[str]:
    """The fixtures of tests/conftest.py that need the database, directly or through another."""
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    needs = {node.name: {a.arg for a in node.args.args} for node in tree.body
             if isinstance(node, ast.FunctionDef)
             and any("fixture" in ast.unparse(d) for d in node.decorator_list)}
    database = {"database_url"}
    while True:
        more = {name for name, args in needs.items() if args & database} - database
        if not more:
            return database
        database |= more


def test_no_unit_test_needs_the_database():
    database = _database_fixtures()
    assert {"database_url", "settings", "hub"} <= database  # the closure found the usual ones
    found = []
    for path in _modules("tests/unit"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                wanted = {a.arg for a in node.args.args} & database
                if wanted and (node.name.startswith("test") or any(
                        "fixture" in ast.unparse(d) for d in node.decorator_list)):
                    found.append(f"{_name(path)}:{node.lineno} {node.name}{sorted(wanted)}")
    assert not found, "unit tests run without PostgreSQL; move these to the integration tests:\n" \
        + "\n".join(found)


def test_health_knows_every_follower_the_worker_runs():
    """``/ready`` and ``/metrics`` name the worker's followers without importing the worker."""
    from projections import all_projections
    from projections.health import follower_names
    from scheduler.worker import dispatchers

    assert follower_names() == tuple(f.name for f in [*all_projections(), *dispatchers()])
