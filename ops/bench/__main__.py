"""``python -m ops.bench all|NAME [NAME...] [--size smoke|full] [--json]``.

NAME is one of ingest, authorize, fanout, rebuild, pulls, memory, loadcost, scale, footprint,
fanload, leases, ingestfwd, tlog; several run
in the order given (rebuild, pulls, memory and tlog share one large dataset, built once).

The database: ``--database-url``, else ``HUB_BENCH_DATABASE_URL``,
``HUB_DATABASE_URL`` or ``HUB_TEST_DATABASE_URL``, else an embedded
PostgreSQL started for the run. Every benchmark works in its own fresh schema
and drops it afterwards.

Exit status: 0 when every benchmark ran (whether or not its goals were met),
1 when one crashed. Timing never fails a run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback

from ops.bench.common import log
from ops.bench.processes import Database, database_url_from_env

BENCHMARKS = ("ingest", "authorize", "fanout", "rebuild", "pulls", "memory", "loadcost", "scale",
              "footprint", "fanload", "leases", "ingestfwd", "tlog")


def machine(db: Database) -> dict:
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor())
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": db.version(),
        "code": code_version(),
    }


def code_version() -> str:
    """The commit under test and how many files differ from it (read-only git commands)."""
    import subprocess

    from ops.bench.common import ROOT

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"commit {head}" + (f" + {len(changed)} changed files" if changed else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", nargs="+", choices=["all", *BENCHMARKS])
    parser.add_argument("--size", choices=["smoke", "full"], default="full",
                        help="smoke: seconds, to keep the benchmarks working (CI); full: the recorded run")
    parser.add_argument("--json", action="store_true", help="also print all results as one JSON object")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)

    names = BENCHMARKS if "all" in args.benchmark else tuple(dict.fromkeys(args.benchmark))
    db = Database(args.database_url or database_url_from_env())
    info = machine(db)
    print(f"machine: {info['cores']} cores ({info['cpu']}), {info['ram_gib']} GiB RAM, "
          f"Linux {info['kernel']}, Python {info['python']}, PostgreSQL {info['postgresql']}; "
          f"code: {info['code']}", flush=True)
    results, failed = [], []
    shared: dict = {}  # a dataset built by one benchmark, reused by the next ones of this run
    started = time.monotonic()
    try:
        for name in names:
            module = importlib.import_module(f"ops.bench.{name}")
            t0 = time.monotonic()
            log(f"{name}: starting (size {args.size})")
            try:
                result = module.run(db, args.size, shared) if name in ("rebuild", "pulls", "memory", "tlog") \
                    else module.run(db, args.size)
            except Exception:
                failed.append(name)
                traceback.print_exc()
                print(f"== {name}: CRASHED", flush=True)
                continue
            result.elapsed = time.monotonic() - t0
            results.append(result)
            print(result.table(), "", sep="\n", flush=True)
    finally:
        dataset = shared.get("dataset")
        if dataset is not None:
            dataset.close()
        db.close()
    total = time.monotonic() - started
    print(f"ran {len(results)} benchmark(s) in {total:.0f} s"
          + (f"; CRASHED: {', '.join(failed)}" if failed else ""), flush=True)
    if args.json:
        print(json.dumps({"machine": info, "size": args.size, "total_s": round(total, 1),
                          "results": [r.as_dict() for r in results], "crashed": failed}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
