"""Search and similarity queries: full-text ranking, nearest neighbours (HNSW) and the vectors they start from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import numpy as np

from schema import limits
from schema.api import Paper, PaperFilter, ScoredPaper
from sql.fragments import PAPER_COLUMNS, Where, in_asked_order, paper_by_public_or_arxiv, paper_filters
from sql.session import keeps_session

# The process's ef_search: limits.EF_SEARCH (recall@10 0.998 against exact search at 100k topically structured papers,
# docs/similarity.md) unless the server was started with another (PAPERS_EF_SEARCH, `use_ef_search`).
EF_SEARCH = limits.EF_SEARCH
MAX_EF_SEARCH = limits.EF_SEARCH_RANGE[1]  # pgvector refuses more; past it the iterative scan supplies the rest
T = TypeVar("T")
_ITERATIVE: dict[str, bool] = {}


def scored_paper(row: asyncpg.Record, score: float, snippet: str | None = None) -> ScoredPaper:
    """A contract row with its score (six decimals)."""
    return ScoredPaper(**{k: row[k] for k in Paper.__struct_fields__}, score=round(float(score), 6), snippet=snippet)


async def keyword_all_words(
    conn: asyncpg.Connection, q: str, flt: PaperFilter, *, limit: int, offset: int = 0
) -> list[ScoredPaper]:
    """The previous keyword search (every word must match; ts_rank_cd scores every match): the benchmark's baseline."""
    where = Where()
    where.add("p.search @@ websearch_to_tsquery('english', {})", q)
    paper_filters(where, flt)
    n = len(where.params)
    rows = await conn.fetch(
        f"""SELECT {PAPER_COLUMNS}, ts_rank_cd(p.search, websearch_to_tsquery('english', $1), 32) AS score
            FROM papers p WHERE {where.sql()}
            ORDER BY score DESC, p.paper_key LIMIT ${n + 1} OFFSET ${n + 2}""",
        *where.params,
        limit,
        offset,
    )
    return [scored_paper(r, r["score"]) for r in rows]


async def iterative_scan(conn: asyncpg.Connection) -> bool:
    """Whether pgvector can keep scanning the index until `limit` rows pass the filters (0.8+)."""
    found = _ITERATIVE.get("vector")
    if found is None:
        ext = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        found = _ITERATIVE["vector"] = tuple(int(x) for x in ext.split(".")[:2]) >= (0, 8)
    return found


def use_ef_search(ef_search: int) -> None:
    """Set this process's ef_search (PAPERS_EF_SEARCH); call it before any pool opens, as sessions keep theirs."""
    global EF_SEARCH
    EF_SEARCH = ef_search  # in limits.EF_SEARCH_RANGE: the settings checked it (PostgreSQL refuses others)


async def configure_session(conn: asyncpg.Connection) -> None:
    """A connection's HNSW settings, set once when it opens: a search then needs no transaction of its own."""
    await conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
    if await iterative_scan(conn):
        await conn.execute("SET hnsw.iterative_scan = relaxed_order")


async def nearest(
    conn: asyncpg.Connection,
    vector: np.ndarray,
    flt: PaperFilter,
    *,
    limit: int,
    offset: int = 0,
    exclude: Sequence[int] = (),
) -> list[ScoredPaper]:
    """Papers nearest to vector by cosine distance (HNSW), filtered, leaving out `exclude` keys."""
    where = Where()
    where.add("p.embedding IS NOT NULL")
    paper_filters(where, flt)
    if exclude:
        where.add("NOT (p.paper_key = ANY({}::bigint[]))", list(exclude))
    n = len(where.params)
    # Rows in the order the scan gives them, not sorted again: the ranking stays the same however deep a page reads
    # (docs/design.md, "Paging a ranking"). PostgreSQL adds no sort of its own: it takes the index's order as given.
    statement = f"""SELECT {PAPER_COLUMNS}, p.paper_key, p.embedding <=> ${n + 1} AS distance FROM papers p
        WHERE {where.sql()} ORDER BY p.embedding <=> ${n + 1} LIMIT ${n + 2}"""
    args = (*where.params, vector, limit + offset)
    rows = await with_ef_search(conn, limit + offset, lambda: conn.fetch(statement, *args))
    return [scored_paper(r, 1 - r["distance"]) for r in rows[offset:]]


def hybrid_ef_search(rows: int, *, iterative: bool = True) -> int:
    """The ef_search of hybrid search's HNSW half: half the process's, whatever the page (at least `rows` where no
    iterative scan can supply more than ef_search rows, pgvector before 0.8).

    Its 50 neighbours are fused at weight 0.3 and scaled over their own range, so its tail barely moves a page: at
    100,000 papers, ef_search 50 instead of 100 cost the ranking statement 18-25% less PostgreSQL CPU and the fused
    top 20 kept 0.993 of the pages made with exact neighbours (0.998 at 100; docs/design.md, "Hybrid's HNSW half").
    The same value for every page keeps the neighbours' order the same however deep a page reads ("Paging a ranking").
    """
    half = max(EF_SEARCH // 2, 1)
    return half if iterative else min(max(int(rows), half), MAX_EF_SEARCH)


def ef_search_gate(ef_search: int) -> str:
    """A WHERE condition that sets hnsw.ef_search for the statement it is in, and no longer.

    `set_config(..., true)` lasts until the transaction ends: the statement's own unless one is open. As an
    uncorrelated subquery the condition is a one-time filter that PostgreSQL checks before the scan under it starts;
    pgvector reads ef_search when its scan fetches the first tuple (tests/integration/test_similarity.py pins both).
    One statement, where a `SET LOCAL` would need a transaction and two more round trips.
    """
    return f"(SELECT set_config('hnsw.ef_search', '{int(ef_search)}', true)) IS NOT NULL"


async def with_ef_search(conn: asyncpg.Connection, rows: int, run: Callable[[], Awaitable[T]]) -> T:
    """Run an HNSW query that must return `rows` rows: as it is where the session keeps its settings
    (configure_session), else in a transaction that sets them.

    The iterative scan supplies rows past ef_search, which stays the process's for every page so that a deeper page
    extends the ranking an earlier page was cut from (docs/design.md, "Paging a ranking"). Only without an iterative
    scan (pgvector before 0.8) does a deep page raise ef_search to its rows, at most 1,000.
    """
    iterative = await iterative_scan(conn)
    if keeps_session(conn) and (iterative or rows <= EF_SEARCH):
        return await run()
    async with conn.transaction():
        # Through a transaction pool the session's settings are not there: all of them, in one round trip.
        ef_search = EF_SEARCH if iterative else min(max(int(rows), EF_SEARCH), MAX_EF_SEARCH)
        settings = [f"SET LOCAL hnsw.ef_search = {ef_search}"]
        if iterative:
            settings.append("SET LOCAL hnsw.iterative_scan = relaxed_order")
        await conn.execute("; ".join(settings))
        return await run()


async def with_session_settings(conn: asyncpg.Connection, run: Callable[[], Awaitable[T]]) -> T:
    """Run an HNSW query that sets its own ef_search (`ef_search_gate`) with the session's other HNSW settings: as it
    is, or where the session keeps none (PgBouncer) in a transaction that sets them."""
    return await with_ef_search(conn, 0, run)


def as_array(value: Any) -> np.ndarray | None:
    """A stored vector as float32 numpy (pgvector's codec returns a Vector or an ndarray by version)."""
    if value is None:
        return None
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


class PaperVector(Paper, frozen=True):
    """A paper with its internal key and stored vector (None when not embedded yet)."""

    key: int = 0
    fingerprint: str = ""
    vector: Any = None


async def papers_with_vectors(conn: asyncpg.Connection, ids: Sequence[str]) -> list[PaperVector | None]:
    """Papers by public or arXiv id with their vectors, in the order asked, None for unknown ids."""
    if not ids:
        return []
    where = Where()
    arxiv = paper_by_public_or_arxiv(where, ids)
    rows = await conn.fetch(
        f"SELECT {PAPER_COLUMNS}, p.paper_key, p.fingerprint, p.embedding FROM papers p WHERE {where.sql()}",
        *where.params,
    )

    def build(r: asyncpg.Record) -> PaperVector:
        fields = {k: r[k] for k in Paper.__struct_fields__}
        return PaperVector(**fields, key=r["paper_key"], fingerprint=r["fingerprint"], vector=as_array(r["embedding"]))

    return in_asked_order(rows, ids, arxiv, build)
