"""Run benchmark sections one after another and write docs/benchmarks.md.

    .venv/bin/python -m bench.run                    # every section at its default size
    .venv/bin/python -m bench.run --full             # adds the largest sizes (1M papers)
    .venv/bin/python -m bench.run --only api,hnsw    # rerun some; the others keep their last results
    .venv/bin/python -m bench.run --render-only      # rewrite the report from bench/results/*.json

A section is a module of bench/sections with `TITLE`, `run(full) -> dict` and `render(result) -> str`;
sections never run side by side, so they do not steal each other's cores.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from types import ModuleType

from bench.harness import report

SECTIONS = (
    "ingest",
    "embedder",
    "hnsw",
    "api",
    "hostile",
    "server",
    "search",
    "serving",
    "shards",
    "totals",
    "processes",
    "replicas",
    "floor",
    "million",
)
OUT = report.ROOT / "docs" / "benchmarks.md"


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"bench.sections.{name}")


def run_section(name: str, full: bool) -> dict:
    """Run one section and keep its result with when, where and how long."""
    started = time.monotonic()
    print(f"== {name}", file=sys.stderr, flush=True)
    result = _module(name).run(full)
    result["_meta"] = {
        "seconds": round(time.monotonic() - started, 1),
        "finished": report.now(),
        "commit": report.commit(),
        "full": full,
        "host": report.host(),
    }
    report.save(name, result)
    return result


def render(chosen: tuple[str, ...], command: str) -> str:
    """The whole report from the saved results (sections never run are left out)."""
    parts, provenance = [], []
    for name in chosen:
        result = report.saved(name)
        if result is None:
            continue
        meta = result.get("_meta", {})
        parts.append(_module(name).render(result))
        full = "--full, " if meta.get("full") else ""
        provenance.append(
            f"{name} ({full}commit {meta.get('commit', '?')}, {meta.get('finished', '?')},"
            f" {meta.get('seconds', '?')} s, host {meta.get('host', 'not recorded')})"
        )
    head = (
        f"# Benchmarks\n\nWritten by `{command}`; each section ran alone on the machine, and `--only` reruns"
        f" one while the others keep their last results. Sections: {'; '.join(provenance)}. Hosts differ between"
        " sessions (same core count, different CPUs): compare figures within a section, which runs side by side.\n\n"
        f"The machine this report was written on:\n{report.machine()}\n"
    )
    return head + "\n" + "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="add the largest sizes")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--render-only", action="store_true", help="rewrite the report from the saved results")
    args = parser.parse_args(argv)
    chosen = tuple(args.only.split(",")) if args.only else SECTIONS
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if not args.render_only:
        for name in chosen:
            run_section(name, args.full)
    args.out.write_text(render(SECTIONS, "python -m bench.run" + (" --full" if args.full else "")))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
