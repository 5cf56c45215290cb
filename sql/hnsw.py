"""The HNSW index's build and ef_search, chosen for the collection by measurement (docs/design.md, "HNSW tuned to
the collection").

HNSW's recall at a given ef_search falls as the collection grows: at 100,000 papers the migration's build (m 16,
ef_construction 64) reaches recall@10 0.97 at ef_search 100, at 1,000,000 it reaches 0.81 there and 0.93 at 400
(docs/benchmarks.md, "A million papers"). So the build follows the collection's size (`build_for`, used by
`rebuild`), and `tune` measures the recall of the index as built, on this collection, and stores the smallest
ef_search that reaches limits.HNSW_RECALL; every API process reads it at start (`tuned_ef_search`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple, cast

import asyncpg
import numpy as np

from schema import limits
from schema.errors import DomainError, InvalidInputError
from sql.search import as_array

INDEX = "papers_embedding_hnsw_idx"
_NEXT = "papers_embedding_hnsw_next"  # a rebuild's new index until it replaces INDEX
_REBUILD_LOCK = (7300, 3)  # session advisory lock (the migrations' class, key 1; jobs have their own class)

# pgvector's defaults, and migration 002's build: enough at 100,000 papers.
SMALL_BUILD_DEFAULTS = (16, 64)
# At 1,000,000 papers m 24 / ef_construction 128 reaches recall@10 0.964 at ef_search 200 (p99 11.7 ms), where m 16 /
# ef_construction 64 never reaches 0.95 (0.929 at ef_search 400). Between 100,000 and 1,000,000 nothing was measured:
# the threshold is their geometric middle, and `tune` says so when a build falls short.
LARGE_BUILD_DEFAULTS = (24, 128)
LARGE_COLLECTION = 300_000

# ef_search values `tune` tries, from the default up: tuning only raises ef_search, because the default's search
# quality is what was measured on labelled sets (docs/similarity.md), and pgvector accepts at most 1,000.
LADDER = (100, 150, 200, 300, 400, 600, 800, limits.EF_SEARCH_RANGE[1])
QUERIES = 100  # sampled papers, each a query
NOISE = 0.1  # each query is its paper's vector moved by this much (norm), as the benchmarks' queries are
K = 10  # recall@K
NO_VECTORS = "no paper has an embedding yet; run `papers embed` first"


class Build(NamedTuple):
    """An HNSW index's build parameters."""

    m: int
    ef_construction: int


class Step(NamedTuple):
    """Recall@10 and latency of one ef_search over the sampled queries."""

    ef_search: int
    recall: float
    worst: float  # the lowest single query's recall: a mean hides a query whose results are all wrong
    p50_ms: float


class Tuning(NamedTuple):
    """What `tune` measured and chose; `ef_search` is None when no value of the ladder reached the target."""

    ef_search: int | None
    steps: list[Step]
    papers: int
    build: Build


class RebuildRunningError(DomainError):
    """Another session is rebuilding the HNSW index."""


class NoIndexError(DomainError):
    """There is no HNSW index, or no embedded paper, to measure."""


def build_for(papers: int) -> Build:
    """The HNSW build for a collection of `papers` embedded papers."""
    return Build(*(LARGE_BUILD_DEFAULTS if papers >= LARGE_COLLECTION else SMALL_BUILD_DEFAULTS))


def check(build: Build) -> None:
    """Refuse a build pgvector would refuse, before minutes of work rather than after."""
    if build.ef_construction < 2 * build.m:  # pgvector's own rule
        least, got = 2 * build.m, build.ef_construction
        raise InvalidInputError(f"ef_construction must be at least twice m ({least}), got {got}")


async def current_build(conn: asyncpg.Connection) -> Build | None:
    """The HNSW index's build parameters (pgvector's defaults where the index names none); None without an index."""
    row = await conn.fetchrow(  # one row always: a SELECT without FROM
        "SELECT to_regclass($1) IS NOT NULL AS found, (SELECT reloptions FROM pg_class WHERE oid = to_regclass($1))",
        INDEX,
    )
    assert row is not None
    found, options = row["found"], row["reloptions"]
    if not found:
        return None
    given = dict(option.split("=", 1) for option in options or ())
    m, ef_construction = SMALL_BUILD_DEFAULTS
    return Build(int(given.get("m", m)), int(given.get("ef_construction", ef_construction)))


async def embedded_papers(conn: asyncpg.Connection) -> int:
    """How many papers have a vector."""
    return int(await conn.fetchval("SELECT count(*) FROM papers WHERE embedding IS NOT NULL"))


async def rebuild(conn: asyncpg.Connection, build: Build, *, memory: str) -> float:
    """Build the HNSW index again with `build` while readers and writers go on; seconds. Forgets the tuning."""
    check(build)
    # One rebuild at a time: a second would drop the first's half-built index under it.
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *_REBUILD_LOCK):
        raise RebuildRunningError("another HNSW rebuild is running on this database; run this one after it")
    try:
        return await _rebuild(conn, build, memory)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", *_REBUILD_LOCK)


async def _rebuild(conn: asyncpg.Connection, build: Build, memory: str) -> float:
    await conn.execute(f"DROP INDEX IF EXISTS {_NEXT}")  # an interrupted rebuild's leftover (CONCURRENTLY leaves it)
    try:  # PostgreSQL checks the value: a malformed one is refused before anything is built
        await conn.execute("SELECT set_config('maintenance_work_mem', $1, false)", memory)
    except asyncpg.InvalidParameterValueError as exc:
        raise InvalidInputError(f"maintenance_work_mem {memory!r}: {exc}") from None
    started = time.perf_counter()
    try:
        await conn.execute(
            f"CREATE INDEX CONCURRENTLY {_NEXT} ON papers USING hnsw (embedding vector_cosine_ops)"
            f" WITH (m = {int(build.m)}, ef_construction = {int(build.ef_construction)})"
        )
        async with conn.transaction():
            await conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
            await conn.execute(f"ALTER INDEX {_NEXT} RENAME TO {INDEX}")
            await conn.execute("DELETE FROM hnsw_tuning")  # measured on the index just replaced
    finally:
        await conn.execute("RESET maintenance_work_mem")
    return time.perf_counter() - started


async def tune(
    conn: asyncpg.Connection,
    *,
    queries: int = QUERIES,
    target: float = limits.HNSW_RECALL,
    ladder: Sequence[int] = LADDER,
) -> Tuning:
    """Measure recall@10 up the ladder and store the first ef_search that reaches `target` (nothing if none does)."""
    build = await current_build(conn)
    if build is None:
        raise NoIndexError(f"there is no HNSW index ({INDEX}) to tune; `papers hnsw rebuild` builds one")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        papers = await embedded_papers(conn)
        vectors = await _sample(conn, queries)
        if not len(vectors):
            raise NoIndexError(NO_VECTORS)
        truth = await _exact(conn, vectors)
        # The index is what is measured: a small table would otherwise be scanned exactly.
        await conn.execute("SET LOCAL enable_seqscan = off")
        steps = []
        for ef_search in ladder:
            steps.append(await _step(conn, vectors, truth, ef_search))
            if steps[-1].recall >= target:
                break
    chosen = steps[-1].ef_search if steps[-1].recall >= target else None
    if chosen is not None:
        await conn.execute(
            """INSERT INTO hnsw_tuning (ef_search, recall, queries, papers, m, ef_construction)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (singleton) DO UPDATE SET ef_search = EXCLUDED.ef_search, recall = EXCLUDED.recall,
                 queries = EXCLUDED.queries, papers = EXCLUDED.papers, m = EXCLUDED.m,
                 ef_construction = EXCLUDED.ef_construction, measured_at = now()""",
            chosen,
            steps[-1].recall,
            len(vectors),
            papers,
            *build,
        )
    return Tuning(chosen, steps, papers, build)


async def tuned_ef_search(conn: asyncpg.Connection) -> int | None:
    """The stored ef_search, if it was measured on the index as it is now built (not on one since replaced)."""
    row = await conn.fetchrow("SELECT ef_search, m, ef_construction FROM hnsw_tuning")
    if row is None or await current_build(conn) != Build(row["m"], row["ef_construction"]):
        return None
    return int(row["ef_search"])


async def _sample(conn: asyncpg.Connection, queries: int) -> np.ndarray:
    # md5 of the key: the same papers every time for the same collection, spread over it rather than its oldest.
    rows = await conn.fetch(
        "SELECT embedding FROM papers WHERE embedding IS NOT NULL ORDER BY md5(paper_key::text) LIMIT $1", queries
    )
    if not rows:
        return np.empty((0, 0), dtype=np.float32)
    vectors = _matrix(rows)
    noise = np.random.default_rng(0).standard_normal(vectors.shape).astype(np.float32)
    return _unit(vectors + NOISE * _unit(noise))


async def _exact(conn: asyncpg.Connection, queries: np.ndarray, chunk: int = 20_000) -> list[set[int]]:
    """Each query's exact K nearest by cosine, one pass over the vectors `chunk` rows at a time (bounded memory)."""
    best_sim = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_key = np.zeros((len(queries), K), dtype=np.int64)
    cursor = await conn.cursor("SELECT paper_key, embedding FROM papers WHERE embedding IS NOT NULL")
    while rows := await cursor.fetch(chunk):
        keys = np.fromiter((r["paper_key"] for r in rows), dtype=np.int64, count=len(rows))
        sims = queries @ _matrix(rows).T
        all_sim = np.concatenate([best_sim, sims], axis=1)
        all_key = np.concatenate([best_key, np.broadcast_to(keys, sims.shape)], axis=1)
        top = np.argpartition(-all_sim, K - 1, axis=1)[:, :K]
        best_sim, best_key = np.take_along_axis(all_sim, top, 1), np.take_along_axis(all_key, top, 1)
    return [set(row[np.isfinite(sim)].tolist()) for row, sim in zip(best_key, best_sim, strict=True)]


async def _step(conn: asyncpg.Connection, queries: np.ndarray, truth: list[set[int]], ef_search: int) -> Step:
    await conn.execute("SELECT set_config('hnsw.ef_search', $1, true)", str(ef_search))
    recalls, times = [], []
    for vector, exact in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = await conn.fetch(
            f"SELECT paper_key FROM papers WHERE embedding IS NOT NULL ORDER BY embedding <=> $1 LIMIT {K}", vector
        )
        times.append(time.perf_counter() - started)
        recalls.append(len({r["paper_key"] for r in found} & exact) / max(len(exact), 1))
    return Step(ef_search, float(np.mean(recalls)), float(min(recalls)), float(np.median(times) * 1000))


def _matrix(rows: Sequence[asyncpg.Record]) -> np.ndarray:
    return _unit(np.stack([cast(np.ndarray, as_array(r["embedding"])) for r in rows]))


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


class Chosen(NamedTuple):
    """A process's ef_search, where it came from, and what an operator should do about it (None: nothing)."""

    ef_search: int
    source: str
    advice: str | None = None


async def process_ef_search(conn: asyncpg.Connection, configured: int | None) -> Chosen:
    """The ef_search a process uses: PAPERS_EF_SEARCH, else the stored tuning, else the default."""
    if configured is not None:
        return Chosen(configured, "PAPERS_EF_SEARCH")
    tuned = await tuned_ef_search(conn)
    if tuned is not None:
        return Chosen(tuned, "`papers hnsw tune`")
    # The planner's estimate, not a count: free at any size (-1 before the first ANALYZE).
    papers = int(await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'papers'::regclass"))
    if papers < LARGE_COLLECTION:
        return Chosen(limits.EF_SEARCH, "the default")
    advice = (
        f"about {papers:,} papers and no HNSW tuning for the index as built: nearest-neighbour recall at the default"
        " ef_search may be well under 0.95 at this size; `papers hnsw rebuild` builds and tunes it"
    )
    return Chosen(limits.EF_SEARCH, "the default", advice)
