"""HNSW benchmark: index build time, similar-paper query latency and recall@10 against exact search.

    .venv/bin/python -m bench.run --only hnsw            # 100k papers
    .venv/bin/python -m bench.run --only hnsw --full     # adds 1M papers

For each size, a temporary embedded PostgreSQL is started and migrated; the synthetic corpus
(`bench.corpus`, clustered unit vectors) is written straight into `papers` with COPY (valid
fingerprints and public ids, the vectors as embeddings, first/last listed = the listing day), with
the HNSW index dropped beforehand. The index is then built with the migration's parameters
(m=16, ef_construction=64) under `maintenance_work_mem` = 2GB (4GB at 1M) and timed; at 100k a
second build with m=32, ef_construction=128 follows when the first took under BIG_BUILD_BUDGET_S.

Queries: 200 perturbed corpus vectors through `sql.search.nearest` (limit 10, the function the
similar-papers endpoints use), unfiltered and with a listing-date filter that keeps ~10% of the
papers (`listed_from`/`listed_to`; pgvector's iterative scan must still return 10 rows), at
hnsw.ef_search 40, 100 and 200 (set through `sql.search.EF_SEARCH`). Latency is measured at the
client, per call (BEGIN, two SET LOCALs, the query, COMMIT over a Unix socket), after a warm-up
pass. Recall@10 is against the exact top 10 from a sequential scan (`sql.search.exact_nearest`,
and the same query with the date filter).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time

import numpy as np

from bench.corpus import generate
from bench.ingest import temp_postgres

SIZES = (100_000,)
FULL_SIZES = (100_000, 1_000_000)
QUERIES = 200
EF_SEARCHES = (40, 100, 200)
LIMIT = 10
TARGET_P99_MS = 20.0
TARGET_RECALL = 0.95
BIG_BUILD_BUDGET_S = 150.0  # try m=32/ef_construction=128 at 100k only when m=16 built faster than this
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PERTURBATION = 0.1  # norm of the noise added to a corpus vector to make a query


async def _load(conn, corpus, chunk: int = 20_000) -> float:
    """COPY the corpus into papers (no HNSW index); return seconds."""
    from schema.identity import paper_public_id, title_fingerprint

    columns = ["public_id", "fingerprint", "title", "abstract", "first_listed", "last_listed", "embedding",
               "embedding_model"]  # fmt: skip
    started = time.perf_counter()
    papers, vectors = corpus.papers, corpus.vectors
    for start in range(0, len(papers), chunk):
        records = []
        for i in range(start, min(start + chunk, len(papers))):
            p = papers[i]
            fp = title_fingerprint(p.title)
            records.append((paper_public_id(fp), fp, p.title, p.abstract, p.listed_on, p.listed_on, vectors[i], MODEL))
        await conn.copy_records_to_table("papers", records=records, columns=columns)
    await conn.execute("INSERT INTO embedding_space (model, dim) VALUES ($1, $2)", MODEL, vectors.shape[1])
    return time.perf_counter() - started


async def _build(conn, m: int, ef_construction: int, maintenance_work_mem: str) -> dict:
    notices: list[str] = []
    listener = lambda _conn, msg: notices.append(getattr(msg, "message", str(msg)))  # noqa: E731
    await conn.execute("DROP INDEX IF EXISTS papers_embedding_hnsw_idx")
    conn.add_log_listener(listener)
    try:
        await conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        workers = await conn.fetchval("SHOW max_parallel_maintenance_workers")
        started = time.perf_counter()
        await conn.execute(
            "CREATE INDEX papers_embedding_hnsw_idx ON papers USING hnsw (embedding vector_cosine_ops)"
            f" WITH (m = {m}, ef_construction = {ef_construction})"
        )
        seconds = time.perf_counter() - started
        await conn.execute("RESET maintenance_work_mem")
        size = await conn.fetchval("SELECT pg_relation_size('papers_embedding_hnsw_idx')")
    finally:
        conn.remove_log_listener(listener)
    return {"m": m, "ef_construction": ef_construction, "build_s": round(seconds, 1),
            "index_mib": round(size / 2**20, 1), "maintenance_work_mem": maintenance_work_mem,
            "max_parallel_maintenance_workers": int(workers), "notices": notices}  # fmt: skip


def _queries(vectors: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(11)
    picked = vectors[rng.choice(len(vectors), QUERIES, replace=False)]
    noise = rng.normal(scale=PERTURBATION / np.sqrt(vectors.shape[1]), size=picked.shape).astype(np.float32)
    queries = picked + noise
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


_EXACT_FILTERED = """SELECT public_id FROM papers p
    WHERE p.embedding IS NOT NULL AND p.last_listed >= $2 AND p.first_listed <= $3
    ORDER BY p.embedding <=> $1 LIMIT $4"""


async def _exact(conn, queries: np.ndarray, flt) -> tuple[list[list[str]], list[float]]:
    from sql.search import exact_nearest

    truth, times = [], []
    for q in queries:
        started = time.perf_counter()
        if flt is None:
            truth.append(await exact_nearest(conn, q, limit=LIMIT))
        else:
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                rows = await conn.fetch(_EXACT_FILTERED, q, flt.listed_from, flt.listed_to, LIMIT)
            truth.append([r["public_id"] for r in rows])
        times.append(time.perf_counter() - started)
    return truth, times


async def _approximate(conn, queries: np.ndarray, flt, ef: int) -> tuple[list[list[str]], list[float]]:
    import sql.search
    from schema.api import PaperFilter

    saved, sql.search.EF_SEARCH = sql.search.EF_SEARCH, ef
    try:
        found, times = [], []
        for q in queries:
            started = time.perf_counter()
            rows = await sql.search.nearest(conn, q, flt or PaperFilter(), limit=LIMIT)
            times.append(time.perf_counter() - started)
            found.append([r.id for r in rows])
    finally:
        sql.search.EF_SEARCH = saved
    return found, times


async def _plan(conn, q: np.ndarray, flt) -> list[str]:
    """Scan nodes of the plan for the nearest-neighbour query shape (with the session's settings as nearest sets them)."""
    where = "p.embedding IS NOT NULL" + (" AND p.last_listed >= $2 AND p.first_listed <= $3" if flt else "")
    args = [q, flt.listed_from, flt.listed_to] if flt else [q]
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            raw = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) SELECT p.public_id FROM papers p WHERE {where}"
                f" ORDER BY p.embedding <=> $1 LIMIT {LIMIT}", *args)  # fmt: skip
    except Exception as exc:  # informational only
        return [f"unavailable: {exc}"]
    nodes: list[str] = []

    def walk(node: dict) -> None:
        label = node["Node Type"] + (f" using {node['Index Name']}" if "Index Name" in node else "")
        nodes.append(label)
        for child in node.get("Plans", []):
            walk(child)

    walk((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
    return nodes


def _stats(times: list[float]) -> dict:
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2)}  # fmt: skip


def _recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / max(len(t), 1) for f, t in zip(found, truth)]))


async def _measure_queries(conn, queries: np.ndarray, flts: dict, truth: dict) -> list[dict]:
    out = []
    for label, flt in flts.items():  # warm-up pass (index and heap into the caches), not measured
        await _approximate(conn, queries, flt, max(EF_SEARCHES))
    for ef in EF_SEARCHES:
        for label, flt in flts.items():
            found, times = await _approximate(conn, queries, flt, ef)
            out.append({"ef_search": ef, "filter": label, **_stats(times), "recall_at_10": round(_recall(found, truth[label]), 4),
                        "min_rows": min(len(f) for f in found)})  # fmt: skip
            print(f"  hnsw ef={ef} {label}: p50 {out[-1]['p50_ms']} ms p99 {out[-1]['p99_ms']} ms "
                  f"recall {out[-1]['recall_at_10']} min rows {out[-1]['min_rows']}", file=sys.stderr, flush=True)  # fmt: skip
    return out


async def _one_size(n: int) -> dict:
    from schema.api import PaperFilter
    from sql.db import connect

    started = time.perf_counter()
    corpus = generate(n)
    generate_s = time.perf_counter() - started
    queries = _queries(corpus.vectors)
    days = (corpus.papers[-1].listed_on - corpus.papers[0].listed_on).days + 1
    first = corpus.papers[0].listed_on + dt.timedelta(days=int(days * 0.45))
    flt = PaperFilter(listed_from=first, listed_to=first + dt.timedelta(days=max(int(days * 0.1), 1) - 1))
    flts = {"none": None, "date ~10%": flt}
    with temp_postgres("papers-bench-hnsw-") as pg:
        url = await pg.fresh_database()
        conn = await connect(url)
        try:
            pgvector = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            await conn.execute("DROP INDEX papers_embedding_hnsw_idx")
            load_s = await _load(conn, corpus)
            del corpus
            await conn.execute("VACUUM ANALYZE papers")
            matching = await conn.fetchval("SELECT count(*) FROM papers WHERE last_listed >= $1 AND first_listed <= $2",
                                           flt.listed_from, flt.listed_to)  # fmt: skip
            truth, exact_times = {}, {}
            for label, f in flts.items():
                truth[label], exact_times[label] = await _exact(conn, queries, f)
            print(f"  hnsw {n}: loaded in {load_s:.1f} s, exact p50 {_stats(exact_times['none'])['p50_ms']} ms",
                  file=sys.stderr, flush=True)  # fmt: skip
            builds = []
            configs = [(16, 64)]
            for m, efc in [(16, 64), (32, 128)]:
                if (m, efc) not in configs:
                    continue
                mwm = "4GB" if n >= 1_000_000 else "2GB"
                build = await _build(conn, m, efc, mwm)
                print(f"  hnsw {n}: m={m} ef_construction={efc} built in {build['build_s']} s", file=sys.stderr, flush=True)
                build["plans"] = {label: await _plan(conn, queries[0], f) for label, f in flts.items()}
                build["queries"] = await _measure_queries(conn, queries, flts, truth)
                builds.append(build)
                if m == 16 and n < 1_000_000 and build["build_s"] < BIG_BUILD_BUDGET_S:
                    configs.append((32, 128))
            if not any(b["m"] == 32 for b in builds):
                skipped = f"m=32/ef_construction=128 not built (m=16 took {builds[0]['build_s']} s; budget {BIG_BUILD_BUDGET_S:.0f} s, or 1M)"
            else:
                skipped = None
        finally:
            await conn.close()
    return {"papers": n, "pgvector": pgvector, "generate_s": round(generate_s, 1), "load_s": round(load_s, 1), "queries": QUERIES,
            "filter": {"listed_from": str(flt.listed_from), "listed_to": str(flt.listed_to), "matching": matching,
                       "fraction": round(matching / n, 3)},
            "exact": {label: _stats(t) for label, t in exact_times.items()}, "builds": builds, "skipped": skipped}  # fmt: skip


def run(full: bool) -> dict:
    """Build the index and measure latency and recall at each size."""
    load0 = os.getloadavg()[0]
    sizes = FULL_SIZES if full else SIZES
    results = [asyncio.run(_one_size(n)) for n in sizes]
    return {"sizes": results, "ef_searches": list(EF_SEARCHES), "perturbation": PERTURBATION, "cores": os.cpu_count(),
            "loadavg_1m_at_start": round(load0, 2), "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}  # fmt: skip


def render(result: dict) -> str:
    """The HNSW section of docs/benchmarks.md."""
    import sql.search

    lines = ["## HNSW", "",
             "Synthetic corpus with clustered 384-d unit vectors (64 topics) written straight into `papers` with "
             "COPY, HNSW index dropped before the load and built afterwards (cosine distance). Queries: "
             f"{QUERIES} corpus vectors perturbed by noise of norm {result['perturbation']}, through "
             "`sql.search.nearest` (limit 10), timed at the client per call (transaction, `SET LOCAL`s, query) "
             "after a warm-up pass; filtered queries use a listing-date window holding ~10% of the papers "
             "(iterative scan, `relaxed_order`). Recall@10 is against exact search (sequential scan) with the same "
             f"filter. The service's default is ef_search = {sql.search.EF_SEARCH}. pgvector "
             f"{result['sizes'][0].get('pgvector', '?')}; index builds use PostgreSQL's default parallel maintenance "
             "workers.", ""]  # fmt: skip
    lines += ["| Papers | m | ef_construction | Build s | Index MiB | maintenance_work_mem | parallel workers | Load (COPY) s |",
              "|---:|---:|---:|---:|---:|---|---:|---:|"]  # fmt: skip
    for size in result["sizes"]:
        for b in size["builds"]:
            lines.append(f"| {size['papers']:,} | {b['m']} | {b['ef_construction']} | {b['build_s']:.1f} | {b['index_mib']:.0f} | "
                         f"{b['maintenance_work_mem']} | {b['max_parallel_maintenance_workers']} | {size['load_s']:.1f} |")  # fmt: skip
    lines += ["", "| Papers | m / ef_construction | Filter | ef_search | p50 ms | p99 ms | Recall@10 | Min rows |",
              "|---:|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for size in result["sizes"]:
        for b in size["builds"]:
            for q in b["queries"]:
                lines.append(f"| {size['papers']:,} | {b['m']} / {b['ef_construction']} | {q['filter']} | {q['ef_search']} | "
                             f"{q['p50_ms']:.2f} | {q['p99_ms']:.2f} | {q['recall_at_10']:.3f} | {q['min_rows']} |")  # fmt: skip
        ex = size["exact"]
        lines.append(f"| {size['papers']:,} | exact (seq scan) | none | – | {ex['none']['p50_ms']:.2f} | {ex['none']['p99_ms']:.2f} | 1.000 | |")
        lines.append(f"| {size['papers']:,} | exact (seq scan) | date ~10% | – | {ex['date ~10%']['p50_ms']:.2f} | "
                     f"{ex['date ~10%']['p99_ms']:.2f} | 1.000 | |")  # fmt: skip
    notes = []
    for size in result["sizes"]:
        f = size["filter"]
        notes.append(f"- {size['papers']:,} papers: the date filter {f['listed_from']} – {f['listed_to']} keeps "
                     f"{f['matching']:,} papers ({f['fraction']:.1%}).")  # fmt: skip
        b0 = size["builds"][0]
        for label, plan in b0["plans"].items():
            notes.append(f"  Plan ({label}): {' → '.join(plan)}.")
        for b in size["builds"]:
            if b["notices"]:
                notes.append(f"  Build notices (m={b['m']}): {'; '.join(b['notices'])}")
        if size["skipped"]:
            notes.append(f"  {size['skipped']}.")
    lines += [""] + notes
    # Verdict at 100k, m=16 (the shipped index), the service's ef_search.
    at = next((s for s in result["sizes"] if s["papers"] == 100_000), result["sizes"][0])
    shipped = next(b for b in at["builds"] if b["m"] == 16)
    rows = {(q["ef_search"], q["filter"]): q for q in shipped["queries"]}
    default = rows.get((sql.search.EF_SEARCH, "none")) or rows[(100, "none")]
    filtered = rows.get((sql.search.EF_SEARCH, "date ~10%")) or rows[(100, "date ~10%")]
    p99_ok = default["p99_ms"] <= TARGET_P99_MS
    recall_ok = default["recall_at_10"] >= TARGET_RECALL
    lines += ["", f"**Target: similar-paper p99 ≤ 20 ms at 100k papers with recall@10 ≥ 0.95** (shipped index m=16, "
              f"ef_construction=64; ef_search {default['ef_search']}): p99 {default['p99_ms']:.2f} ms "
              f"({'met' if p99_ok else 'missed'}, {default['p99_ms'] / TARGET_P99_MS:.2f}× the budget), recall@10 "
              f"{default['recall_at_10']:.3f} ({'met' if recall_ok else 'missed'}, {default['recall_at_10'] / TARGET_RECALL:.2f}× target). "
              f"With the ~10% date filter: p99 {filtered['p99_ms']:.2f} ms, recall@10 {filtered['recall_at_10']:.3f}, "
              f"at least {filtered['min_rows']} rows per query."]  # fmt: skip
    if not (p99_ok and recall_ok):
        best = [q for q in shipped["queries"] if q["filter"] == "none" and q["recall_at_10"] >= TARGET_RECALL]
        other = [(b, q) for b in at["builds"] if b["m"] != 16 for q in b["queries"]
                 if q["filter"] == "none" and q["recall_at_10"] >= TARGET_RECALL and q["p99_ms"] <= TARGET_P99_MS]  # fmt: skip
        why = []
        if not recall_ok:
            why.append("the synthetic vectors scatter as isotropic Gaussian noise around 64 centroids, so within a "
                       "topic of ~1,500 papers (at 100k) the true neighbours sit at nearly the same distance and the "
                       "graph search must separate near-ties; recall rises with ef_search")  # fmt: skip
            if best:
                why.append(f"ef_search {best[0]['ef_search']} reaches recall {best[0]['recall_at_10']:.3f} at p99 {best[0]['p99_ms']:.2f} ms")
            if other:
                b, q = other[0]
                why.append(f"m={b['m']}/ef_construction={b['ef_construction']} reaches recall {q['recall_at_10']:.3f} "
                           f"at ef_search {q['ef_search']} with p99 {q['p99_ms']:.2f} ms (build {b['build_s']:.0f} s)")  # fmt: skip
        if not p99_ok:
            fast = [q for q in shipped["queries"] if q["filter"] == "none" and q["p99_ms"] <= TARGET_P99_MS]
            if default["p50_ms"] <= TARGET_P99_MS / 2:
                why.append(f"the p50 is {default['p50_ms']:.2f} ms, so the p99 (the slowest 2 of 200 calls) is a tail: "
                           "most likely calls descheduled while other work shares the cores (see the load average "
                           "below); a quiet machine or a core kept free for PostgreSQL should bring it under")  # fmt: skip
            else:
                why.append("the typical call itself is slow at this ef_search: each query visits about ef_search "
                           "graph nodes and computes a 384-d distance for each of their neighbours")  # fmt: skip
            if fast:
                why.append(f"ef_search {fast[0]['ef_search']} has p99 {fast[0]['p99_ms']:.2f} ms at recall {fast[0]['recall_at_10']:.3f}")
        lines[-1] += " Why / what would reach it: " + "; ".join(why) + "."
    dense = next((b for b in at["builds"] if b["m"] != 16), None)
    if dense:
        q = next(q for q in dense["queries"] if q["filter"] == "none" and q["ef_search"] == default["ef_search"])
        lines += ["", f"The denser build m={dense['m']}/ef_construction={dense['ef_construction']} reaches recall@10 "
                  f"{q['recall_at_10']:.3f} at p99 {q['p99_ms']:.2f} ms with the same ef_search, for "
                  f"{dense['build_s'] / shipped['build_s']:.1f}× the build time ({dense['build_s']:.0f} s against "
                  f"{shipped['build_s']:.0f} s). The shipped build's recall also varies from build to build "
                  "(pgvector draws each node's level at random), and near the target that variation matters. "
                  "For collections past about 100k papers, a migration that rebuilds the index with the "
                  "denser parameters buys the headroom; at the seed collection's size the planner scans exactly "
                  "and the index does not matter."]  # fmt: skip
    lines += _larger_sizes(result, default["ef_search"])
    noisy = max(result["loadavg_1m_at_start"], result["loadavg_1m_at_end"]) > 0.5 * result["cores"]
    lines += ["", f"Load average (1 min) at start {result['loadavg_1m_at_start']}, at end {result['loadavg_1m_at_end']}"
              + (" — other work was running on the machine; latencies may be noisy." if noisy else ".")]  # fmt: skip
    return "\n".join(lines)


def _larger_sizes(result: dict, ef_default: int) -> list[str]:
    """What the shipped index gives beyond the 100k target size, and what more recall would cost."""
    out = []
    for size in result["sizes"]:
        if size["papers"] <= 100_000:
            continue
        build = next(b for b in size["builds"] if b["m"] == 16)
        plain = sorted((q for q in build["queries"] if q["filter"] == "none"), key=lambda q: q["ef_search"])
        at = next(q for q in plain if q["ef_search"] == ef_default)
        text = (f"**At {size['papers']:,} papers** (no target; the shipped m=16/ef_construction=64, built in "
                f"{build['build_s']:.0f} s): ef_search {ef_default} gives recall@10 {at['recall_at_10']:.3f} at p99 "
                f"{at['p99_ms']:.2f} ms; " + ", ".join(f"ef_search {q['ef_search']}: {q['recall_at_10']:.3f} at p99 "
                                                    f"{q['p99_ms']:.2f} ms" for q in plain if q is not at) + ".")
        if at["recall_at_10"] < TARGET_RECALL:
            text += (f" Below {TARGET_RECALL} because each of the 64 synthetic topics now holds about "
                     f"{size['papers'] // 64:,} papers scattered as Gaussian noise around its centroid, so the 10 "
                     "true neighbours are near-ties among thousands; real embeddings are more structured (see "
                     "docs/similarity.md). What would reach it at this size: a larger ef_search (recall climbs "
                     "with it above, and p99 stays far under 20 ms), or a denser graph (m=32/ef_construction=128 "
                     "raised recall at 100k; not built at 1M here because it takes several times longer).")
        out += ["", text]
    return out
