"""The BM25 keyword index: in step with the papers through every write, ranking, phrases, exclusions, filters."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.services.search import QueryEmbeddings, keyword_query, search_papers
from ingest.embed import embed_pending
from ingest.pipeline import Source, ingest_source
from ingest.worker import Worker
from schema.api import PaperFilter
from schema.paging import PageRequest
from sql import jobs, keyword, search, terms
from tests import factories
from tests.apps import settings
from tests.embedders import HashEmbedder
from tests.system.test_faults import big_listing, wait_for

NO_MODEL = QueryEmbeddings(None)


async def assert_in_step(conn) -> None:
    """The postings and document frequencies are exactly what the stored papers give, and nothing else."""
    drift = await conn.fetchval(
        """SELECT count(*) FROM (
             (SELECT term, impact, paper_key FROM keyword_postings
              EXCEPT ALL SELECT i.term, i.impact, p.paper_key FROM papers p, keyword_impacts(p.search) i)
             UNION ALL
             (SELECT i.term, i.impact, p.paper_key FROM papers p, keyword_impacts(p.search) i
              EXCEPT ALL SELECT term, impact, paper_key FROM keyword_postings)) d"""
    )
    assert drift == 0
    wrong_df = await conn.fetch(
        """SELECT * FROM (SELECT term, count(*) AS df FROM (
               SELECT unnest(tsvector_to_array(search)) AS term FROM papers UNION ALL SELECT '' FROM papers) s
             GROUP BY term) want
           FULL JOIN (SELECT term, df AS stored FROM keyword_terms WHERE df <> 0) have USING (term)
           WHERE want.df IS DISTINCT FROM have.stored"""
    )
    assert wrong_df == []


async def ingest(conn, name: str, text: str) -> None:
    assert (await ingest_source(conn, Source(name, text.encode()), year=2024)).error is None


async def ids(conn, q: str, flt: PaperFilter = PaperFilter(), limit: int = 20) -> list[str]:
    hits = (await search_papers(conn, NO_MODEL, q, PageRequest(limit), mode="keyword", flt=flt)).items
    return [h.title for h in hits]


PAPERS = [
    ("Draft Models Make Decoding Fast", "Small draft models propose tokens that a verifier accepts or rejects. " * 4),
    ("Protein Folding with Diffusion", "Diffusion models fold protein structures from amino acid sequences. " * 4),
    ("Faster Inference by Guessing", "We speed up decoding with speculative drafts from models of smaller size. " * 4),
    ("Graph Networks for Molecules", "Message passing predicts molecule properties; draft models are not used. " * 4),
]


async def test_index_follows_ingest_reingest_and_a_new_canonical_abstract(conn):
    await assert_in_step(conn)
    await ingest(conn, "a.txt", factories.page(PAPERS[:2]))
    await assert_in_step(conn)
    await ingest(conn, "a.txt", factories.page(PAPERS[:2]))  # the same bytes: unchanged
    await ingest(conn, "b.txt", factories.page(PAPERS[1:], label="Mar 12"))  # one paper again, two new
    await assert_in_step(conn)
    assert await ids(conn, "chaperone") == []
    longer = PAPERS[1][1] + "Chaperone proteins guide the folding of long chains into stable shapes. " * 3
    await ingest(conn, "c.txt", factories.page([(PAPERS[1][0], longer)], label="Mar 13"))  # the longer abstract wins
    await assert_in_step(conn)
    assert await ids(conn, "chaperone") == [PAPERS[1][0]]


async def test_updates_that_leave_the_text_alone_leave_the_index_alone(conn):
    await ingest(conn, "a.txt", factories.page(PAPERS))
    before = await conn.fetchval("SELECT count(*) FROM keyword_postings")
    await conn.execute("UPDATE papers SET last_seen = now(), first_listed = NULL")
    assert await conn.fetchval("SELECT count(*) FROM keyword_postings") == before
    await conn.execute("UPDATE papers SET title = title || ' Revisited' WHERE title LIKE 'Graph%'")
    await assert_in_step(conn)
    assert await ids(conn, "revisited") == ["Graph Networks for Molecules Revisited"]


async def test_rebuild_restores_a_damaged_index(conn):
    await ingest(conn, "a.txt", factories.page(PAPERS))
    await conn.execute("DELETE FROM keyword_postings WHERE term = 'draft'")
    await conn.execute("UPDATE keyword_terms SET df = 99 WHERE term = 'model'")
    assert await keyword.rebuild(conn) == 4
    await assert_in_step(conn)


async def test_any_word_ranked_with_the_title_first(conn):
    body = "We measure throughput on long inputs and report memory use across several settings and budgets. " * 3
    await ingest(
        conn,
        "a.txt",
        factories.page(
            [*PAPERS, ("Sparse Attention Kernels", body), ("A Study of Long Inputs", body + "Kernels help.")]
        ),
    )
    # No paper has every word; each paper with one of them is found, the two with two of them first.
    found = await ids(conn, "draft decoding chaperone")
    assert set(found[:2]) == {PAPERS[0][0], PAPERS[2][0]}
    assert found[2:] == [PAPERS[3][0]]
    # Once in the title outweighs once in an abstract of the same length.
    assert await ids(conn, "kernels") == ["Sparse Attention Kernels", "A Study of Long Inputs"]
    assert await ids(conn, "the of a") == []  # stop words only
    # A long query ranks its 32 rarest stems that occur; words no paper has take no place.
    unknown = " ".join(f"zz{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40))
    assert await ids(conn, f"{unknown} kernels") == ["Sparse Attention Kernels", "A Study of Long Inputs"]


async def test_phrases_must_match_and_minus_words_must_not(conn):
    await ingest(conn, "a.txt", factories.page(PAPERS))
    assert set(await ids(conn, "models")) == {p[0] for p in PAPERS}
    assert set(await ids(conn, '"draft models"')) == {PAPERS[0][0], PAPERS[3][0]}
    assert await ids(conn, '"draft models" verifier') == [PAPERS[0][0], PAPERS[3][0]]
    assert await ids(conn, "models -draft") == [PAPERS[1][0]]  # "drafts" is the same stem
    assert keyword_query('a "b c" -d e-f -"g"') == keyword.KeywordQuery("a b c e-f", ("b c",), ('"g"', "d"))
    assert set(await ids(conn, 'models -"draft models"')) == {PAPERS[1][0], PAPERS[2][0]}


async def test_walk_and_exhaustive_scoring_agree_when_every_posting_is_read(conn):
    await ingest(conn, "a.txt", factories.page([factories.paper(i, words=40 + i % 30) for i in range(60)]))
    for q in ("sparse routing scale", "pruning labels guarantees", "method language"):
        query = keyword_query(q)
        walk = await keyword.keyword(conn, query, PaperFilter(), limit=30, depth=1000)
        exact = await keyword.keyword(conn, query, PaperFilter(), limit=30, depth=1000, exhaustive=True)
        assert [(h.id, h.score) for h in walk] == [(h.id, h.score) for h in exact]
        assert len(walk) >= 10


async def test_a_plain_query_is_planned_once_not_on_every_call(conn):
    # Planning the ranking statement cost about as much as running it (docs/design.md, "One plan for a plain query").
    await ingest(conn, "a.txt", factories.page([factories.paper(i, words=40 + i % 30) for i in range(60)]))
    await embed_pending(conn, HashEmbedder())
    await search.configure_session(conn)
    texts = ["sparse routing", "pruning labels", "method language", "scale guarantees", "routing method"] * 2
    for text in texts:
        await keyword.keyword(conn, keyword_query(text), PaperFilter(), limit=10, depth=200)
        await keyword.hybrid_ranks(
            conn, keyword_query(text), HashEmbedder().vector(text), PaperFilter(), limit=50, depth=200
        )
    for kind in ("%hits AS (%", "%kw AS (%"):  # keyword search's statement, hybrid search's
        [(generic, custom)] = await conn.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE $1", kind
        )
        assert (generic, custom) == (len(texts) - 5, 5), kind  # generic after PostgreSQL's five custom plans


async def test_a_phrase_is_walked_with_a_bounded_scan_and_answered_exhaustively_when_rare(conn):
    # 40 papers say "draft models"; 40 more have both words apart, and say them more often (they rank first in both
    # words' postings); 2 say "models draft", once, at the end of a long abstract (the bottom of both lists).
    adjacent = [(f"Decoding Study {i}", f"Small draft models propose tokens for study {i}. " * 2) for i in range(40)]
    apart = [(f"Apart Study {i}", f"A draft of {i} words; the models of a draft of models. " * 3) for i in range(40)]
    filler = "Unrelated filler words follow here. " * 12
    reversed_ = [(f"Reversed Study {i}", filler + "Some models draft.") for i in (1, 2)]
    await ingest(conn, "a.txt", factories.page(adjacent + apart + reversed_))
    statements: list[str] = []
    conn.add_query_logger(lambda record: statements.append(record.query))

    async def search(q: str, limit: int, depth: int) -> tuple[list[str], int]:
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after a statement, not at once
        statements.clear()
        walk = await keyword.keyword(conn, keyword_query(q), PaperFilter(), limit=limit, depth=depth)
        await asyncio.sleep(0)
        return [h.title for h in walk], sum("hits AS" in sql for sql in statements)  # ranking statements only

    async def exact(q: str, limit: int) -> list[str]:
        every = await keyword.keyword(conn, keyword_query(q), PaperFilter(), limit=limit, depth=1, exhaustive=True)
        return [h.title for h in every]

    # A common phrase: one walk statement, which checks at most PHRASE_SCAN x depth postings per word, and finds at
    # least PHRASE_WALK_MIN papers (the adjacent ones).
    assert keyword.PHRASE_WALK_MIN == 20
    found, sent = await search('"draft models"', limit=5, depth=20)
    assert sent == 1
    assert any("LIMIT 200) kp" in sql for sql in statements)  # the walk, its scan capped at 10 x depth
    assert len(found) == 5
    assert all(t.startswith("Decoding Study") for t in found)
    # Every posting read (depth past both lists): the walk's ranking is the exact one.
    found, sent = await search('"draft models"', limit=40, depth=1000)
    assert (found, sent) == (await exact('"draft models"', 40), 1)
    # A rare phrase: the walk finds fewer than PHRASE_WALK_MIN papers, the exhaustive plan answers (for every page
    # of the query alike), and finds both.
    found, sent = await search('"models draft"', limit=5, depth=20)
    assert sent == 2
    assert sorted(found) == ["Reversed Study 1", "Reversed Study 2"] == sorted(await exact('"models draft"', 5))


async def test_a_phrase_walk_reads_one_postings_list_whatever_the_other_words(conn):
    # A long query around a phrase walked every stem's postings, checking the phrase on each (0.45 s at 100,000
    # papers for 32 common stems); now one list, the phrase's rarest stem's.
    await ingest(conn, "a.txt", factories.page([factories.paper(i, words=60) for i in range(80)]))
    statements: list[tuple[str, tuple]] = []
    conn.add_query_logger(lambda record: statements.append((record.query, record.args)))
    query = keyword_query('"method that" model quality compute gains benchmarks')
    found = await keyword.keyword(conn, query, PaperFilter(), limit=10)
    assert found == await keyword.keyword(conn, query, PaperFilter(), limit=10, depth=1, exhaustive=True)
    await asyncio.sleep(0)
    [(walk, args)] = [(sql, args) for sql, args in statements if "walked AS" in sql][:1]
    [plan] = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {walk}", *args))

    def scans(node: dict) -> int:
        here = node.get("Actual Loops", 0) if node.get("Index Name") == "keyword_postings_idx" else 0
        return here + sum(scans(child) for child in node.get("Plans", []))

    assert scans(plan["Plan"]) == 1  # six stems, one postings list read once


async def test_filtered_queries_still_fill_the_page(conn):
    # 400 papers whose abstracts all share the common words; 20 of them are listed on the day asked for.
    for d in range(20):
        pairs = [factories.paper(d * 20 + i, words=60) for i in range(20)]
        await ingest(conn, f"d{d}.txt", factories.page(pairs, label=f"Mar {d + 1}"))
    day = dt.date(2024, 3, 7)
    flt = PaperFilter(listed_from=day, listed_to=day)
    matching = await conn.fetchval(
        "SELECT count(*) FROM papers WHERE first_listed = $1"
        " AND search @@ to_tsquery('english', 'method | benchmarks')",
        day,
    )
    assert matching >= 15
    hits = (await search_papers(conn, NO_MODEL, "method benchmarks", PageRequest(20), mode="keyword", flt=flt)).items
    assert len(hits) == matching
    assert all(h.first_listed == day for h in hits)
    assert len(await ids(conn, "method", PaperFilter(listed_from=day, listed_to=day), limit=5)) == 5
    listing = await conn.fetchval("SELECT public_id FROM listings WHERE listed_on = $1", day)
    by_listing = await ids(conn, "method benchmarks", PaperFilter(listing=listing))
    assert set(by_listing) == {h.title for h in hits}  # the same papers, scored exhaustively
    assert await ids(conn, "method", PaperFilter(arxiv=True)) == []


async def test_the_index_is_in_step_after_a_worker_killed_mid_batch(conn, fresh_db):
    job_ids = [await jobs.enqueue(conn, f"bulk{k}.jsonl", big_listing(2500, k * 2500)) for k in range(2)]
    env = {**os.environ, "DATABASE_URL": fresh_db, "PAPERS_EMBEDDER": "none"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker", "--poll", "0.05"], env=env, stderr=subprocess.DEVNULL
    )

    async def writing_postings():
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle'"
            " AND xact_start IS NOT NULL AND query ILIKE '%papers%' AND pid <> pg_backend_pid()"
        )

    try:
        await wait_for(writing_postings)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        worker.kill()
    await assert_in_step(conn)
    assert await conn.fetchval("SELECT count(*) FROM papers") < 5000
    await asyncio.sleep(0.3)  # let the server notice the dead session
    await Worker(fresh_db, poll_seconds=0.05).run(once=True)
    assert [(await jobs.get(conn, j)).status for j in job_ids] == ["done", "done"]  # type: ignore[union-attr]
    await assert_in_step(conn)
    assert await conn.fetchval("SELECT df FROM keyword_terms WHERE term = ''") == 5000


SEARCH = """query($q: String!, $mode: SearchMode!, $filter: PaperFilterInput) {
  search(q: $q, mode: $mode, first: 10, filter: $filter) { edges { node { title score snippet } } }
}"""


@pytest.fixture
async def client(conn, fresh_db):
    await ingest(conn, "a.txt", factories.page(PAPERS[:2]))
    await ingest(conn, "b.txt", factories.page(PAPERS[2:], label="Mar 12"))
    await embed_pending(conn, HashEmbedder())
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=HashEmbedder())) as c:
        yield c


async def test_rest_and_graphql_rank_any_word_and_honour_phrases_and_filters(client):
    async def rest(q: str, mode: str, **params: str) -> list[dict]:
        response = await client.get("/v1/search", params={"q": q, "mode": mode, **params})
        assert response.status_code == 200, response.text
        return response.json()["items"]

    async def graphql(q: str, mode: str, flt: dict | None = None) -> list[dict]:
        body = (
            await client.post("/graphql", json={"query": SEARCH, "variables": {"q": q, "mode": mode, "filter": flt}})
        ).json()
        assert "errors" not in body, body
        return [e["node"] for e in body["data"]["search"]["edges"]]

    found = await rest("draft decoding chaperone", "keyword")
    assert {h["title"] for h in found} == {PAPERS[0][0], PAPERS[2][0], PAPERS[3][0]}
    assert all("<mark>" in h["snippet"] for h in found)
    assert [h["title"] for h in await graphql("draft decoding chaperone", "KEYWORD")] == [h["title"] for h in found]
    assert {h["title"] for h in await rest('"draft models"', "keyword")} == {PAPERS[0][0], PAPERS[3][0]}
    assert [h["title"] for h in await graphql('"draft models" -molecule', "KEYWORD")] == [PAPERS[0][0]]
    later = await rest("draft", "keyword", listed_from="2024-03-12")
    assert {h["title"] for h in later} == {PAPERS[2][0], PAPERS[3][0]}
    hybrid = await graphql("draft decoding", "HYBRID", {"listedFrom": "2024-03-12"})
    assert {h["title"] for h in hybrid} == {PAPERS[2][0], PAPERS[3][0]}  # both filtered lists fused
    assert [bool(h["snippet"]) for h in hybrid] == [True, True]  # keyword hits on the page carry snippets
    everything = await rest("protein folding", "hybrid")
    assert len(everything) == 4  # the vector side fills the page where keyword search matches one paper
    assert [h["title"] for h in everything if h["snippet"]] == [PAPERS[1][0]]
    # A phrase in hybrid search: its walk finds fewer papers than the page holds, the exhaustive plan answers.
    phrased = await rest('"draft models"', "hybrid")
    assert {h["title"] for h in phrased if h["snippet"]} == {PAPERS[0][0], PAPERS[3][0]}


async def test_snippets_mark_the_query_words_on_every_page_and_escape_the_abstract(conn):
    await ingest(conn, "a.txt", factories.page(PAPERS))
    tagged = "Compilers <script>alert(1)</script> drafts: cost < 5 & speed > 2 for draft models. " * 3
    await ingest(conn, "b.json", factories.hf_daily([("Script Drafts", tagged, None)], day="2024-03-12"))

    async def page(request: PageRequest) -> list:
        return list((await search_papers(conn, NO_MODEL, "draft models", request, mode="keyword")).items)

    first = await page(PageRequest(2))
    first_cursors = (await search_papers(conn, NO_MODEL, "draft models", PageRequest(2), mode="keyword")).cursors
    rest = await page(PageRequest(3, after=first_cursors[-1]))
    back = await page(PageRequest(1, before=first_cursors[-1], backward=True))
    assert len(first) + len(rest) == 5
    assert back == first[:1]
    for hit in first + rest:
        assert re.search(r"<mark>(draft|model)", hit.snippet or "", re.IGNORECASE), hit
    scripted = next(h for h in first + rest if h.title == "Script Drafts")
    assert "&lt;script&gt;" in scripted.snippet
    assert "<script>" not in scripted.snippet
    assert "cost &lt; 5 &amp; speed &gt; 2" in scripted.snippet


async def test_stems_are_found_through_both_indexes_in_bytewise_order(conn):
    # Migration 012 gives both tables' stems the "C" collation (a faster postings build); a query's stems (the
    # database's collation) must still reach the terms' primary key and the postings index, or every search
    # would scan them.
    await ingest(conn, "a.txt", factories.page([factories.paper(i) for i in range(5)]))
    stats = await terms.term_stats(conn, "model")  # the statement a search's `q` is built from
    assert stats.df
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # where an index can answer, it is taken
        for statement in (
            """SELECT k.df FROM unnest(tsvector_to_array(to_tsvector('english', 'model'))) AS s(term)
               JOIN keyword_terms k ON k.term = s.term""",
            """SELECT kp.paper_key FROM unnest(tsvector_to_array(to_tsvector('english', 'model'))) AS s(term)
               JOIN keyword_postings kp ON kp.term = s.term""",
        ):
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {statement}"))
            assert "Seq Scan" not in plan, plan
    collations = await conn.fetch(
        """SELECT c.relname, co.collname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_collation co ON co.oid = a.attcollation
           WHERE c.relname IN ('keyword_postings', 'keyword_terms') AND a.attname = 'term' ORDER BY 1"""
    )
    assert [tuple(r) for r in collations] == [("keyword_postings", "C"), ("keyword_terms", "C")]
