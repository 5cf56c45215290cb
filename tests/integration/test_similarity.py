"""Embeddings, search, similar papers and recommendations against the real database."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.services.search import QueryEmbeddings, fuse
from ingest.embed import embed_pending, reembed_all
from ingest.pipeline import Source, ingest_source
from schema.api import ScoredPaper
from schema.errors import SpaceMismatchError
from sql import embeddings
from tests import factories
from tests.apps import settings
from tests.embedders import FailingEmbedder, HashEmbedder, LoadingEmbedder
from tests.integration.test_rest import assert_problem


async def load_pages(conn, pages: dict[str, str]) -> None:
    for name, text in pages.items():
        assert (await ingest_source(conn, Source(name, text.encode()), year=2024)).error is None


TOPICAL = {
    "a.txt": factories.page(
        [
            (
                "Graph Neural Networks for Molecule Property Prediction",
                "We study graph neural networks that predict molecule properties from atoms and bonds. " * 6,
            ),
            (
                "Message Passing on Molecular Graphs at Scale",
                "Message passing graph networks predict molecule properties; we scale molecular graphs training. " * 6,
            ),
            (
                "Speculative Decoding for Faster Language Model Inference",
                "Speculative decoding drafts tokens with a small model and verifies them with a large language model. "
                * 6,
            ),
        ],
        label="Mar 11",
    ),
    "b.txt": factories.page(
        [
            (
                "Draft Models Make Decoding Fast",
                "Small draft models propose tokens that a large language model verifies, speeding up decoding. " * 6,
            ),
            (
                "Protein Folding with Diffusion",
                "Diffusion models fold protein structures from amino acid sequences. " * 6,
            ),
        ],
        label="Mar 12",
    ),
}


@pytest.fixture
async def embedded(conn):
    await load_pages(conn, TOPICAL)
    report = await embed_pending(conn, HashEmbedder())
    assert (report.embedded, report.failed) == (5, 0)
    return conn


@pytest.fixture
async def client(fresh_db, embedded):
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=HashEmbedder())) as c:
        yield c


async def paper_id(client, title: str) -> str:
    return (await client.get("/v1/papers/match", params={"title": title})).json()["paper"]["id"]


async def test_embedding_records_space_and_is_not_repeated(embedded):
    assert await embeddings.current_space(embedded) == ("test/hash-bow", 384, "test", "fp32")
    again = await embed_pending(embedded, HashEmbedder())
    assert again.embedded == 0
    assert await embedded.fetchval("SELECT count(*) FROM papers WHERE embedding_model = 'test/hash-bow'") == 5


class RecordingEmbedder(HashEmbedder):
    """A HashEmbedder that keeps the texts of every batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    async def embed(self, texts):
        self.batches.append(list(texts))
        return await super().embed(texts)


async def test_batches_are_length_sorted_and_vectors_land_on_their_papers(conn):
    from ingest.embedder import embedding_text

    pairs = [factories.paper(i, words=5 + (i * 37) % 90) for i in range(23)]  # lengths out of key order
    await load_pages(conn, {"a.txt": factories.page(pairs)})
    recorder = RecordingEmbedder()
    report = await embed_pending(conn, recorder, batch=4, window=10)
    assert (report.embedded, report.failed) == (23, 0)
    assert all(len(b) <= 4 for b in recorder.batches)
    assert sum(map(len, recorder.batches)) == 23
    windows = [[t for b in recorder.batches[i : i + 3] for t in b] for i in range(0, len(recorder.batches), 3)]
    assert all([len(t) for t in w] == sorted(len(t) for t in w) for w in windows)  # shortest first per window
    rows = await conn.fetch("SELECT title, abstract, embedding FROM papers")
    for row in rows:  # sorting must not shuffle vectors between papers
        expected = recorder.vector(embedding_text(row["title"], row["abstract"]))
        assert np.allclose(row["embedding"].to_numpy(), expected, atol=1e-6), row["title"]


async def test_failed_embedding_keeps_the_paper_and_retries(conn):
    await load_pages(conn, {"a.txt": TOPICAL["a.txt"]})
    report = await embed_pending(conn, FailingEmbedder())
    assert (report.embedded, report.failed) == (0, 3)
    rows = await conn.fetch("SELECT embedding, embedding_attempts, embedding_error FROM papers")
    assert len(rows) == 3
    assert all(r["embedding"] is None and r["embedding_attempts"] == 1 for r in rows)
    assert "unreachable" in rows[0]["embedding_error"]
    queries = QueryEmbeddings(None)
    from api.services.search import search_papers
    from schema.paging import PageRequest

    hits = (await search_papers(conn, queries, "molecule", PageRequest(20), mode="keyword")).items
    assert len(hits) == 2
    assert hits[0].snippet is not None
    assert "<mark>" in hits[0].snippet
    assert (await embed_pending(conn, HashEmbedder())).embedded == 3


async def test_changed_abstract_is_embedded_again(embedded):
    title = "Protein Folding with Diffusion"
    longer = "Diffusion models fold protein structures from amino acid sequences with better accuracy. " * 8
    await load_pages(embedded, {"c.txt": factories.page([(title, longer)], label="Mar 13")})
    assert await embedded.fetchval("SELECT embedding IS NULL FROM papers WHERE title = $1", title)
    assert (await embed_pending(embedded, HashEmbedder())).embedded == 1


async def test_dimension_or_model_mismatch_is_a_clear_error(embedded):
    other = HashEmbedder()
    other.model = "other"
    with pytest.raises(
        SpaceMismatchError, match=r"test/hash-bow \(384-d, test fp32\).*other \(384-d, test fp32\).*papers embed --all"
    ):
        await embed_pending(embedded, other)
    small = HashEmbedder(dim=8)
    with pytest.raises(SpaceMismatchError, match="384-d"):
        await embed_pending(embedded, small)
    # An operator rebuilt the index with other options (docs/design.md, "HNSW at a million"): the switch keeps them.
    await embedded.execute("DROP INDEX papers_embedding_hnsw_idx")
    await embedded.execute(
        "CREATE INDEX papers_embedding_hnsw_idx ON papers USING hnsw (embedding vector_cosine_ops)"
        " WITH (m = 24, ef_construction = 128)"
    )
    report = await reembed_all(embedded, small)  # switching models re-embeds everything
    assert report.embedded == 5
    assert await embeddings.current_space(embedded) == ("test/hash-bow", 8, "test", "fp32")
    assert await embeddings.column_dim(embedded) == 8
    options = "SELECT reloptions FROM pg_class WHERE relname = 'papers_embedding_hnsw_idx'"
    assert await embedded.fetchval(options) == ["m=24", "ef_construction=128"]
    # The vectors stay in their rows (migration 009) after the column's type changed.
    storage = "SELECT attstorage FROM pg_attribute WHERE attrelid = 'papers'::regclass AND attname = 'embedding'"
    assert await embedded.fetchval(storage) == b"m"


async def test_same_model_on_another_backend_or_quantization_is_another_space(embedded, fresh_db):
    int8 = HashEmbedder()
    int8.backend, int8.quantization = "onnxruntime", "int8-dynamic-per-channel"
    # Ingest and the worker refuse to add vectors of another space to the stored ones ...
    with pytest.raises(SpaceMismatchError, match=r"test fp32\).*onnxruntime int8-dynamic-per-channel\)"):
        await embed_pending(embedded, int8)
    # ... and search refuses to compare a query vector of another space with them.
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=int8)) as client:
        for mode in ("semantic", "hybrid"):  # hybrid checks the space in its ranking statement
            response = await client.get("/v1/search", params={"q": "molecule graphs", "mode": mode})
            body = assert_problem(response, 409)
            assert "onnxruntime int8-dynamic-per-channel" in body["detail"]
    mixed = await embedded.fetchval("SELECT count(*) FROM papers WHERE embedding IS NOT NULL")
    report = await reembed_all(embedded, int8)  # switching re-embeds every paper, none is left in the old space
    assert report.embedded == mixed == 5
    assert await embeddings.current_space(embedded) == ("test/hash-bow", 384, "onnxruntime", "int8-dynamic-per-channel")
    with pytest.raises(SpaceMismatchError):  # and the old space is now the other one
        await embed_pending(embedded, HashEmbedder())


async def test_similar_leaves_out_the_paper_itself(client):
    pid = await paper_id(client, "Graph Neural Networks for Molecule Property Prediction")
    body = (await client.get(f"/v1/papers/{pid}/similar", params={"limit": 10})).json()
    ids = [item["id"] for item in body["items"]]
    assert pid not in ids
    assert len(ids) == 4
    assert body["items"][0]["title"] == "Message Passing on Molecular Graphs at Scale"
    assert body["items"][0]["score"] >= body["items"][-1]["score"]
    only_12 = (await client.get(f"/v1/papers/{pid}/similar", params={"listed_from": "2024-03-12"})).json()["items"]
    assert {i["title"] for i in only_12} == {"Draft Models Make Decoding Fast", "Protein Folding with Diffusion"}
    assert_problem(await client.get("/v1/papers/pap_nope/similar"), 404)


async def _embedded_400(conn) -> np.ndarray:
    """400 papers over 8 listing days, embedded, the HNSW index the planner's way to them; a vector near the first."""
    many = {
        f"bulk{k}.txt": factories.page([factories.paper(k * 50 + i) for i in range(50)], label=f"Mar {k + 1}")
        for k in range(8)
    }
    await load_pages(conn, many)
    await embed_pending(conn, HashEmbedder())
    # A table this small would otherwise be scanned exactly: force the HNSW path.
    await conn.execute("SET enable_seqscan = off")
    return HashEmbedder().vector(factories.paper(0)[1])


async def test_filtered_nearest_still_returns_limit_rows(conn):
    import datetime as dt

    from schema.api import PaperFilter
    from sql import search

    vector = await _embedded_400(conn)
    await conn.execute("DROP INDEX papers_recent_idx, papers_listed_span_idx")  # nor through the date indexes
    day = dt.date(2024, 3, 8)
    plan = "\n".join(
        r[0]
        for r in await conn.fetch(
            "EXPLAIN SELECT public_id FROM papers p WHERE p.embedding IS NOT NULL AND p.last_listed >= $2"
            " AND p.first_listed <= $2 ORDER BY p.embedding <=> $1 LIMIT 40",
            vector,
            day,
        )
    )
    assert "papers_embedding_hnsw_idx" in plan
    # 50 of 400 papers pass the filter; ef_search=100 alone would find about 12 of them.
    hits = await search.nearest(conn, vector, PaperFilter(listed_from=day, listed_to=day), limit=40)
    assert len(hits) == 40
    assert all(h.last_listed == day for h in hits)
    # In the scan's order, so a deeper request begins with the same 40 (docs/design.md, "Paging a ranking").
    deeper = await search.nearest(conn, vector, PaperFilter(listed_from=day, listed_to=day), limit=45)
    assert deeper[:40] == hits


async def _hnsw_only(conn) -> np.ndarray:
    """400 papers with vectors, HNSW the only way to them, no iterative scan: a scan returns ef_search rows at most."""
    vector = await _embedded_400(conn)
    await conn.execute("SET hnsw.iterative_scan = off")
    await conn.execute("SET hnsw.ef_search = 100")
    return vector


async def test_the_ef_search_gate_sets_its_statements_scan_and_no_other(conn):
    from sql import search

    vector = await _hnsw_only(conn)
    statement = "SELECT paper_key FROM papers p WHERE p.embedding IS NOT NULL {} ORDER BY p.embedding <=> $1 LIMIT 40"
    assert len(await conn.fetch(statement.format(""), vector)) == 40
    # Checked before the scan's first tuple, when pgvector reads the setting: 7 candidates, so 7 rows.
    assert len(await conn.fetch(statement.format(f"AND {search.ef_search_gate(7)}"), vector)) == 7
    assert await conn.fetchval("SHOW hnsw.ef_search") == "100"  # the statement's own transaction ended with it
    assert len(await conn.fetch(statement.format(""), vector)) == 40


async def test_hybrids_hnsw_half_scans_with_its_own_ef_search(conn, monkeypatch):
    from api.services.search import keyword_query
    from schema.api import PaperFilter
    from sql import keyword, search

    vector = await _hnsw_only(conn)
    query = keyword_query("graph networks")
    ranks = await keyword.hybrid_ranks(conn, query, vector, PaperFilter(), limit=40, depth=100)
    assert len(ranks.semantic) == 40
    monkeypatch.setattr(search, "hybrid_ef_search", lambda rows, iterative: 5)
    ranks = await keyword.hybrid_ranks(conn, query, vector, PaperFilter(), limit=40, depth=100)
    assert len(ranks.semantic) == 5


def test_hybrids_ef_search_is_half_the_processes_whatever_the_page(monkeypatch):
    from sql import search

    monkeypatch.setattr(search, "EF_SEARCH", 100)
    # The iterative scan supplies a deep page's rows past it, so every page scans alike.
    assert [search.hybrid_ef_search(rows) for rows in (20, 50, 51, 400, 5000)] == [50] * 5
    # Without one (pgvector before 0.8) a deep page must raise it to its rows.
    assert [search.hybrid_ef_search(rows, iterative=False) for rows in (20, 51, 400, 5000)] == [50, 51, 400, 1000]
    monkeypatch.setattr(search, "EF_SEARCH", 200)  # an operator's PAPERS_EF_SEARCH moves it along
    assert search.hybrid_ef_search(50) == 100


async def test_search_modes(client):
    for mode in ("keyword", "semantic", "hybrid"):
        body = (await client.get("/v1/search", params={"q": "speculative decoding draft tokens", "mode": mode})).json()
        titles = [i["title"] for i in body["items"]]
        assert titles[0] in {
            "Speculative Decoding for Faster Language Model Inference",
            "Draft Models Make Decoding Fast",
        }, mode
        assert all(set(i) >= {"id", "title", "score"} for i in body["items"])
    keyword = (await client.get("/v1/search", params={"q": "molecule", "mode": "keyword"})).json()["items"]
    assert keyword
    assert all("<mark>" in i["snippet"] for i in keyword)
    paged = (await client.get("/v1/search", params={"q": "models", "mode": "semantic", "limit": 2})).json()
    rest = (
        await client.get(
            "/v1/search", params={"q": "models", "mode": "semantic", "limit": 2, "cursor": paged["next_cursor"]}
        )
    ).json()
    assert not {i["id"] for i in paged["items"]} & {i["id"] for i in rest["items"]}


async def test_the_servers_ef_search_is_every_sessions_and_a_deeper_page_still_gets_its_rows(
    fresh_db, embedded, monkeypatch
):
    from sql import db, search

    monkeypatch.setattr(search, "EF_SEARCH", search.EF_SEARCH)  # the process's setting: restored after the test
    app = create_app(settings(ef_search=3), database_url=fresh_db, embedder=HashEmbedder())
    async with AsyncTestClient(app) as client:
        assert search.EF_SEARCH == 3  # set from the settings as the server started
        for limit in (2, 5):  # 3 rows (a page and the probe for the next) fit the session's; 6 need a deeper scan
            body = await client.get("/v1/search", params={"q": "decoding", "mode": "semantic", "limit": limit})
            assert len(body.json()["items"]) == limit
    pool = await db.create_pool(fresh_db, max_size=1)  # the app's pool lives on the test client's own event loop
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW hnsw.ef_search") == "3"
    finally:
        await pool.close()


async def test_snippets_mark_keyword_hits_on_every_page_and_only_them(client):
    first = (await client.get("/v1/search", params={"q": "models", "mode": "keyword", "limit": 2})).json()
    second = (
        await client.get(
            "/v1/search", params={"q": "models", "mode": "keyword", "limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert second["items"]
    assert all("<mark>" in i["snippet"] for i in first["items"] + second["items"])
    keyword_ids = {
        i["id"]
        for i in (await client.get("/v1/search", params={"q": "molecule", "mode": "keyword", "limit": 100})).json()[
            "items"
        ]
    }
    hybrid = (await client.get("/v1/search", params={"q": "molecule", "limit": 100})).json()["items"]
    assert {i["id"] for i in hybrid} - keyword_ids, "the fixture should give hybrid some semantic-only hits"
    for item in hybrid:
        assert ("<mark>" in (item["snippet"] or "")) == (item["id"] in keyword_ids), item


async def test_search_bad_input(client):
    assert_problem(await client.get("/v1/search", params={"q": "   "}), 400)
    assert_problem(await client.get("/v1/search", params={"q": "x" * 2001}), 400)
    assert_problem(await client.get("/v1/search"), 400)
    assert_problem(await client.get("/v1/search", params={"q": "a", "mode": "magic"}), 400)
    other = (await client.get("/v1/search", params={"q": "models", "limit": 1})).json()["next_cursor"]
    assert_problem(await client.get("/v1/search", params={"q": "decoding", "cursor": other}), 400)


def test_fuse_weighs_min_max_scaled_scores():
    keyword = [("a", 9.0), ("b", 5.0), ("c", 1.0)]
    semantic = [("c", 0.9), ("b", 0.7), ("d", 0.5)]
    fused = dict(fuse([(keyword, 0.7), (semantic, 0.3)]))
    # a: 0.7 x 1; b: 0.7 x 0.5 + 0.3 x 0.5; c: 0 + 0.3 x 1; d: 0 (its ranking's lowest)
    assert fused == pytest.approx({"a": 0.7, "b": 0.5, "c": 0.3, "d": 0.0})
    assert [key for key, _ in fuse([(keyword, 0.7), (semantic, 0.3)])] == ["a", "b", "c", "d"]


def test_fuse_keeps_the_first_ranks_when_the_rankings_go_deeper():
    """The scale is set by the first `depth` hits: a deeper page does not reorder the ranks before it."""
    keyword = [(f"k{i}", 100.0 - i) for i in range(8)]
    semantic = [(f"k{7 - i}", 0.9 - i / 100) for i in range(8)]
    shallow = fuse([(keyword[:4], 0.7), (semantic[:4], 0.3)], depth=4)
    deep = fuse([(keyword, 0.7), (semantic, 0.3)], depth=4)
    assert deep[: len(shallow)] == shallow
    assert fuse([([("x", 2.0)], 1.0)]) == [("x", 1.0)]  # one hit: the top of its scale


async def test_hybrid_puts_papers_found_by_both_first(client):
    items = (await client.get("/v1/search", params={"q": "graph molecule properties", "mode": "hybrid"})).json()[
        "items"
    ]
    assert {items[0]["title"], items[1]["title"]} == {
        "Graph Neural Networks for Molecule Property Prediction",
        "Message Passing on Molecular Graphs at Scale",
    }


async def test_recommendations(client):
    graph = await paper_id(client, "Graph Neural Networks for Molecule Property Prediction")
    decode = await paper_id(client, "Speculative Decoding for Faster Language Model Inference")
    body = (await client.post("/v1/recommendations", json={"positive": [decode], "limit": 3})).json()
    assert body["items"][0]["title"] == "Draft Models Make Decoding Fast"
    assert decode not in [i["id"] for i in body["items"]]
    steered = (
        await client.post(
            "/v1/recommendations",
            json={"positive": [graph], "negative": [decode], "text": "protein structure diffusion", "limit": 4},
        )
    ).json()["items"]
    assert {graph, decode}.isdisjoint(i["id"] for i in steered)
    assert steered[-1]["title"] == "Draft Models Make Decoding Fast"  # the negative's neighbour sinks
    assert_problem(await client.post("/v1/recommendations", json={"positive": []}), 400)
    assert_problem(await client.post("/v1/recommendations", json={"positive": ["pap_nope"]}), 404)
    assert_problem(await client.post("/v1/recommendations", json={"positive": [graph], "limit": 1000}), 400)


async def test_query_texts_are_embedded_once(client):
    queries = client.app.state.queries
    before = queries.misses
    for _ in range(3):
        await client.get("/v1/search", params={"q": "a repeated query", "mode": "semantic"})
    assert queries.misses == before + 1


async def test_loading_model_answers_503_with_retry_after(fresh_db, embedded):
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=LoadingEmbedder())) as c:
        response = await c.get("/v1/search", params={"q": "graph", "mode": "semantic"})
        assert_problem(response, 503)
        assert response.headers["retry-after"] == "10"
        assert (await c.get("/v1/search", params={"q": "graph", "mode": "keyword"})).status_code == 200


async def test_no_embedder_configured(fresh_db, embedded):
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=None)) as c:
        body = assert_problem(await c.get("/v1/search", params={"q": "graph"}), 503)
        assert "not configured" in body["detail"]


async def test_query_vector_of_another_model_is_refused(fresh_db, embedded):
    other = HashEmbedder()
    other.model = "other/model"
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=other)) as c:
        body = assert_problem(await c.get("/v1/search", params={"q": "graph", "mode": "semantic"}), 409)
        assert "papers embed --all" in body["detail"]


async def test_openai_compatible_embedder():
    import json

    import httpx

    from ingest.embedder import EmbeddingError, OpenAIEmbedder

    seen: dict[str, Any] = {}

    def server(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.update(url=str(request.url), auth=request.headers.get("authorization"), body=body)
        # answer out of order, unnormalized, as some servers do
        data = [{"index": i, "embedding": [float(i + 1), 0.0, 3.0]} for i in range(len(body["input"]))][::-1]
        return httpx.Response(200, json={"data": data, "model": body["model"]})

    embedder = OpenAIEmbedder(
        "http://gpu.internal:8080", "bge-small", 3, api_key="k", transport=httpx.MockTransport(server)
    )
    vectors = await embedder.embed(["first", "second"])
    assert seen == {
        "url": "http://gpu.internal:8080/v1/embeddings",
        "auth": "Bearer k",
        "body": {"model": "bge-small", "input": ["first", "second"]},
    }
    assert np.allclose(vectors[0], np.array([1, 0, 3]) / np.sqrt(10))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1)
    wrong_dim = OpenAIEmbedder("http://x", "m", 4, transport=httpx.MockTransport(server))
    with pytest.raises(EmbeddingError, match=r"shape \(1, 3\), expected \(1, 4\)"):
        await wrong_dim.embed(["a"])
    down = OpenAIEmbedder("http://x", "m", 3, transport=httpx.MockTransport(lambda r: httpx.Response(502)))
    with pytest.raises(EmbeddingError, match="failed"):
        await down.embed(["a"])


async def test_hybrid_pages_both_ways_walk_the_one_ranking(embedded):
    from api.services.search import search_papers
    from schema.paging import PageRequest

    queries = QueryEmbeddings(HashEmbedder())

    async def page(request: PageRequest):
        return await search_papers(embedded, queries, "graph molecule decoding", request, mode="hybrid")

    whole = (await page(PageRequest(100))).items
    assert len(whole) == 5  # every embedded paper: the nearest neighbours reach them all
    forward: list[ScoredPaper] = []
    after = None
    while True:
        got = await page(PageRequest(2, after=after))
        forward += got.items
        if not got.has_next:
            break
        after = got.cursors[-1]
    backward: list[ScoredPaper] = []
    before = None
    while True:
        got = await page(PageRequest(2, before=before, backward=True))
        backward = got.items + backward
        if not got.has_previous:
            break
        before = got.cursors[0]
    assert forward == whole
    assert backward == whole
    assert [h.score for h in whole] == sorted((h.score for h in whole), reverse=True)
