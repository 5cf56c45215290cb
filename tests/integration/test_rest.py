"""REST endpoints against the real database: shapes, paging, filters, caching, writes, problems."""

from __future__ import annotations

import json

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from ingest.pipeline import Source, ingest_source
from ingest.worker import Worker
from sql import db
from tests import factories
from tests.apps import settings
from tests.unit.test_parsers import FIXTURES

KEY = "test-key"


async def load(url: str, texts: dict[str, str]) -> None:
    async with db.connection(url) as conn:
        for name, text in texts.items():
            result = await ingest_source(conn, Source(name, text.encode()), year=2024)
            assert result.error is None, result.error


CORPUS = {
    "mar11.txt": factories.page([factories.paper(i) for i in range(6)], label="Mar 11"),
    "mar12.txt": factories.page([factories.paper(i) for i in range(4, 10)], label="Mar 12", layout="lines"),
    "hf.json": factories.hf_daily(
        [(*factories.paper(20), "2403.00020"), (*factories.paper(21), None)], day="2024-03-13"
    ),
    "undated.txt": factories.page([factories.paper(i) for i in range(30, 34)], label=None),
}


@pytest.fixture
async def client(fresh_db):
    await load(fresh_db, CORPUS)
    async with AsyncTestClient(create_app(settings(api_key=KEY, max_body_bytes=50_000), database_url=fresh_db)) as c:
        yield c


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert "Traceback" not in response.text
    return body


async def walk(client, path: str, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        response = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("sort", ["recent", "title", "first_seen"])
async def test_walking_all_pages_gives_each_paper_once(client, sort):
    items = await walk(client, "/v1/papers", limit=3, sort=sort)
    ids = [p["id"] for p in items]
    assert len(ids) == len(set(ids)) == 16
    if sort == "title":
        assert [p["title"] for p in items] == sorted(p["title"] for p in items)
    if sort == "recent":
        days = [p["last_listed"] for p in items]
        assert days[-4:] == [None] * 4  # never listed on a known day: last
        assert days[:12] == sorted(days[:12], reverse=True)


async def test_paging_while_ingest_inserts_rows(client, fresh_db):
    before = {p["id"] for p in await walk(client, "/v1/papers", limit=50)}
    seen, cursor, k = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/papers", params=params)).json()
        seen += [p["id"] for p in page["items"]]
        k += 1
        await load(fresh_db, {f"new{k}.txt": factories.page([factories.paper(100 + k)], label=f"Jan {k}")})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


async def test_filters(client):
    listing_id = (await client.get("/v1/listings")).json()["items"][-2]["id"]
    in_listing = await walk(client, "/v1/papers", listing=listing_id)
    assert len(in_listing) == 6
    assert {p["arxiv_id"] for p in await walk(client, "/v1/papers", arxiv="true")} == {"2403.00020"}
    assert len(await walk(client, "/v1/papers", arxiv="false")) == 15
    title = factories.paper(3)[0]
    hits = await walk(client, "/v1/papers", q='"Study 3"')
    assert title in [p["title"] for p in hits]
    march12 = await walk(client, "/v1/papers", listed_from="2024-03-12", listed_to="2024-03-12")
    assert len(march12) == 6
    only_13 = await walk(client, "/v1/papers", listed_from="2024-03-13")
    assert {p["title"] for p in only_13} == {factories.paper(20)[0], factories.paper(21)[0]}


async def test_fields_selection(client):
    page = (await client.get("/v1/papers", params={"fields": "id,title", "limit": 2})).json()
    assert all(set(item) == {"id", "title"} for item in page["items"])
    assert_problem(await client.get("/v1/papers", params={"fields": "id,password"}), 400)


async def test_paper_by_id_and_arxiv_with_listings_and_etag(client):
    paper = (await client.get("/v1/papers", params={"arxiv": "true"})).json()["items"][0]
    response = await client.get(f"/v1/papers/{paper['id']}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["listings"] == [
        {"id": detail["listings"][0]["id"], "date_label": None, "date": "2024-03-13", "rank": 1}
    ]
    by_arxiv = await client.get("/v1/papers/2403.00020v3")
    assert by_arxiv.json() == detail
    etag = response.headers["etag"]
    not_modified = await client.get(f"/v1/papers/{paper['id']}", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert_problem(await client.get("/v1/papers/pap_doesnotexist"), 404)


async def test_paper_in_two_listings_lists_both(client):
    [paper] = (await client.post("/v1/papers/batch", json={"ids": [factories.paper(5)[0]]})).json()
    assert paper is None  # titles are not ids
    hit = (await client.get("/v1/papers/match", params={"title": factories.paper(5)[0]})).json()
    detail = (await client.get(f"/v1/papers/{hit['paper']['id']}")).json()
    assert [(r["date_label"], r["date"]) for r in detail["listings"]] == [
        ("Mar 12", "2024-03-12"),
        ("Mar 11", "2024-03-11"),
    ]


async def test_batch_keeps_order_with_nulls(client):
    ids = [p["id"] for p in (await client.get("/v1/papers", params={"limit": 3})).json()["items"]]
    response = await client.post("/v1/papers/batch", json={"ids": [ids[2], "nope", "2403.00020", ids[0]]})
    assert response.status_code == 200
    body = response.json()
    assert [b and b["id"] for b in body][0::3] == [ids[2], ids[0]]
    assert body[1] is None
    assert body[2]["arxiv_id"] == "2403.00020"
    assert_problem(await client.post("/v1/papers/batch", json={"ids": ["x"] * 501}), 400)
    assert_problem(
        await client.post("/v1/papers/batch", content=b"{not json", headers={"content-type": "application/json"}), 400
    )
    assert_problem(await client.post("/v1/papers/batch", json={"ids": "nope"}), 400)


async def test_title_match(client):
    title = factories.paper(7)[0]
    response = await client.get("/v1/papers/match", params={"title": title.lower().replace("(", "")})
    assert response.status_code == 200
    assert response.json()["paper"]["title"] == title
    assert 0.5 <= response.json()["score"] <= 1
    assert_problem(await client.get("/v1/papers/match", params={"title": "quantum gravity of bananas"}), 404)
    assert_problem(await client.get("/v1/papers/match"), 400)


async def test_listings_and_entries_in_rank_order(client):
    listings = await walk(client, "/v1/listings", limit=1)
    assert [item["date"] for item in listings] == ["2024-03-13", "2024-03-12", "2024-03-11", None]
    listing_id = listings[1]["id"]
    ranks, cursor = [], None
    while True:
        response = await client.get(
            f"/v1/listings/{listing_id}", params={"limit": 4, **({"cursor": cursor} if cursor else {})}
        )
        body = response.json()
        assert body["listing"]["entry_count"] == 6
        ranks += [e["rank"] for e in body["entries"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert ranks == [1, 2, 3, 4, 5, 6]
    assert_problem(await client.get("/v1/listings/lst_nope"), 404)


async def test_bad_requests_get_problem_bodies(client):
    assert_problem(await client.get("/v1/papers", params={"cursor": "garbage!!"}), 400)
    other_sort = (await client.get("/v1/papers", params={"limit": 1, "sort": "title"})).json()["next_cursor"]
    assert_problem(await client.get("/v1/papers", params={"cursor": other_sort}), 400)
    assert_problem(await client.get("/v1/papers", params={"limit": 100000}), 400)
    assert_problem(await client.get("/v1/papers", params={"limit": 0}), 400)
    assert_problem(await client.get("/v1/papers", params={"sort": "random"}), 400)
    assert_problem(await client.get("/v1/papers", params={"listed_from": "yesterday"}), 400)
    assert_problem(await client.get("/v1/nothing-here"), 404)


async def test_submit_listing_needs_key_and_is_processed(client, fresh_db):
    text = factories.page([factories.paper(50), factories.paper(51)], label="Apr 1")
    assert_problem(await client.post("/v1/listings", content=text), 401)
    wrong = await client.post("/v1/listings", content=text, headers={"Authorization": "Bearer nope"})
    assert_problem(wrong, 401)
    auth = {"Authorization": f"Bearer {KEY}", "content-type": "text/plain"}
    assert_problem(await client.post("/v1/listings", content="x" * 60_000, headers=auth), 413)
    assert_problem(await client.post("/v1/listings", content="   ", headers=auth), 400)
    bad_json = await client.post(
        "/v1/listings", content=b'[{"paper": ', headers={**auth, "content-type": "application/json"}
    )
    assert_problem(bad_json, 400)
    accepted = await client.post("/v1/listings", content=text, headers=auth, params={"year": 2024})
    assert accepted.status_code == 202, accepted.text
    job_url = accepted.json()["status_url"]
    assert (await client.get(job_url)).json()["status"] == "queued"
    await Worker(fresh_db).run(once=True)
    job = (await client.get(job_url)).json()
    assert job["status"] == "done"
    assert job["result"]["papers_new"] == 2
    assert_problem(await client.get("/v1/jobs/job_nope"), 404)


async def test_submitted_pretty_printed_json_is_one_document(client, fresh_db):
    pairs = [factories.paper(60), factories.paper(61)]
    doc = {"date": "2024-04-02", "papers": [{"title": t, "abstract": a, "upvotes": 3} for t, a in pairs]}
    auth = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    accepted = await client.post("/v1/listings", content=json.dumps(doc, indent=2), headers=auth)
    assert accepted.status_code == 202, accepted.text
    await Worker(fresh_db).run(once=True)
    job = (await client.get(accepted.json()["status_url"])).json()
    assert (job["status"], job["result"]["entries"]) == ("done", 2)
    broken = "\n".join([json.dumps({"title": "a", "abstract": "b"}), "{oops", json.dumps({"title": "c"})])
    body = assert_problem(await client.post("/v1/listings", content=broken, headers=auth), 400)
    assert "line 2 is not a JSON value" in body["detail"]


@pytest.mark.parametrize(
    ("fixture", "content_type", "kind"),
    [
        ("arxiv_api.atom", "application/atom+xml", "atom"),
        ("arxiv_rss2.xml", "application/rss+xml; charset=utf-8", "rss"),
        ("arxiv_list_new.html", "text/html", "html"),
        ("hf_archive.json", "application/json", "json"),
        ("bulk.jsonl", "application/x-ndjson", "jsonl"),
        ("arxiv_rss1.rdf", "text/plain", "rss"),  # no format in the type: detected
    ],
)
async def test_every_format_is_accepted_by_content_type_or_detection(client, fresh_db, fixture, content_type, kind):
    raw = (FIXTURES / fixture).read_bytes()
    auth = {"Authorization": f"Bearer {KEY}", "content-type": content_type}
    accepted = await client.post("/v1/listings", content=raw, headers=auth)
    assert accepted.status_code == 202, accepted.text
    await Worker(fresh_db).run(once=True)
    job = (await client.get(accepted.json()["status_url"])).json()
    assert job["status"] == "done", job
    async with db.connection(fresh_db) as conn:
        kinds = await conn.fetch(
            "SELECT kind FROM listings WHERE public_id = ANY($1::text[])", job["result"]["listing_ids"]
        )
    assert {r["kind"] for r in kinds} == {kind}


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        ("<!DOCTYPE html><html><body><p>Hello.</p></body></html>", "text/html", "line 1: an HTML page with no entries"),
        ("<feed xmlns='http://www.w3.org/2005/Atom'></feed>", "application/atom+xml", "an atom feed with no entries"),
        ("# Notes\n\n- one\n- two\n", "text/plain", "no title and abstract pairs found"),
        ("plain words", "application/json", "declared as JSON, but the body is not a JSON array or object"),
        ('{"name": "tool", "scripts": {}}', "application/json", "a JSON object with no list of papers in it"),
    ],
)
async def test_what_is_not_a_listing_is_refused_before_it_is_queued(client, body, content_type, detail):
    auth = {"Authorization": f"Bearer {KEY}", "content-type": content_type}
    problem = assert_problem(await client.post("/v1/listings", content=body, headers=auth), 400)
    assert detail in problem["detail"]
    assert (await client.get("/v1/stats")).json()["jobs_queued"] == 0


async def test_writes_disabled_without_configured_key(fresh_db):
    async with AsyncTestClient(create_app(settings(api_key=None), database_url=fresh_db)) as c:
        body = assert_problem(await c.post("/v1/listings", content="x", headers={"Authorization": "Bearer "}), 401)
        assert "PAPERS_API_KEY" in body["detail"]


async def test_stats_health_ready(client):
    stats = (await client.get("/v1/stats")).json()
    assert (stats["papers"], stats["listings"], stats["entries"]) == (16, 4, 18)
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    # Without replicas the primary is the one database, and answering this request shows it healthy.
    primary = {"name": "primary", "role": "primary", "healthy": True, "state": "ok", "lag_seconds": 0.0, "lag_bytes": 0}
    assert stats["databases"] == [primary]
    assert (await client.get("/readyz")).json() == {"status": "ready", "databases": [primary]}


def _has_example(schema: dict, components: dict) -> bool:
    """A response schema documents examples for every field (nested contracts count through their own)."""
    if "$ref" in schema:
        schema = components[schema["$ref"].split("/")[-1]]
    if schema.get("examples"):
        return True
    if "items" in schema:
        return _has_example(schema["items"], components)
    if "oneOf" in schema or "anyOf" in schema:
        return any(_has_example(s, components) for s in schema.get("oneOf", schema.get("anyOf")) or [])
    props = schema.get("properties", {})
    return bool(props) and all(p.get("examples") or "$ref" in p or "$ref" in p.get("items", {}) for p in props.values())


async def test_openapi_documents_every_route(client):
    spec = (await client.get("/schema/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    components = spec["components"]["schemas"]
    assert "/graphql" not in spec["paths"]  # GraphQL's contract is its SDL
    operations = [(path, op) for path, item in spec["paths"].items() for op in item.values()]
    assert len(operations) == 16
    for path, op in operations:
        assert op.get("operationId"), path
        assert op.get("summary"), path
        assert all(p.get("examples") for p in op.get("parameters", [])), (path, "parameter without example")
        [ok] = [r for code, r in op["responses"].items() if code.startswith("2")]
        if path == "/v1/export":  # a stream of papers, not one JSON document
            assert list(ok["content"]) == ["application/jsonl", "text/csv"]
            continue
        assert _has_example(ok["content"]["application/json"]["schema"], components), (path, "response without example")
        for status in ("400", "500", "503", *(["404"] if "{" in path else [])):
            assert "application/problem+json" in op["responses"][status]["content"], (path, status)
    assert (await client.get("/schema")).status_code == 200


async def test_cors_is_configurable(fresh_db):
    configured = settings(cors_origins=("https://app.example",))
    async with AsyncTestClient(create_app(configured, database_url=fresh_db)) as c:
        allowed = await c.get("/v1/stats", headers={"Origin": "https://app.example"})
        assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
        other = await c.get("/v1/stats", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db)) as c:
        assert (
            "access-control-allow-origin"
            not in (await c.get("/v1/stats", headers={"Origin": "https://app.example"})).headers
        )


async def test_paging_the_seeds_yields_all_559_papers_once(fresh_db, seeds):
    async with db.connection(fresh_db) as conn:
        for path in sorted(seeds.iterdir()):
            await ingest_source(conn, Source(path.name, path.read_bytes()))
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db)) as c:
        for sort in ("recent", "title", "first_seen"):
            ids = [p["id"] for p in await walk(c, "/v1/papers", limit=100, sort=sort, fields="id")]
            assert len(ids) == len(set(ids)) == 559


@pytest.mark.parametrize(
    "path",
    [
        "/v1/papers/a%00b",
        "/v1/papers?q=a%00b",
        "/v1/papers?listing=a%00b",
        "/v1/papers/match?title=abc%00d",
        "/v1/listings/a%00b",
        "/v1/jobs/a%00b",
        "/v1/search?q=ab%00c&mode=keyword",
    ],
)
async def test_nul_characters_are_refused_not_crashed_on(client, path):
    assert_problem(await client.get(path), 400)


async def test_nul_in_batch_ids_is_refused(client):
    assert_problem(await client.post("/v1/papers/batch", json={"ids": ["a\u0000b"]}), 400)
