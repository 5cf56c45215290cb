"""GraphQL search, similar papers and recommendations against the real database, with a deterministic embedder."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.services import search as similarity
from ingest.embed import embed_pending
from ingest.pipeline import Source, ingest_source
from schema.api import RecommendRequest
from sql import db
from tests import factories
from tests.apps import settings
from tests.embedders import HashEmbedder, LoadingEmbedder

ARXIV = "2403.20{:03d}"
PAGE = range(30)  # a scraped page listed Mar 11
DAILY = range(30, 40)  # daily papers with arXiv ids listed Mar 12
N = len(PAGE) + len(DAILY)


@dataclass
class Loaded:
    """A database with both listings ingested and every paper embedded by HashEmbedder."""

    url: str
    ids: dict[int, str]  # factory paper number -> public id


@dataclass
class Api:
    client: AsyncTestClient

    async def query(self, query: str, variables: dict | None = None) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict | None = None) -> dict[str, Any]:
        body = await self.query(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def error(self, query: str, variables: dict | None = None) -> dict[str, Any]:
        body = await self.query(query, variables)
        assert body.get("errors"), body
        error = body["errors"][0]
        assert error["message"] != "Unexpected error.", "a client error was masked"
        return error


@pytest.fixture
async def loaded(fresh_db: str) -> Loaded:
    texts = [
        factories.page([factories.paper(i) for i in PAGE], label="Mar 11"),
        factories.hf_daily([(*factories.paper(i), ARXIV.format(i)) for i in DAILY], day="2024-03-12"),
    ]
    async with db.connection(fresh_db) as conn:
        for n, text in enumerate(texts):
            result = await ingest_source(conn, Source(f"{n}.txt", text.encode()), year=2024)
            assert result.error is None, result
        report = await embed_pending(conn, HashEmbedder())
        assert (report.embedded, report.failed) == (N, 0)
        rows = await conn.fetch("SELECT public_id, title FROM papers")
    number = {factories.paper(i)[0]: i for i in (*PAGE, *DAILY)}
    return Loaded(fresh_db, {number[r["title"]]: r["public_id"] for r in rows})


@contextlib.asynccontextmanager
async def serve(url: str, embedder: Any) -> AsyncIterator[Api]:
    async with AsyncTestClient(app=create_app(settings(), database_url=url, embedder=embedder)) as client:
        yield Api(client)


@pytest.fixture
async def api(loaded: Loaded) -> AsyncIterator[Api]:
    async with serve(loaded.url, HashEmbedder()) as client:
        yield client


SEARCH = """query($q: String!, $mode: SearchMode!, $first: Int!, $after: String, $filter: PaperFilterInput) {
  search(q: $q, mode: $mode, first: $first, after: $after, filter: $filter) {
    edges { cursor node { id title arxivId score snippet listings { id date rank } } }
    pageInfo { hasNextPage endCursor } } }"""
SIMILAR = "query($id: String!, $n: Int!) { paper(id: $id) { id similar(first: $n) { id title score } } }"
RECOMMEND = """query($pos: [String!]!, $neg: [String!]!, $text: String, $n: Int!, $filter: PaperFilterInput) {
  recommend(positive: $pos, negative: $neg, text: $text, first: $n, filter: $filter) { id title score arxivId } }"""


def search_vars(q: str, mode: str = "HYBRID", first: int = 10, **extra: Any) -> dict[str, Any]:
    return {"q": q, "mode": mode, "first": first, **extra}


@pytest.mark.parametrize("mode", ["KEYWORD", "SEMANTIC", "HYBRID"])
@pytest.mark.parametrize("i", [7, 34])
async def test_search_by_a_title_finds_that_paper_first(api, loaded, mode, i):
    title = factories.paper(i)[0]
    page = (await api.data(SEARCH, search_vars(title, mode)))["search"]
    nodes = [e["node"] for e in page["edges"]]
    assert nodes[0]["id"] == loaded.ids[i]
    assert nodes[0]["title"] == title
    scores = [n["score"] for n in nodes]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0
    if mode == "SEMANTIC":
        assert all(n["snippet"] is None for n in nodes)
    else:
        assert "<mark>" in nodes[0]["snippet"]
    # ScoredPaper extends Paper: its listings come through the same loader.
    expected = {"date": "2024-03-11", "rank": i + 1} if i in PAGE else {"date": "2024-03-12", "rank": i - 29}
    assert [{k: ref[k] for k in ("date", "rank")} for ref in nodes[0]["listings"]] == [expected]
    assert (nodes[0]["arxivId"] is not None) == (i in DAILY)


async def test_search_pages_through_every_hit_once(api):
    q, ids, after, pages = "we propose a method", [], None, 0
    while True:
        page = (await api.data(SEARCH, search_vars(q, "SEMANTIC", first=7, after=after)))["search"]
        ids += [e["node"]["id"] for e in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert page["edges"][-1]["cursor"] == after
    assert len(ids) == len(set(ids)) == N
    assert pages == 6

    first = (await api.data(SEARCH, search_vars(q, "SEMANTIC", first=7)))["search"]["pageInfo"]["endCursor"]
    for other in (
        search_vars(q, "KEYWORD", first=7, after=first),
        search_vars("other words", "SEMANTIC", after=first),
        search_vars(q, "SEMANTIC", after="garbage!"),
    ):
        error = await api.error(SEARCH, other)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "cursor" in error["message"]


async def test_search_filters(api):
    for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):
        variables = search_vars("speculative decoding", mode, first=100, filter={"arxiv": True})
        nodes = [e["node"] for e in (await api.data(SEARCH, variables))["search"]["edges"]]
        assert nodes
        assert all(n["arxivId"] for n in nodes)
        variables = search_vars("speculative decoding", mode, first=100, filter={"listedTo": "2024-03-11"})
        nodes = [e["node"] for e in (await api.data(SEARCH, variables))["search"]["edges"]]
        assert nodes
        assert not any(n["arxivId"] for n in nodes)


@pytest.mark.parametrize("i", [0, 12, 35])
async def test_similar_never_contains_the_paper_itself(api, loaded, i):
    for key in {loaded.ids[i], ARXIV.format(i) if i in DAILY else loaded.ids[i]}:
        paper = (await api.data(SIMILAR, {"id": key, "n": 100}))["paper"]
        ids = [p["id"] for p in paper["similar"]]
        assert paper["id"] == loaded.ids[i]
        assert loaded.ids[i] not in ids
        assert len(ids) == len(set(ids)) == N - 1
        scores = [p["score"] for p in paper["similar"]]
        assert scores == sorted(scores, reverse=True)
    few = (await api.data(SIMILAR, {"id": loaded.ids[i], "n": 3}))["paper"]["similar"]
    assert [p["id"] for p in few] == ids[:3]


async def test_similar_of_search_results(api):
    query = """{ search(q: "token pruning", mode: KEYWORD, first: 5) {
      edges { node { id similar(first: 4) { id score } } } } }"""
    edges = (await api.data(query))["search"]["edges"]
    assert edges
    for edge in edges:
        similar = [p["id"] for p in edge["node"]["similar"]]
        assert len(similar) == 4
        assert edge["node"]["id"] not in similar


async def test_similar_lookups_per_request_are_bounded(api):
    aliases = " ".join(f"s{k}: similar(first: 1) {{ id }}" for k in range(3))
    fine = "{ papers(first: 33) { edges { node { %s } } } }" % aliases  # 99 lookups
    assert len((await api.data(fine))["papers"]["edges"]) == 33
    error = await api.error("{ papers(first: 34) { edges { node { %s } } } }" % aliases)  # 102
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "similar/recommend lookups per request" in error["message"]
    # recommend counts against the same budget as similar (it was not capped per request before)
    many = " ".join(f'r{k}: recommend(text: "reward shaping", first: 1) {{ id }}' for k in range(2))
    error = await api.error("{ papers(first: 33) { edges { node { %s } } } %s }" % (aliases, many))  # 99 + 2
    assert "similar/recommend lookups per request" in error["message"]


async def test_recommend_with_positive_and_negative_examples(api, loaded):
    positive, negative = [loaded.ids[3], ARXIV.format(33)], [loaded.ids[13]]
    variables = {"pos": positive, "neg": negative, "n": 10}
    items = (await api.data(RECOMMEND, variables))["recommend"]
    ids = [p["id"] for p in items]
    assert len(ids) == len(set(ids)) == 10
    assert not {loaded.ids[3], loaded.ids[33], loaded.ids[13]} & set(ids)
    scores = [p["score"] for p in items]
    assert scores == sorted(scores, reverse=True)

    # The resolver is the service, nothing more: the same request gives the same papers and scores.
    request = RecommendRequest(positive=positive, negative=negative, limit=10)
    async with db.connection(loaded.url) as conn:
        expected = await similarity.recommend(conn, similarity.QueryEmbeddings(HashEmbedder()), request)
    assert [(p["id"], p["score"]) for p in items] == [(p.id, p.score) for p in expected]

    # The negative example steers: without it the ranking differs.
    unsteered = (await api.data(RECOMMEND, {"pos": positive, "neg": [], "n": 10}))["recommend"]
    assert [p["id"] for p in unsteered] != ids

    # Filters apply.
    daily = (await api.data(RECOMMEND, {**variables, "filter": {"arxiv": True}}))["recommend"]
    assert daily
    assert all(p["arxivId"] for p in daily)
    assert loaded.ids[33] not in {p["id"] for p in daily}


async def test_recommend_from_text(api, loaded):
    title = factories.paper(5)[0]
    items = (await api.data(RECOMMEND, {"pos": [], "neg": [], "text": title, "n": 5}))["recommend"]
    assert items[0]["id"] == loaded.ids[5]
    items = (await api.data(RECOMMEND, {"pos": [loaded.ids[5]], "neg": [], "text": title, "n": 5}))["recommend"]
    assert loaded.ids[5] not in {p["id"] for p in items}  # an example is never recommended back


@pytest.mark.parametrize("q", ["", "   "])
async def test_empty_query_is_bad_user_input(api, q):
    error = await api.error(SEARCH, search_vars(q))
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["message"] == "q must not be empty"
    assert error["path"] == ["search"]


async def test_recommend_needs_an_example(api):
    error = await api.error(RECOMMEND, {"pos": [], "neg": [], "text": "  ", "n": 5})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "positive" in error["message"]


async def test_unknown_id_in_recommend_is_not_found(api, loaded):
    error = await api.error(RECOMMEND, {"pos": [loaded.ids[1]], "neg": ["pap_doesnotexist"], "n": 5})
    assert error["extensions"] == {"code": "NOT_FOUND"}
    assert "pap_doesnotexist" in error["message"]


@pytest.mark.parametrize(("embedder", "retry_after"), [(LoadingEmbedder(), 10), (None, 3600)])
async def test_semantic_features_need_a_configured_model_and_queries_a_loaded_one(loaded, embedder, retry_after):
    async with serve(loaded.url, embedder) as api:
        needs_model = [
            (SEARCH, search_vars("token pruning", "SEMANTIC")),
            (SEARCH, search_vars("token pruning", "HYBRID")),
        ]
        stored = [(SIMILAR, {"id": loaded.ids[2], "n": 5}), (RECOMMEND, {"pos": [loaded.ids[2]], "neg": [], "n": 5})]
        for query, variables in needs_model if embedder is not None else needs_model + stored:
            error = await api.error(query, variables)
            assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryAfter": retry_after}
        if embedder is not None:  # a model still loading: stored vectors serve similar papers and recommendations
            for query, variables in stored:
                assert await api.data(query, variables)
        # Keyword search needs no model.
        page = (await api.data(SEARCH, search_vars(factories.paper(2)[0], "KEYWORD")))["search"]
        assert page["edges"][0]["node"]["id"] == loaded.ids[2]


async def test_another_model_than_the_stored_vectors_is_refused(loaded):
    class OtherModel(HashEmbedder):
        model = "test/other-model"

    async with serve(loaded.url, OtherModel()) as api:
        for query, variables in [
            (SEARCH, search_vars("token pruning", "SEMANTIC")),
            (SIMILAR, {"id": loaded.ids[2], "n": 5}),
        ]:
            error = await api.error(query, variables)
            assert error["extensions"] == {"code": "EMBEDDING_SPACE_MISMATCH"}
            assert "test/hash-bow" in error["message"]


@pytest.mark.parametrize("first", [1000, 0, -1, 101])
async def test_first_is_bounded(api, loaded, first):
    for query, variables in [
        (SEARCH, search_vars("token pruning", first=first)),
        (SIMILAR, {"id": loaded.ids[2], "n": first}),
        (RECOMMEND, {"pos": [loaded.ids[2]], "neg": [], "n": first}),
    ]:
        error = await api.error(query, variables)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"] == f"page size must be between 1 and 100, got {first}"
