"""A collection split over several databases, queried part by part and merged (docs/scale-out.md, the simulation).

A paper's part is a hash of its title fingerprint (the content-derived identity ingest deduplicates by), so the
same paper lands in the same part whatever the order of arrival. Each part is a migrated papers database of its
own, with the product's indexes (HNSW, BM25 postings written by the keyword triggers); a query runs on every
part through the product's own functions (`sql.search.nearest`, `sql.keyword.keyword`) and the answers are
merged here, as a coordinator would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg
import numpy as np

from api.services.search import HYBRID_KEYWORD_HITS, fuse_hits
from schema.api import PaperFilter, ScoredPaper
from sql import keyword, search, terms
from sql.db import connection
from sql.keyword import KEYWORD_DEPTH, KeywordQuery
from sql.terms import TermStats

T = TypeVar("T")
# Every stored column of a paper but the generated tsvector (PostgreSQL computes it again in the part).
COLUMNS = (
    "paper_key",
    "public_id",
    "fingerprint",
    "title",
    "abstract",
    "abstract_from_arxiv",
    "arxiv_id",
    "first_seen",
    "last_seen",
    "first_listed",
    "last_listed",
    "embedding",
    "embedding_model",
    "embedding_attempts",
    "embedding_error",
)
BATCH = 20_000  # papers per COPY: the keyword trigger aggregates a statement's tsvectors into one array
# The indexes a part builds after its papers are in (a sorted build instead of one insertion per row).
_DEFERRED = {
    "papers_embedding_hnsw_idx": "CREATE INDEX papers_embedding_hnsw_idx ON papers USING hnsw"
    " (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
    "keyword_postings_idx": "CREATE INDEX keyword_postings_idx ON keyword_postings (term, impact DESC, paper_key)",
}


def part_sql(parts: int) -> str:
    """The SQL expression of a paper's part (0 .. parts-1): a hash of its fingerprint, as hash partitioning does."""
    return f"((hashtextextended(fingerprint, 0) % {int(parts)}) + {int(parts)}) % {int(parts)}"


async def _pipe(source: asyncpg.Connection, target: asyncpg.Connection, query: str) -> None:
    """COPY the rows of a query on one database into the papers of another, in binary, without decoding them."""
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

    async def produce() -> None:
        try:
            await source.copy_from_query(query, output=chunks.put, format="binary")
        finally:
            await chunks.put(None)

    async def consume() -> AsyncIterator[bytes]:
        while (chunk := await chunks.get()) is not None:
            yield chunk

    producer = asyncio.create_task(produce())
    try:
        await target.copy_to_table("papers", source=consume(), columns=list(COLUMNS), format="binary")
    except BaseException:
        producer.cancel()  # it may wait on a full queue nobody reads any more
        with contextlib.suppress(asyncio.CancelledError, asyncpg.PostgresError):
            await producer
        raise
    await producer


async def split(source_url: str, part_urls: Sequence[str]) -> list[int]:
    """Copy the papers of a database into empty migrated part databases by part_sql; returns each part's count."""
    counts = []
    async with connection(source_url) as source:
        high = int(await source.fetchval("SELECT coalesce(max(paper_key), 0) FROM papers"))
        for index, url in enumerate(part_urls):
            async with connection(url) as target:
                for name in _DEFERRED:
                    await target.execute(f"DROP INDEX {name}")
                for low in range(0, high, BATCH):
                    await _pipe(
                        source,
                        target,
                        f"SELECT {', '.join(COLUMNS)} FROM papers WHERE {part_sql(len(part_urls))} = {index}"
                        f" AND paper_key > {low} AND paper_key <= {low + BATCH} ORDER BY paper_key",
                    )
                await target.execute("SET maintenance_work_mem = '1GB'")
                for statement in _DEFERRED.values():
                    await target.execute(statement)
                await target.execute("VACUUM ANALYZE")
                counts.append(int(await target.fetchval("SELECT count(*) FROM papers")))
    return counts


def merge(rankings: Sequence[Sequence[ScoredPaper]], k: int) -> list[ScoredPaper]:
    """The k best of several parts' rankings, by score (higher first), ties by id."""
    return sorted((hit for ranking in rankings for hit in ranking), key=lambda h: (-h.score, h.id))[:k]


def same_ranking(
    found: Sequence[tuple[str, float]], wanted: Sequence[tuple[str, float]], tolerance: float = 1e-5
) -> bool:
    """Whether two top-k rankings of (id, score) agree: the same scores rank by rank, the same papers above the
    k-th score (papers tied with it may differ: either could be the k-th)."""
    if len(found) != len(wanted) or any(abs(a[1] - b[1]) > tolerance for a, b in zip(found, wanted, strict=True)):
        return False
    last = wanted[-1][1] if wanted else 0.0
    return {i for i, s in found if s > last + tolerance} == {i for i, s in wanted if s > last + tolerance}


class Parts:
    """Open connections to every part of a collection; each query runs on all of them, in turn or at once."""

    def __init__(self, conns: Sequence[asyncpg.Connection], *, concurrent: bool = True) -> None:
        self.conns = list(conns)
        self.concurrent = concurrent

    async def each(self, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> list[T]:
        """One answer per part: every part asked at once (concurrent gather) or one after another."""
        if self.concurrent:
            return list(await asyncio.gather(*(query(c) for c in self.conns)))
        return [await query(c) for c in self.conns]

    async def nearest(self, vector: np.ndarray, k: int) -> list[ScoredPaper]:
        """The k papers nearest to vector: each part's HNSW top k, merged by distance."""
        return merge(await self.each(lambda c: search.nearest(c, vector, PaperFilter(), limit=k)), k)

    async def stats(self, text: str) -> TermStats:
        """The whole collection's statistics of a query's stems: each part's counts, added up."""
        return terms.combined(await self.each(lambda c: terms.term_stats(c, text)))

    async def keyword(
        self, query: KeywordQuery, k: int, *, global_stats: bool, depth: int = KEYWORD_DEPTH
    ) -> list[ScoredPaper]:
        """The k best papers by BM25: each part's top k, scored with the collection's statistics or its own."""
        stats = await self.stats(query.text) if global_stats else None
        return merge(
            await self.each(lambda c: keyword.keyword(c, query, PaperFilter(), limit=k, depth=depth, stats=stats)),
            k,
        )

    async def hybrid(self, query: KeywordQuery, vector: np.ndarray, k: int, *, fuse_first: bool) -> list[ScoredPaper]:
        """Hybrid search: merge each ranking over the parts, then fuse (right), or fuse per part, then merge (wrong)."""
        if not fuse_first:
            matched = await self.keyword(query, HYBRID_KEYWORD_HITS, global_stats=True)
            return fuse_hits(matched, await self.nearest(vector, HYBRID_KEYWORD_HITS))[:k]

        async def fused(conn: asyncpg.Connection) -> list[ScoredPaper]:
            matched = await keyword.keyword(conn, query, PaperFilter(), limit=HYBRID_KEYWORD_HITS, depth=KEYWORD_DEPTH)
            return fuse_hits(matched, await search.nearest(conn, vector, PaperFilter(), limit=HYBRID_KEYWORD_HITS))

        return merge(await self.each(fused), k)


async def single_hybrid(conn: asyncpg.Connection, query: KeywordQuery, vector: np.ndarray, k: int) -> list[ScoredPaper]:
    """Hybrid search on one database, as api.services.search does it: BM25 and HNSW top 50, fused (`fuse_hits`)."""
    matched = await keyword.keyword(conn, query, PaperFilter(), limit=HYBRID_KEYWORD_HITS, depth=KEYWORD_DEPTH)
    return fuse_hits(matched, await search.nearest(conn, vector, PaperFilter(), limit=HYBRID_KEYWORD_HITS))[:k]


@contextlib.asynccontextmanager
async def opened(urls: Sequence[str], *, concurrent: bool = True) -> AsyncIterator[Parts]:
    """Connections to each part (with the product's HNSW session settings, as sql.db.connect sets them)."""
    async with contextlib.AsyncExitStack() as stack:
        yield Parts([await stack.enter_async_context(connection(url)) for url in urls], concurrent=concurrent)
