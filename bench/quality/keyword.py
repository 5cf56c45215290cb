"""Keyword search quality on the seeds' labelled queries, BM25 against the previous all-words ranking (no model needed).

    .venv/bin/python -m bench.quality.keyword        # prints nDCG@10 and misses per query type, about a minute

The query sets are those of `bench.quality` section 1 (same seed and sample), built from the seed listings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from api.services.search import QueryEmbeddings, search_papers
from bench.harness.postgres import temp_postgres
from bench.quality.metrics import K, Scores, rank_of, single_target
from bench.quality.queries import KINDS, build
from bench.quality.seeds import PAPERS_SQL, Paper, seed_files
from ingest.pipeline import Source, ingest_source
from schema.api import PaperFilter
from schema.paging import PageRequest
from sql import search
from sql.db import connection

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"


async def _ranks(conn: asyncpg.Connection, text: str, target: str) -> tuple[int | None, int | None]:
    hits = (await search_papers(conn, QueryEmbeddings(None), text, PageRequest(K), mode="keyword")).items
    before = await search.keyword_all_words(conn, text, PaperFilter(), limit=K)
    return rank_of([h.id for h in hits], target), rank_of([h.id for h in before], target)


async def measure(url: str) -> dict[str, tuple[Scores, Scores]]:
    """Per query type: (BM25, all-words ts_rank_cd) scores."""
    async with connection(url) as conn:
        for path in seed_files(SEEDS):
            await ingest_source(conn, Source(path.name, path.read_bytes()))
        rows = await conn.fetch(PAPERS_SQL)
        papers = [
            Paper(
                r["paper_key"],
                r["public_id"],
                r["title"],
                r["abstract"],
                frozenset(r["listings"]),
                frozenset(r["stems"]),
            )
            for r in rows
        ]
        queries = build(papers, sample=100, seed=20240311)
        out = {}
        for kind in KINDS:
            pairs = [await _ranks(conn, q.text, q.target) for q in queries.labelled[kind]]
            out[kind] = (single_target([a for a, _ in pairs]), single_target([b for _, b in pairs]))
        return out


def main() -> None:
    """Print the comparison."""
    with temp_postgres("papers-bench-keyword-") as pg:
        url = asyncio.run(pg.fresh_database())
        for kind, (bm25, before) in asyncio.run(measure(url)).items():
            print(
                f"{kind}: BM25 nDCG@10 {bm25.ndcg:.3f} (missed {bm25.missed}/{bm25.n});"
                f" all-words ts_rank_cd {before.ndcg:.3f} (missed {before.missed}/{before.n})"
            )


if __name__ == "__main__":
    main()
