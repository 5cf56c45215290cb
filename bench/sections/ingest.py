"""Ingest: throughput without embedding through the real pipeline, the embedding pipeline against the raw
model, and the peak memory of `papers worker`.

    .venv/bin/python -m bench.run --only ingest            # 10k (median of 3) and 100k papers
    .venv/bin/python -m bench.run --only ingest --full     # adds 1M papers
    .venv/bin/python -m bench.sections.ingest 2000         # smoke run at 2,000 papers: printed, not saved

Ingest goes through `ingest.pipeline.ingest_source`, once per listing of 150 synthetic papers
(`bench.harness.corpus`), into a fresh migrated database of a temporary embedded PostgreSQL (default
settings: fsync and synchronous_commit on). Three modes: sequential (one connection, what `papers ingest DIR`
does), 2 connections (two asyncio tasks in one process) and 2 processes (two processes splitting the
listings, as two `papers worker`s draining a queue would). The CPU per paper of the ingesting process(es) and
of PostgreSQL, and what everything else on the machine used meanwhile, are read from /proc
(`bench.harness.meter`). Decode + parse + normalize (`prepare`, `candidates`) is also timed alone, without a
database, and a diagnostic run without the full-text column and the GIN indexes shows what they cost.

The embedding pipeline against the raw model and the worker's memory are measured and reported by
`bench.sections.ingest_embedding`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.harness import report
from bench.harness.corpus import generate, listings
from bench.harness.load import medians
from bench.harness.meter import measured, measured_async, wait_quiet
from bench.harness.postgres import TempPostgres, sql, temp_postgres
from bench.harness.service import ROOT
from bench.harness.tools import log
from bench.sections import ingest_embedding as parts

TITLE = "Ingest"
SIZES: tuple[int, ...] = (10_000, 100_000)
FULL_SIZES = (*SIZES, 1_000_000)
REPEATS = 3  # at the smallest size; larger sizes run once
MODES = ("sequential", "2 connections", "2 processes")
TARGET = report.Target(at_least=20_000)  # papers/s, without embedding
WORKER_LOCAL_PAPERS = 150  # the model's memory shows with one listing; more papers only take longer
# Diagnostic only, not a supported schema: without the generated full-text column (and its GIN index)
# and the title trigram GIN index.
NO_FTS = ("DROP INDEX papers_title_trgm_idx", "ALTER TABLE papers DROP COLUMN search")
_CHILD = "import asyncio, sys; from bench.sections.ingest import child; asyncio.run(child(*sys.argv[1:]))"

Items = list[tuple[str, bytes]]


# ---------------------------------------------------------------- ingest without embedding


async def _drain(conns: Sequence[Any], items: Items) -> dict[str, Any]:
    """Ingest every listing, each connection taking the next one when it is done; papers/s and counts."""
    from ingest.pipeline import Source, ingest_source

    queue, totals = iter(items), {"new": 0, "errors": 0}

    async def one(conn: Any) -> None:
        for name, raw in queue:  # one shared iterator: each listing goes to exactly one connection
            result = await ingest_source(conn, Source(name, raw))
            totals["new"] += result.papers_new
            totals["errors"] += result.error is not None

    started = time.perf_counter()
    await asyncio.gather(*(one(conn) for conn in conns))
    seconds = time.perf_counter() - started
    return {"rps": totals["new"] / seconds, "seconds": seconds, **totals}


async def child(url: str, list_file: str) -> None:
    """One of the 2-process ingesters: connect, say ready, ingest its listings on `go`, report, close on `quit`."""
    from sql.db import connect

    items = [(path, Path(path).read_bytes()) for path in Path(list_file).read_text().split("\n") if path]
    conn = await connect(url)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    print(json.dumps(await _drain([conn], items)), flush=True)
    # Closed only after the parent's meter has read this process and its backend (an exiting one can go unseen).
    await asyncio.to_thread(sys.stdin.readline)
    await conn.close()


@contextlib.contextmanager
def _children(url: str, files: list[Path], workdir: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Two ingest processes, connected and waiting for `go`, each with every other listing."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for i in range(2):
            share = workdir / f"share-{i}.txt"
            share.write_text("\n".join(str(f) for f in files[i::2]))
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _CHILD, url, str(share)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        if any(p.stdout is None or p.stdout.readline().strip() != "ready" for p in procs):
            raise SystemExit("an ingest process failed to start")
        yield procs
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("quit\n")
            p.stdin.flush()
            p.wait(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _release(procs: list[subprocess.Popen[str]]) -> dict[str, Any]:
    """Start both ingest processes at once; their combined papers/s."""
    started = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [json.loads((p.stdout.readline() if p.stdout else "") or "null") for p in procs]
    seconds = time.perf_counter() - started
    if None in outs:
        raise SystemExit("an ingest process failed")
    new = sum(o["new"] for o in outs)
    return {"rps": new / seconds, "seconds": seconds, "new": new, "errors": sum(o["errors"] for o in outs)}


async def _one_run(pg: TempPostgres, items: Items, files: list[Path], mode: str, setup: Sequence[str] = ()) -> dict:
    """One ingest of every listing into a fresh database: papers/s (`rps`) and CPU µs per paper per process tree."""
    from sql.db import connect

    url = await pg.fresh_database()
    if setup:
        await sql(url, *setup)
    trees = {"ingest": os.getpid(), "postgres": pg.pid}  # the ingest tree holds the 2-process children too
    wait_quiet()
    if mode == "2 processes":
        with _children(url, files, pg.workdir) as procs:
            run = measured(lambda: _release(procs), trees)
    else:
        conns = [await connect(url) for _ in range(1 if mode == "sequential" else 2)]
        try:
            run = await measured_async(lambda: _drain(conns, items), trees)
        finally:
            for conn in conns:
                await conn.close()
    await sql(pg.url, f"DROP DATABASE {url.split('?')[0].rsplit('/', 1)[1]}")  # at 1M papers, gigabytes each
    papers = sum(raw.count(b"\n") for _, raw in items)
    if run["new"] != papers or run["errors"]:
        raise SystemExit(f"ingest ({mode}) stored {run['new']} new papers of {papers} ({run['errors']} errors)")
    return run


def _parse_normalize_us(items: Items) -> float:
    """CPU µs per paper of decode + parse + normalize alone, without a database: the client's pure-Python part."""
    from ingest.normalize import candidates
    from ingest.pipeline import Source, prepare

    started, papers = time.thread_time(), 0
    for name, raw in items:
        (item,) = prepare(Source(name, raw))
        candidates(item.parsed.entries, item.listed_on)
        papers += len(item.parsed.entries)
    return round(1e6 * (time.thread_time() - started) / papers, 1)


async def _size(pg: TempPostgres, n: int, repeats: int, diagnose: bool) -> dict[str, Any]:
    """Every mode at one size (median of `repeats`), plus the pure-Python part and the diagnostic when asked."""
    items = list(listings(generate(n)))
    folder = pg.workdir / f"listings-{n}"
    folder.mkdir()
    files = [folder / name for name, _ in items]
    for path, (_, raw) in zip(files, items, strict=True):
        path.write_bytes(raw)
    out: dict[str, Any] = {"papers": n, "modes": {}}
    for mode in MODES:
        runs = []
        for _ in range(repeats):
            runs.append(await _one_run(pg, items, files, mode))
            log("ingest", f"{n:,} papers, {mode}: {runs[-1]['rps']:,.0f} papers/s")
        out["modes"][mode] = {**medians(runs), "runs_papers_per_s": [round(r["rps"]) for r in runs]}
    if diagnose:
        out["parse_normalize_us"] = _parse_normalize_us(items)
        out["no_fts"] = await _one_run(pg, items, files, "sequential", NO_FTS)
    shutil.rmtree(folder, ignore_errors=True)
    return out


# ---------------------------------------------------------------- section


def run(full: bool) -> dict:
    """Ingest at every size and mode, the embedding pipeline against the raw model, and worker memory."""
    sizes = FULL_SIZES if full else SIZES

    async def main(pg: TempPostgres) -> dict[str, Any]:
        throughput = [await _size(pg, n, REPEATS if n == sizes[0] else 1, n == sizes[0]) for n in sizes]
        embedding = await parts.embedding(pg, REPEATS)
        worker = [await parts.worker(pg, sizes[0], "none"), await parts.worker(pg, WORKER_LOCAL_PAPERS, "local")]
        return {"sizes": throughput, "embedding": embedding, "worker": worker, "cores": os.cpu_count()}

    with temp_postgres("papers-bench-ingest-") as pg:
        return asyncio.run(main(pg))


def _throughput_table(result: dict) -> str:
    rows = []
    for size in result["sizes"]:
        for mode, m in size["modes"].items():
            runs = m["runs_papers_per_s"]
            spread = ", ".join(f"{r:,}" for r in runs) if len(runs) > 1 else None
            cpu = [round(m[k]) for k in ("ingest_us_per_req", "postgres_us_per_req", "other_cpu_pct")]
            rows.append([size["papers"], mode, round(m["rps"]), spread, *cpu, m["rps"] / TARGET.at_least])
    headers = [
        "Papers",
        "Mode",
        "Papers/s",
        "Runs (papers/s)",
        "Ingest CPU µs/paper",
        "PostgreSQL CPU µs/paper",
        "Other CPU %",
        "Share of target",
    ]
    return report.table(headers, rows, "rlrlrrrr")


def _verdict(result: dict) -> str:
    """The target's verdict and, when missed, what limits ingest, computed from the CPU cost per paper."""
    best_size, best_mode = max(
        ((s, mode) for s in result["sizes"] for mode in s["modes"]), key=lambda sm: sm[0]["modes"][sm[1]]["rps"]
    )
    best = best_size["modes"][best_mode]["rps"]
    text = (
        f"**Target: ingest without embedding {TARGET} papers/s: {TARGET.verdict(best)}** (best {best:,.0f} "
        f"papers/s, {best_mode} at {best_size['papers']:,} papers: {best / TARGET.at_least:.2f} of the "
        "target)."
    )
    if TARGET.verdict(best) == "met":
        return text
    small, large = result["sizes"][0], result["sizes"][-1]
    seq = large["modes"]["sequential"]
    pg_us, client_us, cores = seq["postgres_us_per_req"], seq["ingest_us_per_req"], result["cores"]
    text += (
        f" Why: at {large['papers']:,} papers each paper costs PostgreSQL {pg_us:.0f} µs of CPU and the "
        f"ingesting process {client_us:.0f} µs. With {cores} cores shared by both, that caps ingest near "
        f"{cores * 1e6 / (pg_us + client_us):,.0f} papers/s; the target at this cost needs "
        f"{math.ceil(TARGET.at_least * (pg_us + client_us) / 1e6)} cores kept busy (the work splits by listing "
        "across processes)."
    )
    no_fts, with_fts = small["no_fts"], small["modes"]["sequential"]
    share = 1 - no_fts["postgres_us_per_req"] / with_fts["postgres_us_per_req"]
    text += (
        f" The generated full-text column and the two GIN indexes take {share:.0%} of PostgreSQL's CPU per "
        f"paper (diagnostic, not a supported schema: the {small['papers']:,}-paper sequential ingest without "
        f"them ran at {no_fts['rps']:,.0f} papers/s, PostgreSQL {no_fts['postgres_us_per_req']:.0f} µs/paper), "
        "so building them once after a bulk load is the lever on the PostgreSQL side."
    )
    return text


def render(result: dict) -> str:
    """The ingest section of docs/benchmarks.md."""
    small = result["sizes"][0]
    repeats = len(small["modes"]["sequential"]["runs_papers_per_s"])
    noise = max(m["other_cpu_pct"] for s in result["sizes"] for m in s["modes"].values())
    lines = [
        "## Ingest",
        "",
        "Through the real pipeline (`ingest_source` per listing of 150 papers: decode, parse, normalize, store "
        "in one transaction), into a fresh database of a temporary embedded PostgreSQL with default settings, "
        f"no embedding. {small['papers']:,} papers: median of {repeats} runs; larger sizes: one run. *2 "
        "processes* is two processes splitting the listings, as two `papers worker`s draining a queue would. "
        "CPU per paper is read from /proc for the ingesting process(es) and PostgreSQL; *other* is what the "
        f"rest of the machine used meanwhile, in % of one core ({result['cores']} cores).",
        "",
        _throughput_table(result),
        "",
        f"Decode + parse + normalize alone (no database) costs {small['parse_normalize_us']:.0f} µs of CPU per "
        f"paper: on its own it would keep one core busy at {1e6 / small['parse_normalize_us']:,.0f} papers/s.",
        "",
        _verdict(result),
    ]
    if noise > 20:
        lines += ["", f"Other processes used up to {noise:.0f}% of a core during an ingest run: noisy figures."]
    lines += ["", *parts.embedding_part(result["embedding"]), "", *parts.worker_part(result["worker"])]
    return "\n".join(lines)


if __name__ == "__main__":
    # A smoke run at a small size (python -m bench.sections.ingest 2000): printed, never saved.
    SIZES = (int(sys.argv[1]) if len(sys.argv) > 1 else 2000,)
    REPEATS, parts.EMBED_PAPERS = 1, 64
    print(render(run(False)))
