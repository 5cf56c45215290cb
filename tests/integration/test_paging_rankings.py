"""Paging a ranking: walking every page of a search returns each paper once, whatever the depth a page reads.

Keyword search's postings walk reads deeper for a deeper page, HNSW's scan goes on past ef_search, and hybrid fuses
both: each must extend the ranking an earlier page was cut from, not rank again (docs/design.md, "Paging a ranking").
The walk's first depth and ef_search are made small here so that a few hundred papers need many of them.
"""

from __future__ import annotations

import random

import pytest

from api.services.search import HYBRID_KEYWORD_HITS, QueryEmbeddings, fuse, search_papers
from ingest.embed import embed_pending
from ingest.pipeline import Source, ingest_source
from schema.api import SearchMode
from schema.paging import PageRequest
from sql import keyword, search
from tests import factories
from tests.embedders import HashEmbedder

QUERY = "method compute benchmarks gains"  # four of the invented abstracts' common words


async def _corpus(conn, extra: list[tuple[str, str]] = []) -> None:  # noqa: B006 (never mutated)
    """300 invented papers over 6 days, each abstract a random draw of the same 37 words, and `extra`, embedded."""
    for day in range(6):
        pairs = [factories.paper(day * 50 + i, words=random.Random(day * 50 + i).randint(20, 90)) for i in range(50)]
        text = factories.page(pairs + (extra if day == 0 else []), label=f"Mar {day + 1}")
        assert (await ingest_source(conn, Source(f"d{day}.txt", text.encode()), year=2024)).error is None
    await embed_pending(conn, HashEmbedder())
    await conn.execute("SET enable_seqscan = off")  # a table this small would otherwise be scanned exactly


async def _walk(conn, mode: SearchMode, size: int, q: str = QUERY) -> list[str]:
    """Every page of `q` in `mode`, `size` a page, following the cursors."""
    queries, seen, after = QueryEmbeddings(HashEmbedder()), [], None
    while True:
        page = await search_papers(conn, queries, q, PageRequest(size, after=after), mode=mode)
        seen += [h.id for h in page.items]
        if not page.has_next:
            return seen
        after = page.cursors[-1]


@pytest.mark.parametrize("mode", ["keyword", "hybrid", "semantic"])
async def test_every_page_of_a_search_extends_the_ranking_before_it(conn, monkeypatch, mode):
    await _corpus(conn)
    # A walk of 8 postings per word for the first pages (each deeper page doubles it), HNSW's beam 10 wide.
    monkeypatch.setattr(keyword, "KEYWORD_DEPTH", 8)
    monkeypatch.setattr(search, "EF_SEARCH", 10)
    await search.configure_session(conn)
    matching = await conn.fetchval(
        "SELECT count(*) FROM papers WHERE search @@ to_tsquery('english', 'method | compute | benchmarks | gains')"
    )
    assert matching > 150  # far past the first tier: most pages read deeper than it
    one_go = await _walk(conn, mode, 100)
    await conn.execute("ANALYZE")  # as autovacuum may between two pages
    for size in (3, 7):
        walked = await _walk(conn, mode, size)
        assert len(walked) == len(set(walked))  # no paper twice ...
        assert walked == one_go  # ... and the same ranking in small pages as in large ones
    if mode == "keyword":
        assert len(one_go) == matching  # and every paper that matches any word, once
    else:
        assert len(one_go) >= 250  # the iterative scan reaches (nearly) every paper


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
async def test_every_page_of_a_phrase_search_extends_the_ranking_and_finds_every_match(conn, monkeypatch, mode):
    # 60 papers say "quantum sparrow"; 120 more say both words apart, more often, so they fill the top of both words'
    # postings: a walk's first tier (8 postings a word, a scan of 80) finds a few of the phrase's papers, and the
    # pages past it rank the rest exactly.
    rng = random.Random(3)
    said = [(f"Sparrow Study {i}", "A quantum sparrow. " + factories.paper(500 + i, words=30)[1]) for i in range(60)]
    apart = [
        (f"Apart Study {i}", " ".join(["quantum gains, the sparrow method."] * rng.randint(2, 6))) for i in range(120)
    ]
    await _corpus(conn, said + apart)
    monkeypatch.setattr(keyword, "KEYWORD_DEPTH", 8)
    monkeypatch.setattr(keyword, "PHRASE_WALK_MIN", 2)  # the walk answers, not the exhaustive plan
    monkeypatch.setattr(search, "EF_SEARCH", 10)
    await search.configure_session(conn)
    q = '"quantum sparrow" gains'
    one_go = await _walk(conn, mode, 100, q)
    # Autovacuum may analyze between two pages; a plan changed by it must not change the ranking (it summed equal
    # scores in another order, and their ties broke another way).
    await conn.execute("ANALYZE")
    for size in (3, 7):
        walked = await _walk(conn, mode, size, q)
        assert len(walked) == len(set(walked))
        assert walked == one_go
    if mode == "keyword":
        said_it = "SELECT public_id FROM papers WHERE search @@ phraseto_tsquery('english', 'quantum sparrow')"
        assert sorted(one_go) == sorted(r[0] for r in await conn.fetch(said_it))  # every one, once


def test_fusing_longer_rankings_keeps_the_ranks_before_them():
    rng = random.Random(7)
    papers = list(range(400))
    # Two rankings whose scores fall then rise again past the 50th hit (as a deeper tier of the walk scores).
    keyword_hits = [(k, 10.0 - i / 20 + (3.0 if i > 60 else 0.0)) for i, k in enumerate(rng.sample(papers, 300))]
    semantic_hits = [(k, 0.9 - i / 1000) for i, k in enumerate(rng.sample(papers, 300))]
    fused = {n: fuse([(keyword_hits[:n], 0.7), (semantic_hits[:n], 0.3)]) for n in (50, 51, 80, 150, 300)}
    for shorter, longer in zip((50, 51, 80, 150), (51, 80, 150, 300), strict=True):
        assert fused[longer][: len(fused[shorter])] == fused[shorter]
    keys = [key for key, _ in fused[300]]
    assert len(keys) == len(set(keys)) == len({k for k, _ in keyword_hits} | {k for k, _ in semantic_hits})
    # Only the first HYBRID_KEYWORD_HITS of each ranking score; the rest follow at 0.
    scored = {k for k, _ in keyword_hits[:HYBRID_KEYWORD_HITS]} | {k for k, _ in semantic_hits[:HYBRID_KEYWORD_HITS]}
    assert {key for key, score in fused[300] if score > 0} <= scored
