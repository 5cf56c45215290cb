"""Sharding, simulated: one collection split into 1, 2, 4 and 8 parts, queried part by part and merged.

    flock /tmp/papers-bench.lock .venv/bin/python -m bench.run --only shards      # 50k papers, about 6 minutes
    PAPERS_BENCH_SHARDS_PAPERS=5000 .venv/bin/python -m bench.sections.shards     # smoke run, printed, not saved

The search section's corpus (papers recombined from the seed listings, real vocabulary, clustered vectors) is
ingested into one temporary embedded PostgreSQL: the single node, and the 1-part layout. For 2, 4 and 8 parts,
its papers are copied into as many migrated databases of the same server by a hash of their title fingerprint
(bench/harness/shards.py); each part builds its own HNSW index and its own BM25 postings and statistics. Every
query runs on each part through the product's functions and the answers are merged: similarity by distance
(each part's top 10), keyword by BM25 score with each part's own statistics or with the collection's (a first
round sums the parts' document frequencies), hybrid by fusing the merged rankings (and, to show why not, by
merging per-part fusions). Answers are compared with the single node's and with exact rankings (vectors: brute force
in numpy; keyword: every posting of each query stem read). Latency: the parts asked one after another
(sequential gather) or all at once (concurrent gather), from one client, parts on one 2-core machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from api.services.search import keyword_query
from bench.harness import report
from bench.harness.corpus import load
from bench.harness.postgres import TempPostgres, sql, temp_postgres
from bench.harness.shards import Parts, opened, same_ranking, split
from bench.harness.tools import log
from bench.harness.vocabulary import queries, real_vocabulary
from schema.api import ScoredPaper

TITLE = "Sharding, simulated"
PAPERS = int(os.environ.get("PAPERS_BENCH_SHARDS_PAPERS", "50000"))
LAYOUTS = (1, 2, 4, 8)
QUERIES = 100
K = 10
PERTURBATION = 0.1  # query vectors: corpus vectors plus noise of this norm, as the hnsw section makes them
EVERY = 10**9  # postings read per stem for the exact keyword ranking: all of them
NEAREST = "SELECT paper_key FROM papers p WHERE p.embedding IS NOT NULL ORDER BY p.embedding <=> $1 LIMIT 10"
KINDS = ("similarity", "keyword, per-part statistics", "keyword, global statistics", "hybrid")
TARGETS = {
    "exact_keyword": report.Target(at_least=1.0),
    "hybrid_p99_ms": report.Target(at_most=100.0),  # the search section's hybrid p99 target
}


def _overlap(found: list[list[str]], wanted: list[list[str]]) -> float:
    """Mean share of each wanted top K found (recall@K when wanted is exact)."""
    return round(statistics.mean(len(set(a) & set(b)) / K for a, b in zip(found, wanted, strict=True)), 3)


def _ids(hits: list[ScoredPaper]) -> list[str]:
    return [h.id for h in hits]


def _summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"p50": round(statistics.median(ms), 2), "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2)}


async def _exact_vectors(url: str, vectors: np.ndarray, probes: np.ndarray) -> list[list[str]]:
    """The true top K of each probe by cosine similarity over every stored vector (brute force)."""
    from sql.db import connection

    async with connection(url) as conn:
        rows = await conn.fetch("SELECT public_id, title FROM papers")
    # Titles end in "(i)", the paper's row in the corpus's vector matrix (bench/harness/corpus.py).
    rows_of = np.array([int(re.search(r"\((\d+)\)\s*$", r["title"]).group(1)) for r in rows])  # type: ignore[union-attr]
    ids = np.array([r["public_id"] for r in rows])
    scores = probes @ vectors[rows_of].T
    top = np.argsort(-scores, axis=1)[:, :K]
    return [ids[t].tolist() for t in top]


async def _answers(parts: Parts, texts: list[str], probes: np.ndarray) -> dict[str, list[Any]]:
    """Every query's merged top K, by design."""
    found: dict[str, list[Any]] = {}
    designs: dict[str, Callable[[int], Awaitable[list[ScoredPaper]]]] = {
        "similarity": lambda i: parts.nearest(probes[i], K),
        "keyword, per-part statistics": lambda i: parts.keyword(keyword_query(texts[i]), K, global_stats=False),
        "keyword, global statistics": lambda i: parts.keyword(keyword_query(texts[i]), K, global_stats=True),
        "hybrid": lambda i: parts.hybrid(keyword_query(texts[i]), probes[i], K, fuse_first=False),
        "hybrid, fused per part": lambda i: parts.hybrid(keyword_query(texts[i]), probes[i], K, fuse_first=True),
    }
    for name, design in designs.items():
        found[name] = [_ids(await design(i)) for i in range(len(texts))]
    # the exact ranking (every posting read) with scores, to check that merged scores equal the single node's
    found["keyword exact scored"] = [
        [(h.id, h.score) for h in await parts.keyword(keyword_query(t), K, global_stats=True, depth=EVERY)]
        for t in texts
    ]
    found["keyword exact"] = [[i for i, _ in ranking] for ranking in found["keyword exact scored"]]
    return found


async def _latency(parts: Parts, texts: list[str], probes: np.ndarray) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p99 of each kind of query, parts asked one after another and all at once, round robin."""
    kinds: dict[str, Callable[[int], Awaitable[list[ScoredPaper]]]] = {
        KINDS[0]: lambda i: parts.nearest(probes[i], K),
        KINDS[1]: lambda i: parts.keyword(keyword_query(texts[i]), K, global_stats=False),
        KINDS[2]: lambda i: parts.keyword(keyword_query(texts[i]), K, global_stats=True),
        KINDS[3]: lambda i: parts.hybrid(keyword_query(texts[i]), probes[i], K, fuse_first=False),
    }
    ms: dict[str, dict[str, list[float]]] = {k: {"sequential": [], "concurrent": []} for k in kinds}
    for i in range(len(texts)):
        for kind, query in kinds.items():
            for mode in ("sequential", "concurrent"):
                parts.concurrent = mode == "concurrent"
                started = time.perf_counter()
                await query(i)
                ms[kind][mode].append((time.perf_counter() - started) * 1000)
    parts.concurrent = True
    return {kind: {mode: _summary(v) for mode, v in modes.items()} for kind, modes in ms.items()}


async def _layout(pg: TempPostgres, url: str, n: int, texts: list[str], probes: np.ndarray) -> dict[str, Any]:
    """Split the collection into n parts (n = 1: the single node itself), answer every query, time them."""
    urls, started = [url], time.perf_counter()
    if n > 1:
        urls = [await pg.fresh_database() for _ in range(n)]
        counts = await split(url, urls)
    else:
        counts = [int((await sql(url, "SELECT count(*) FROM papers"))[0])]
    split_s = round(time.perf_counter() - started, 1)
    async with opened(urls) as parts:
        # whether each part's planner takes its HNSW index (a small part may be scanned instead: exact, slower)
        plans = await parts.each(lambda c: c.fetchval(f"EXPLAIN (FORMAT JSON) {NEAREST}", probes[0]))
        hnsw = sum("papers_embedding_hnsw_idx" in str(plan) for plan in plans)
        for i in range(10):  # warm caches
            await parts.hybrid(keyword_query(texts[i]), probes[i], K, fuse_first=False)
        answers = await _answers(parts, texts, probes)
        latency = await _latency(parts, texts, probes)
    if n > 1:
        for part in urls:
            await sql(pg.url, f"DROP DATABASE {urllib.parse.urlsplit(part).path.lstrip('/')}")
    log("shards", f"{n} parts {counts}: split {split_s} s, latency {latency}")
    return {"parts": n, "papers": counts, "hnsw_parts": hnsw, "split_s": split_s, "answers": answers, "ms": latency}


def _quality(
    layout: dict[str, Any], single: dict[str, Any], exact_vectors: list[list[str]], texts: list[str]
) -> dict[str, Any]:
    """A layout's answers against the single node's and the exact rankings."""
    a, s = layout["answers"], single["answers"]
    pairs = zip(a["keyword exact scored"], s["keyword exact scored"], strict=True)
    differ = [
        {"query": t, "merged": x, "single": y} for t, (x, y) in zip(texts, pairs, strict=True) if not same_ranking(x, y)
    ]
    return {
        "exact_keyword_mismatches": differ[:3],
        "similarity_recall": _overlap(a["similarity"], exact_vectors),
        "similarity_vs_single": _overlap(a["similarity"], s["similarity"]),
        "keyword_local_vs_exact": _overlap(a["keyword, per-part statistics"], s["keyword exact"]),
        "keyword_global_vs_exact": _overlap(a["keyword, global statistics"], s["keyword exact"]),
        "keyword_global_vs_single": _overlap(a["keyword, global statistics"], s["keyword, global statistics"]),
        "exact_keyword_identical": round(
            statistics.mean(
                same_ranking(x, y) for x, y in zip(a["keyword exact scored"], s["keyword exact scored"], strict=True)
            ),
            3,
        ),
        "hybrid_vs_single": _overlap(a["hybrid"], s["hybrid"]),
        "hybrid_fused_per_part_vs_single": _overlap(a["hybrid, fused per part"], s["hybrid"]),
    }


async def _simulate(pg: TempPostgres, url: str, vectors: np.ndarray, texts: list[str]) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    probes = vectors[rng.choice(len(vectors), len(texts), replace=False)]
    probes = probes + rng.normal(scale=PERTURBATION / np.sqrt(vectors.shape[1]), size=probes.shape)
    probes = (probes / np.linalg.norm(probes, axis=1, keepdims=True)).astype(np.float32)
    exact_vectors = await _exact_vectors(url, vectors, probes)
    layouts = [await _layout(pg, url, n, texts, probes) for n in LAYOUTS]
    single = layouts[0]
    async with opened([url]) as one:
        walk_vs_exact = _overlap(
            [_ids(await one.keyword(keyword_query(t), K, global_stats=False)) for t in texts],
            single["answers"]["keyword exact"],
        )
    rows = []
    for layout in layouts:
        figures = {k: v for k, v in layout.items() if k != "answers"}
        rows.append(figures | _quality(layout, single, exact_vectors, texts))
    return {"layouts": rows, "single_keyword_walk_vs_exact": walk_vs_exact}


def run(full: bool) -> dict:
    """Load the corpus into the single node, then split, query and merge for each layout."""
    texts = queries(QUERIES)
    corpus = real_vocabulary(PAPERS)
    with temp_postgres("papers-bench-shards-") as pg:
        url = asyncio.run(pg.fresh_database())
        started = time.perf_counter()
        loaded = asyncio.run(load(url, corpus))
        log("shards", f"loaded {loaded.counts['papers']} papers in {time.perf_counter() - started:.0f} s")
        result = asyncio.run(_simulate(pg, url, corpus.vectors, texts))
    return {"papers": loaded.counts["papers"], "queries": len(texts), "k": K, **result}


def render(result: dict) -> str:
    """The section of docs/benchmarks.md."""
    layouts = result["layouts"]
    q, k = result["queries"], result["k"]
    quality = [
        (
            n["parts"],
            f"{min(n['papers']):,}-{max(n['papers']):,}",
            f"{n['hnsw_parts']}/{n['parts']}",
            n["split_s"],
            report.fmt(n["similarity_recall"], 3),
            report.fmt(n["similarity_vs_single"], 3),
            report.fmt(n["keyword_local_vs_exact"], 3),
            report.fmt(n["keyword_global_vs_exact"], 3),
            report.fmt(n["keyword_global_vs_single"], 3),
            f"{round(n['exact_keyword_identical'] * q)}/{q}",
            report.fmt(n["hybrid_vs_single"], 3),
            report.fmt(n["hybrid_fused_per_part_vs_single"], 3),
        )
        for n in layouts
    ]
    latency = [
        (
            n["parts"],
            kind,
            report.fmt(n["ms"][kind]["sequential"]["p50"]),
            report.fmt(n["ms"][kind]["sequential"]["p99"]),
            report.fmt(n["ms"][kind]["concurrent"]["p50"]),
            report.fmt(n["ms"][kind]["concurrent"]["p99"]),
        )
        for kind in KINDS
        for n in layouts
    ]
    widest, single = layouts[-1], layouts[0]
    checks = [
        (
            f"similarity recall@{k} at {widest['parts']} parts, against the single node's"
            f" {single['similarity_recall']:.3f}",
            widest["similarity_recall"],
            report.Target(at_least=single["similarity_recall"]),
        ),
        (
            f"exact keyword top {k} merged with global statistics = single node's (ids and scores), share of queries,"
            " every layout",
            float(min(n["exact_keyword_identical"] for n in layouts)),
            TARGETS["exact_keyword"],
        ),
        (
            f"keyword (global statistics) recall@{k} against exact BM25 at {widest['parts']} parts, against the single"
            f" node's {result['single_keyword_walk_vs_exact']:.3f}",
            widest["keyword_global_vs_exact"],
            report.Target(at_least=result["single_keyword_walk_vs_exact"]),
        ),
        (
            f"hybrid p99 ms at {widest['parts']} parts, concurrent gather",
            widest["ms"]["hybrid"]["concurrent"]["p99"],
            TARGETS["hybrid_p99_ms"],
        ),
    ]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"{result['papers']:,} papers (the search section's real-vocabulary corpus with clustered vectors) in one"
            " database, then split by a hash of the title fingerprint into"
            f" {', '.join(str(n['parts']) for n in layouts)}"
            " databases of one embedded PostgreSQL, each with its own HNSW index and BM25 postings and statistics;"
            f" {q} queries (2-4 content words of seed titles, each paired with a corpus vector plus noise of norm"
            f" {PERTURBATION}); every part answers its top {k} (50 per ranking for hybrid) through the product's"
            " functions and the answers are merged (`bench/sections/shards.py`, `bench/harness/shards.py`). 1 part is"
            " the single node itself. Overlap@k: the mean share of the reference's top k found; recall: against"
            " brute-force cosine top k (vectors) or BM25 with every posting read (keyword).",
            "",
            report.table(
                (
                    "parts",
                    "papers per part",
                    "parts whose plan takes HNSW",
                    "split s",
                    f"similarity recall@{k}",
                    "similarity overlap with single",
                    "keyword, per-part statistics, vs exact",
                    "keyword, global statistics, vs exact",
                    "keyword, global statistics, overlap with single",
                    "exact keyword merged = single",
                    "hybrid overlap with single",
                    "hybrid fused per part, overlap with single",
                ),
                quality,
                align="rrrrrrrrrrrr",
            ),
            "",
            f"The single node's own keyword answer (postings walk, depth 200) finds"
            f" {result['single_keyword_walk_vs_exact']:.3f} of the exact top {k}; each part walking 200 postings per"
            " stem reads more of them in all, so the merged answers come closer to the exact ranking than the single"
            " node's, which lowers their overlap with the single node's keyword answers and the hybrid ones built on"
            " them. At 1 part, fusing per part differs from the single node only by the order of papers tied in score.",
            "",
            f"Latency per query at the client, ms, {q} queries, kinds and gather modes round robin (global statistics"
            " include their first round; hybrid is a global-statistics keyword gather plus a similarity gather):",
            "",
            report.table(
                ("parts", "query", "sequential p50", "sequential p99", "concurrent p50", "concurrent p99"),
                latency,
                align="rlrrrr",
            ),
            "",
            report.table(
                ("target", "measured", "wanted", "verdict"),
                [(name, report.fmt(v, 2 if "ms" in name else 3), str(t), t.verdict(v)) for name, v, t in checks],
                align="lrll",
            ),
        ]
    )


if __name__ == "__main__":
    print(render(run(False)))
