"""The ingest section's embedding parts: the embedding pipeline against the raw model, and worker memory.

Embedding: `embed_pending` with a `LocalEmbedder` against one raw `encode` call on the same texts, alternating.
Worker: `papers worker --once` draining a queue, its process tree's RSS sampled every 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from bench.harness import report
from bench.harness.corpus import generate, listings, load
from bench.harness.load import medians
from bench.harness.meter import RssSampler, measured_async, wait_quiet
from bench.harness.postgres import TempPostgres
from bench.harness.service import ROOT, VENV_BIN, clean_env
from bench.harness.tools import log

EMBED_TARGET = report.Target(at_least=0.9)  # pipeline throughput / raw model throughput
EMBED_PAPERS = 600


# ---------------------------------------------------------------- embedding pipeline against the raw model


class _TimedEmbedder:
    """An embedder adding up the wall time of its calls: what the pipeline spends in the model."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.model, self.dim, self.ready, self.seconds = inner, inner.model, inner.dim, True, 0.0
        self.backend, self.quantization = inner.backend, inner.quantization

    async def embed(self, texts: Sequence[str]) -> Any:
        """The inner embedder's vectors, timed."""
        started = time.perf_counter()
        try:
            return await self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - started


async def _raw(embedder: Any, texts: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    embedder.encode(texts)  # blocks the event loop on purpose: nothing else runs, as in a plain script
    seconds = time.perf_counter() - started
    return {"rps": len(texts) / seconds, "seconds": seconds}


async def _pipeline(conn: Any, embedder: Any, expected: int) -> dict[str, Any]:
    from ingest.embed import embed_pending

    timed = _TimedEmbedder(embedder)
    started = time.perf_counter()
    done = await embed_pending(conn, timed)
    seconds = time.perf_counter() - started
    if done.embedded != expected or done.failed:
        raise SystemExit(f"embed_pending embedded {done.embedded} of {expected} ({done.failed} failed)")
    return {"rps": expected / seconds, "seconds": seconds, "encode_share": timed.seconds / seconds}


async def embedding(pg: TempPostgres, repeats: int) -> dict[str, Any]:
    """The same texts through one raw `encode` and through `embed_pending`, alternating, `repeats` times."""
    import torch

    from ingest.embedder import LocalEmbedder, embedding_text
    from sql import embeddings
    from sql.db import connection

    embedder, started = LocalEmbedder(), time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - started
    embedder.encode(["a warm-up text"] * 8)
    url = await pg.fresh_database()
    await load(url, generate(EMBED_PAPERS), vectors=False)
    trees = {"bench": os.getpid(), "postgres": pg.pid}
    raw, pipeline = [], []
    async with connection(url) as conn:
        texts = [embedding_text(p.title, p.abstract) for p in await embeddings.pending(conn, limit=10 * EMBED_PAPERS)]
        for _ in range(repeats):  # alternating, so slow drift of the machine falls on both
            wait_quiet()
            raw.append(await measured_async(lambda: _raw(embedder, texts), trees))
            await conn.execute("UPDATE papers SET embedding = NULL, embedding_model = NULL, embedding_attempts = 0")
            await conn.execute("VACUUM papers")
            wait_quiet()
            pipeline.append(await measured_async(lambda: _pipeline(conn, embedder, len(texts)), trees))
            log("ingest", f"embedding: raw {raw[-1]['rps']:.1f}/s, pipeline {pipeline[-1]['rps']:.1f}/s")
    return {
        "texts": len(texts),
        "model_load_s": round(load_s, 1),
        "batch": embedder.batch_size,
        "max_tokens": embedder.max_tokens,
        "torch_threads": torch.get_num_threads(),
        "raw": medians(raw),
        "pipeline": medians(pipeline),
        "raw_s": [round(r["seconds"], 2) for r in raw],
        "pipeline_s": [round(r["seconds"], 2) for r in pipeline],
    }


# ---------------------------------------------------------------- worker memory


async def worker(pg: TempPostgres, papers: int, embedder: str) -> dict[str, Any]:
    """`papers worker --once` draining a queue of `papers` papers: seconds and the peak RSS of its process tree."""
    from sql import jobs
    from sql.db import connection

    url = await pg.fresh_database()
    async with connection(url) as conn:
        for name, raw in listings(generate(papers)):
            await jobs.enqueue(conn, name, raw)
    env = clean_env(DATABASE_URL=url, PAPERS_EMBEDDER=embedder)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(VENV_BIN / "papers"), "worker", "--once"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with RssSampler(proc.pid, every=0.05).running() as rss:
        _, err = await asyncio.to_thread(proc.communicate, timeout=900)
    seconds = time.perf_counter() - started
    async with connection(url) as conn:
        stored = await conn.fetchval("SELECT count(*) FROM papers")
        embedded = await conn.fetchval("SELECT count(*) FROM papers WHERE embedding IS NOT NULL")
        done = await conn.fetchval("SELECT count(*) FROM ingest_jobs WHERE status = 'done'")
    if proc.returncode or stored != papers:
        raise SystemExit(f"papers worker --once exited {proc.returncode} with {stored}/{papers} papers:\n{err[-800:]}")
    return {
        "papers": papers,
        "embedder": embedder,
        "jobs_done": done,
        "embedded": embedded,
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(rss.peak / 2**20),
    }


def embedding_part(emb: dict) -> list[str]:
    """The embedding part of the ingest section."""
    raw, pipe = emb["raw"], emb["pipeline"]
    ratio, cpu_ratio = pipe["rps"] / raw["rps"], raw["bench_us_per_req"] / pipe["bench_us_per_req"]
    rows = [
        [
            "raw `encode`",
            ", ".join(f"{s:.2f}" for s in emb["raw_s"]),
            raw["rps"],
            raw["bench_us_per_req"] / 1e3,
            None,
            round(raw["other_cpu_pct"]),
        ],
        [
            "`embed_pending`",
            ", ".join(f"{s:.2f}" for s in emb["pipeline_s"]),
            pipe["rps"],
            pipe["bench_us_per_req"] / 1e3,
            pipe["postgres_us_per_req"] / 1e3,
            round(pipe["other_cpu_pct"]),
        ],
    ]
    headers = ["", "Seconds (runs)", "Texts/s", "Process CPU ms/text", "PostgreSQL CPU ms/text", "Other CPU %"]
    verdict = EMBED_TARGET.verdict(ratio)
    lines = [
        "### Embedding: pipeline against the raw model",
        "",
        f"The same {emb['texts']} texts (`embedding_text` of the stored papers): the raw model is one "
        f"`LocalEmbedder().encode(texts)` call (MiniLM, {emb['max_tokens']} word pieces, batch {emb['batch']}, "
        f"{emb['torch_threads']} torch threads); the pipeline is `embed_pending` (reads pending papers, sorts "
        "them by length, encodes a batch at a time in a thread, writes each batch's vectors with the HNSW index "
        f"maintained). Model loaded once beforehand ({emb['model_load_s']} s); median of {len(emb['raw_s'])}, "
        "raw and pipeline alternating.",
        "",
        report.table(headers, rows, "llrrrr"),
        "",
        f"**Target: pipeline throughput {EMBED_TARGET} of the raw model's: {verdict}** (ratio {ratio:.3f}; by "
        f"this process's CPU per text, less sensitive to other work on the machine: {cpu_ratio:.3f}). The "
        f"pipeline spends {pipe['encode_share']:.0%} of its wall time inside the model's calls: its own "
        f"overhead (database reads and writes, thread hand-off) is {1 - pipe['encode_share']:.0%}.",
    ]
    if ratio > 1:
        lines[-1] += " A ratio above 1 is run-to-run variation: both run the same model on the same texts."
    elif verdict == "missed" and pipe["encode_share"] >= EMBED_TARGET.at_least:
        lines[-1] += (
            f" The miss is then the model's own run-to-run variation (the raw runs took "
            f"{min(emb['raw_s']):.2f} to {max(emb['raw_s']):.2f} s for the same texts), not the "
            "pipeline."
        )
    return lines


def worker_part(workers: list[dict]) -> list[str]:
    """The worker-memory part of the ingest section."""
    keys = ("papers", "embedder", "jobs_done", "embedded", "seconds", "peak_rss_mib")
    rows = [[w[k] for k in keys] for w in workers]
    return [
        "### Worker memory",
        "",
        "`papers worker --once` as a subprocess draining a queue filled with `sql.jobs.enqueue` (one job per "
        "listing of 150 papers); RSS of its process tree sampled every 50 ms. Seconds include interpreter start, "
        "imports and, with the local embedder, loading the model.",
        "",
        report.table(["Papers", "PAPERS_EMBEDDER", "Jobs done", "Embedded", "Seconds", "Peak RSS MiB"], rows, "rlrrrr"),
    ]
