"""The sharding simulation's merge (bench/harness/shards.py): a collection split into parts by a hash of the title
fingerprint, each part queried through the product's functions, the answers merged, equal the single database's
answers when each part is asked for enough (docs/scale-out.md)."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from api.services.search import HYBRID_KEYWORD_HITS, keyword_query
from bench.harness.shards import Parts, merge, opened, part_sql, same_ranking, single_hybrid, split
from ingest.embed import embed_pending
from ingest.pipeline import Source, ingest_source
from schema.api import PaperFilter, ScoredPaper
from sql import keyword, search, terms
from tests import factories
from tests.conftest import with_database
from tests.embedders import HashEmbedder

PARTS = 3
PAPERS = 60
EVERY = 10**6  # postings read per stem: all of them, so each part's keyword ranking is exact
# Invented words: 10 x 10 x 10 syllable triples, so that word counts (and BM25 scores) rarely tie.
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "shu")
WORDS = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES]
TEXTS = ("sparse routing kalomi", "kaloka rutavo", "mimimi nenene zizizi", "guarantees at scale pepeka")


def abstract(i: int) -> str:
    """An invented abstract of 20 + 5i distinct words out of 400: every paper has its own length (BM25 rarely ties)."""
    return " ".join(random.Random(i).sample(WORDS[:400], 20 + 5 * i))


@pytest.fixture
async def source(conn: asyncpg.Connection) -> asyncpg.Connection:
    """A database of PAPERS invented papers, embedded by the hash double."""
    pairs = [(factories.paper(i)[0], abstract(i).capitalize() + ".") for i in range(PAPERS)]
    for n in range(0, PAPERS, 20):
        result = await ingest_source(conn, Source(f"l{n}.txt", factories.page(pairs[n : n + 20]).encode()), year=2024)
        assert result.error is None
    assert (await embed_pending(conn, HashEmbedder())).embedded == PAPERS
    return conn


@pytest.fixture
async def part_urls(server_url: str) -> AsyncIterator[list[str]]:
    """PARTS empty migrated databases (copies of the test server's template)."""
    admin = await asyncpg.connect(server_url)
    names = [f"shard_part_{id(admin)}_{i}" for i in range(PARTS)]
    try:
        for name in names:
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE papers_template")
        yield [with_database(server_url, name) for name in names]
    finally:
        for name in names:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@contextlib.asynccontextmanager
async def exact(urls: list[str]) -> AsyncIterator[Parts]:
    """The parts, every nearest-neighbour search exact (no index scan): the merge is what is tested, not HNSW."""
    async with opened(urls) as parts:
        for c in parts.conns:
            await c.execute("SET enable_indexscan = off")
        yield parts


def scored(hits: list[ScoredPaper]) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in hits]


async def test_every_paper_lands_in_exactly_the_part_its_fingerprint_hashes_to(source, fresh_db, part_urls):
    counts = await split(fresh_db, part_urls)
    assert sum(counts) == PAPERS
    assert all(counts)  # 60 papers over 3 parts: none is empty
    rows = await source.fetch(f"SELECT public_id, {part_sql(PARTS)} AS part FROM papers")
    want = {r["public_id"]: r["part"] for r in rows}
    for index, url in enumerate(part_urls):
        conn = await asyncpg.connect(url)
        try:
            stored = await conn.fetch("SELECT public_id, embedding IS NOT NULL AS embedded FROM papers")
            assert {r["public_id"] for r in stored} == {i for i, part in want.items() if part == index}
            assert all(r["embedded"] for r in stored)
            # each part's keyword index is its own papers' (written by the triggers as rows were copied in)
            assert await conn.fetchval("SELECT df FROM keyword_terms WHERE term = ''") == counts[index]
        finally:
            await conn.close()


async def test_merged_nearest_neighbours_equal_the_single_database(source, fresh_db, part_urls):
    await split(fresh_db, part_urls)
    await source.execute("SET enable_indexscan = off")
    embedder = HashEmbedder()
    async with exact(part_urls) as parts:
        for text in TEXTS:
            vector = embedder.vector(text)
            for k in (1, 5, 10):
                single = await search.nearest(source, vector, PaperFilter(), limit=k)
                assert same_ranking(scored(await parts.nearest(vector, k)), scored(single), tolerance=1e-6)


async def test_merged_keyword_ranking_equals_the_single_database_only_with_global_statistics(
    source, fresh_db, part_urls
):
    await split(fresh_db, part_urls)
    async with exact(part_urls) as parts:
        local_scores_differ = False
        for text in TEXTS:
            query = keyword_query(text)
            assert await parts.stats(text) == await terms.term_stats(source, text)
            single = await keyword.keyword(source, query, PaperFilter(), limit=10, depth=EVERY)
            assert single
            merged = await parts.keyword(query, 10, global_stats=True, depth=EVERY)
            assert same_ranking(scored(merged), scored(single))
            own = await parts.keyword(query, 10, global_stats=False, depth=EVERY)
            local_scores_differ |= [h.score for h in own] != [h.score for h in single]
        # each part's own idf makes the parts' scores incomparable: that is why the statistics must be global
        assert local_scores_differ


async def test_hybrid_merges_each_ranking_before_fusing(source, fresh_db, part_urls):
    await split(fresh_db, part_urls)
    await source.execute("SET enable_indexscan = off")
    embedder = HashEmbedder()
    checked = 0
    async with exact(part_urls) as parts:
        for n, (a, b) in enumerate(((1, 2), (10, 20), (33, 99), (5, 140), (7, 70))):
            # words of the invented abstracts, and a vector near a paper's (sharing words with most papers)
            query, vector = keyword_query(f"{WORDS[a]} {WORDS[b]}"), embedder.vector(abstract(PAPERS + n))
            matched = await keyword.keyword(source, query, PaperFilter(), limit=HYBRID_KEYWORD_HITS, depth=EVERY)
            nearest = await search.nearest(source, vector, PaperFilter(), limit=HYBRID_KEYWORD_HITS)
            if any(len({h.score for h in r}) < len(r) for r in (matched, nearest)):
                # RRF fuses ranks: papers tied in score may stand in either order, and their fused scores with them
                continue
            checked += 1
            single = await single_hybrid(source, query, vector, 10)
            assert scored(await parts.hybrid(query, vector, 10, fuse_first=False)) == scored(single)
    assert checked >= 2, "the fixture should give most queries rankings without ties"


def test_merge_keeps_the_best_k_of_all_parts_by_score_then_id():
    def hit(i: str, score: float) -> ScoredPaper:
        now = dt.datetime(2024, 3, 11, tzinfo=dt.UTC)
        return ScoredPaper(
            id=i,
            title=i,
            abstract="",
            arxiv_id=None,
            first_seen=now,
            last_seen=now,
            first_listed=None,
            last_listed=None,
            score=score,
        )

    parts = [[hit("a", 0.9), hit("d", 0.2)], [hit("c", 0.5), hit("b", 0.5)], []]
    assert [h.id for h in merge(parts, 3)] == ["a", "b", "c"]
    assert merge([[], []], 5) == []
