"""REST list niceties: totals on request, reversed sorts, `fields=` wherever papers are listed, unknown parameters."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from ingest.embed import embed_pending
from schema import limits
from sql import db
from tests.apps import settings
from tests.embedders import HashEmbedder
from tests.integration.test_rest import CORPUS, assert_problem, load

PAPERS = 16  # distinct papers in CORPUS: 0-9, 20, 21, 30-33


@pytest.fixture
async def client(fresh_db):
    await load(fresh_db, CORPUS)
    async with db.connection(fresh_db) as conn:
        await embed_pending(conn, HashEmbedder())
    app = create_app(settings(), database_url=fresh_db, embedder=HashEmbedder())
    async with AsyncTestClient(app) as c:
        yield c


async def _walk(client, url: str, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        body = (await client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_count_true_adds_the_total_of_every_page(client):
    plain = (await client.get("/v1/papers", params={"limit": 3})).json()
    assert "total" not in plain
    counted = (await client.get("/v1/papers", params={"limit": 3, "count": "true", "arxiv": "false"})).json()
    assert counted["total"] == len(await _walk(client, "/v1/papers", arxiv="false")) == PAPERS - 1
    listings = (await client.get("/v1/listings", params={"count": "true", "limit": 1})).json()
    assert (len(listings["items"]), listings["total"]) == (1, 4)
    found = (await client.get("/v1/search", params={"q": "paper", "mode": "keyword", "count": "true"})).json()
    assert (found["total"], found["total_exact"]) == (PAPERS, True)


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
async def test_a_total_past_the_count_cap_says_at_least_that_many(client, monkeypatch, mode):
    monkeypatch.setattr(limits, "MAX_COUNTED", 5)
    found = (await client.get("/v1/search", params={"q": "paper", "mode": mode, "count": "true"})).json()
    assert (found["total"], found["total_exact"]) == (5, False)
    papers = (await client.get("/v1/papers", params={"count": "true", "limit": 2})).json()
    assert (papers["total"], papers["total_exact"], len(papers["items"])) == (5, False, 2)
    listings = (await client.get("/v1/listings", params={"count": "true"})).json()
    assert (listings["total"], listings["total_exact"]) == (4, True)


@pytest.mark.parametrize("sort", ["recent", "title", "first_seen"])
async def test_a_minus_sign_reverses_the_sort_across_pages(client, sort):
    forward = [p["id"] for p in await _walk(client, "/v1/papers", sort=sort, limit=3)]
    backward = [p["id"] for p in await _walk(client, "/v1/papers", sort=f"-{sort}", limit=3)]
    assert len(forward) == PAPERS
    assert backward == forward[::-1]
    cursor = (await client.get("/v1/papers", params={"sort": sort, "limit": 3})).json()["next_cursor"]
    mixed = await client.get("/v1/papers", params={"sort": f"-{sort}", "cursor": cursor})
    assert "another query or sort order" in assert_problem(mixed, 400)["detail"]


async def test_fields_wherever_papers_are_listed(client):
    papers = (await client.get("/v1/papers", params={"fields": "id,title", "limit": 2})).json()["items"]
    assert [set(p) for p in papers] == [{"id", "title"}] * 2
    some = papers[0]["id"]
    found = await client.get("/v1/search", params={"q": "paper", "mode": "keyword", "fields": "id,score", "limit": 2})
    assert [set(p) for p in found.json()["items"]] == [{"id", "score"}] * 2
    similar = await client.get(f"/v1/papers/{some}/similar", params={"fields": "title", "limit": 2})
    assert [set(p) for p in similar.json()["items"]] == [{"title"}] * 2
    batch = await client.post("/v1/papers/batch", params={"fields": "id"}, json={"ids": [some, "nope"]})
    assert batch.json() == [{"id": some}, None]
    recommended = await client.post(
        "/v1/recommendations", params={"fields": "id,snippet"}, json={"positive": [some], "limit": 2}
    )
    assert [set(p) for p in recommended.json()["items"]] == [{"id", "snippet"}] * 2
    unknown = await client.get("/v1/search", params={"q": "paper", "fields": "id,nope"})
    assert "unknown fields: nope" in assert_problem(unknown, 400)["detail"]


@pytest.mark.parametrize(
    ("url", "params", "named"),
    [
        ("/v1/papers", {"listed_form": "2024-03-01"}, "listed_form"),
        ("/v1/papers", {"page": "2", "offset": "10"}, "offset, page"),
        ("/v1/search", {"q": "paper", "sort": "title"}, "sort"),
        ("/v1/listings", {"q": "paper"}, "q"),
        ("/v1/stats", {"verbose": "1"}, "verbose"),
    ],
)
async def test_unknown_query_parameters_are_400_naming_them(client, url, params, named):
    detail = assert_problem(await client.get(url, params=params), 400)["detail"]
    assert detail.startswith(f"unknown query parameter{'s' if ',' in named else ''}: {named};")
