"""The GraphQL API against the real database: lookups, paging, filters, batching, guards, auth, schema file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.export_schema import sdl
from api.services import catalog
from ingest.pipeline import Source, ingest_source
from sql import db, jobs
from tests import factories
from tests.apps import settings

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
KEY = "k"
ARXIV = "2403.10{:03d}"
# Strawberry's Litestar controller (not this project) still relies on inferred dependencies.


@dataclass
class Api:
    """A running app over a loaded database, and every SQL statement its pool issued."""

    client: AsyncTestClient
    url: str
    listings: dict[str, str]  # "a", "b", "c" -> public id
    statements: list[str] = field(default_factory=list)
    compiled: bool = True  # compiled reads on (api/graphql_compiled.py)

    async def query(self, query: str, variables: dict | None = None, *, key: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict | None = None, **kwargs: Any) -> dict[str, Any]:
        body = await self.query(query, variables, **kwargs)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def error(self, query: str, variables: dict | None = None, **kwargs: Any) -> dict[str, Any]:
        body = await self.query(query, variables, **kwargs)
        assert body.get("errors"), body
        return body["errors"][0]


async def load(url: str) -> dict[str, str]:
    """Three listings: A (papers 0-29, Mar 11), B (20-54, Mar 12), C (daily papers 60-69 with arXiv ids, Mar 13)."""
    texts = {
        "a": factories.page([factories.paper(i) for i in range(30)], label="Mar 11"),
        "b": factories.page([factories.paper(i) for i in range(20, 55)], label="Mar 12"),
        "c": factories.hf_daily([(*factories.paper(i), ARXIV.format(i)) for i in range(60, 70)], day="2024-03-13"),
    }
    ids = {}
    async with db.connection(url) as conn:
        for name, text in texts.items():
            result = await ingest_source(conn, Source(f"{name}.txt", text.encode()), year=2024)
            assert result.error is None, result
            assert result.listing_id, result
            ids[name] = result.listing_id
    return ids


@pytest.fixture(params=[True, False], ids=["compiled", "strawberry"])
async def api(fresh_db: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """The app with compiled reads on (the default) and off: every test holds for both executors."""
    listings = await load(fresh_db)
    statements: list[str] = []
    init = db.init_connection

    async def logging_init(conn) -> None:
        await init(conn)
        conn.add_query_logger(lambda record: statements.append(record.query))

    monkeypatch.setattr(db, "init_connection", logging_init)  # every pooled connection logs its statements
    configured = settings(api_key=KEY, graphql_compiled=request.param)
    async with AsyncTestClient(app=create_app(configured, database_url=fresh_db)) as client:
        yield Api(client, fresh_db, listings, statements, request.param)


PAPERS = """query($first: Int!, $after: String, $sort: PaperSort!, $filter: PaperFilterInput) {
  papers(first: $first, after: $after, sort: $sort, filter: $filter) {
    edges { cursor node { id title arxivId } } pageInfo { hasNextPage endCursor } } }"""


async def walk(api: Api, *, sort: str = "RECENT", first: int = 7, filter: dict | None = None) -> list[dict]:
    """Every paper, following endCursor page by page."""
    nodes, after = [], None
    while True:
        variables = {"first": first, "after": after, "sort": sort, "filter": filter}
        page = (await api.data(PAPERS, variables))["papers"]
        nodes += [edge["node"] for edge in page["edges"]]
        info = page["pageInfo"]
        assert page["edges"][-1]["cursor"] == info["endCursor"]  # Relay: the last edge's cursor, on every page
        if not info["hasNextPage"]:
            return nodes
        after = info["endCursor"]


async def test_paper_by_public_id_and_by_arxiv_id(api):
    async with db.connection(api.url) as conn:
        row = await conn.fetchrow("SELECT public_id, title FROM papers WHERE arxiv_id = $1", ARXIV.format(61))
    assert row is not None
    query = "query($id: String!) { paper(id: $id) { id title arxivId firstListed listings { id date rank } } }"
    by_id = (await api.data(query, {"id": row["public_id"]}))["paper"]
    assert by_id["title"] == row["title"] == factories.paper(61)[0]
    assert by_id["arxivId"] == ARXIV.format(61)
    assert by_id["firstListed"] == "2024-03-13"
    assert by_id["listings"] == [{"id": api.listings["c"], "date": "2024-03-13", "rank": 2}]
    for arxiv in (ARXIV.format(61), f"arXiv:{ARXIV.format(61)}v3"):
        assert (await api.data(query, {"id": arxiv}))["paper"] == by_id
    assert (await api.data(query, {"id": "nope"}))["paper"] is None


async def test_paper_listings_newest_first(api):
    title = factories.paper(25)[0]
    nodes = await walk(api, first=100, filter={"listing": api.listings["a"]})
    [paper] = [n for n in nodes if n["title"] == title]
    query = "query($id: String!) { paper(id: $id) { listings { id dateLabel date rank listing { id kind } } } }"
    data = await api.data(query, {"id": paper["id"]})
    assert data["paper"]["listings"] == [
        {
            "id": api.listings["b"],
            "dateLabel": "Mar 12",
            "date": "2024-03-12",
            "rank": 6,
            "listing": {"id": api.listings["b"], "kind": "page"},
        },
        {
            "id": api.listings["a"],
            "dateLabel": "Mar 11",
            "date": "2024-03-11",
            "rank": 26,
            "listing": {"id": api.listings["a"], "kind": "page"},
        },
    ]


@pytest.mark.parametrize("sort", ["RECENT", "TITLE", "FIRST_SEEN"])
async def test_paging_walks_every_paper_exactly_once(api, sort):
    nodes = await walk(api, sort=sort, first=7)
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids)) == 65
    if sort == "TITLE":
        assert [n["title"] for n in nodes] == sorted(n["title"] for n in nodes)
    if sort == "RECENT":  # the Mar 13 daily papers first
        assert all(n["arxivId"] for n in nodes[:10])
        assert not any(n["arxivId"] for n in nodes[10:])


async def test_total_count_is_counted_only_when_selected(api):
    api.statements.clear()
    page = (await api.data("{ papers(first: 3) { pageInfo { hasNextPage } } }"))["papers"]
    assert page["pageInfo"]["hasNextPage"]
    assert not any("AS counted)" in s for s in api.statements)
    page = (await api.data("{ papers(first: 3) { totalCount edges { node { id } } } }"))["papers"]
    assert page["totalCount"] == 65
    assert len(page["edges"]) == 3
    assert sum("AS counted)" in s for s in api.statements) == 1


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"arxiv": True}, [ARXIV.format(i) for i in range(60, 70)]),
        ({"arxiv": False}, 55),
        ({"listing": "a"}, 30),
        ({"listing": "b"}, 35),
        ({"q": "diffusion"}, {factories.paper(i)[0] for i in (2, 12, 22, 32, 42, 52, 62)}),
        ({"listedFrom": "2024-03-12", "listedTo": "2024-03-12"}, 35),
        ({"listedFrom": "2024-03-13"}, 10),
    ],
)
async def test_filters(api, flt, expected):
    if "listing" in flt:
        flt = {"listing": api.listings[flt["listing"]]}
    query = """query($f: PaperFilterInput) {
      papers(filter: $f, first: 100) { totalCount edges { node { title arxivId } } } }"""
    page = (await api.data(query, {"f": flt}))["papers"]
    nodes = [e["node"] for e in page["edges"]]
    assert page["totalCount"] == len(nodes)
    if isinstance(expected, int):
        assert len(nodes) == expected
    elif isinstance(expected, set):
        assert {n["title"] for n in nodes} == expected
    else:
        assert sorted(n["arxivId"] for n in nodes) == expected


async def test_listing_entries_in_rank_order(api):
    query = """query($id: String!, $after: String) { listing(id: $id) {
      id kind dateLabel date entryCount rejectCount
      entries(first: 8, after: $after) {
        edges { cursor node { rank titleAsPrinted abstractAsPrinted paper { title } } }
        pageInfo { hasNextPage endCursor } } } }"""
    entries, after = [], None
    while True:
        listing = (await api.data(query, {"id": api.listings["b"], "after": after}))["listing"]
        page = listing["entries"]
        entries += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert {k: listing[k] for k in ("kind", "dateLabel", "date", "entryCount", "rejectCount")} == {
        "kind": "page",
        "dateLabel": "Mar 12",
        "date": "2024-03-12",
        "entryCount": 35,
        "rejectCount": 0,
    }
    assert [e["rank"] for e in entries] == list(range(1, 36))
    assert [e["paper"]["title"] for e in entries] == [factories.paper(i)[0] for i in range(20, 55)]
    assert all(e["titleAsPrinted"] is None and e["abstractAsPrinted"] is None for e in entries)
    assert (await api.data('{ listing(id: "nope") { id } }'))["listing"] is None


async def test_listings_connection_newest_first(api):
    query = """query($after: String) {
      listings(first: 2, after: $after) { edges { node { id date } } pageInfo { hasNextPage endCursor } } }"""
    first = (await api.data(query))["listings"]
    rest = (await api.data(query, {"after": first["pageInfo"]["endCursor"]}))["listings"]
    nodes = [e["node"] for e in first["edges"] + rest["edges"]]
    assert [n["id"] for n in nodes] == [api.listings[k] for k in "cba"]
    assert [n["date"] for n in nodes] == ["2024-03-13", "2024-03-12", "2024-03-11"]
    assert (first["pageInfo"]["hasNextPage"], rest["pageInfo"]["hasNextPage"]) == (True, False)


async def test_stats(api):
    stats = (await api.data("{ stats { papers listings entries rejects embedded jobsQueued jobsFailed } }"))["stats"]
    assert stats == {
        "papers": 65,
        "listings": 3,
        "entries": 75,
        "rejects": 0,
        "embedded": 0,
        "jobsQueued": 0,
        "jobsFailed": 0,
    }


async def test_nested_lists_cost_a_constant_number_of_statements(api):
    query = "query($n: Int!) { papers(first: $n) { edges { node { id listings { id rank listing { id date } } } } } }"
    counts: dict[int, int] = {}
    for n in (5, 50):
        api.statements.clear()
        edges = (await api.data(query, {"n": n}))["papers"]["edges"]
        assert len(edges) == n
        assert all(e["node"]["listings"] for e in edges)
        counts[n] = len(api.statements)
    # Compiled: one statement. Executor: one page of papers, one batch of their listings, one of those listings.
    per_request = 1 if api.compiled else 3
    assert counts[5] == counts[50] == per_request, api.statements

    query = """query($n: Int!) { listing(id: "%s") { entries(first: $n) {
               edges { node { paper { id listings { id } } } } } } }""" % api.listings["b"]
    await api.data(query, {"n": 1})  # warm up: asyncpg introspects new types once per connection
    for n in (5, 35):
        api.statements.clear()
        assert len((await api.data(query, {"n": n}))["listing"]["entries"]["edges"]) == n
        counts[n] = len(api.statements)
    assert counts[5] == counts[35] == per_request, [s[:80] for s in api.statements]


async def test_deep_queries_are_refused(api):
    nine = "{ listings { edges { node { entries { edges { node { paper { listings { id } } } } } } } } }"
    assert (await api.data(nine))["listings"]["edges"]
    ten = '{ paper(id: "x") { listings { listing { entries { edges { node { paper { listings { listing { id }'
    ten += " } } } } } } } } }"
    body = await api.query(ten)
    assert body.get("data") is None
    assert "exceeds maximum operation depth of 8" in body["errors"][0]["message"]


async def test_too_many_aliases_are_refused(api):
    query = "{ " + " ".join(f"a{i}: stats {{ papers }}" for i in range(16)) + " }"
    assert "aliases" in (await api.error(query))["message"]


@pytest.mark.parametrize(
    "query",
    [
        "{ papers(first: 1000) { edges { node { id } } } }",
        "{ papers(first: 0) { edges { node { id } } } }",
        "{ listings(first: 101) { edges { node { id } } } }",
        "{ listings { edges { node { entries(first: -1) { edges { node { rank } } } } } } }",
    ],
)
async def test_page_size_is_bounded(api, query):
    error = await api.error(query)
    assert "page size must be between 1 and 100" in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_bad_cursors_are_reported_not_masked(api):
    end = (await api.data(PAPERS, {"first": 2, "sort": "RECENT"}))["papers"]["pageInfo"]["endCursor"]
    cases = [
        ("garbage!", "RECENT", "cursor is malformed"),
        (end, "TITLE", "cursor belongs to another query or sort order"),
    ]
    for after, sort, message in cases:
        error = await api.error(PAPERS, {"first": 2, "sort": sort, "after": after})
        assert error["message"] == message
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
    query = '{ listing(id: "%s") { entries(after: "%s") { edges { cursor } } } }' % (api.listings["a"], end)
    error = await api.error(query)
    assert error["message"] == "cursor belongs to another query or sort order"
    assert error["path"] == ["listing", "entries"]


@pytest.mark.parametrize(
    ("query", "variables", "reason"),
    [
        ("query($n: Int) { papers(first: $n) { totalCount } }", {"n": "abc"}, "Int cannot represent"),
        ("query($n: Int) { papers(first: $n) { totalCount } }", {"n": 2**40}, "non 32-bit signed integer"),
        ("query($s: PaperSort) { papers(sort: $s) { totalCount } }", {"s": "bogus"}, "'bogus' does not exist"),
        ("query($f: PaperFilterInput) { papers(filter: $f) { totalCount } }", {"f": {"arxiv": "no"}}, "Boolean"),
    ],
)
async def test_variables_graphql_cannot_read_are_the_clients_error(api, caplog, query, variables, reason):
    """A variable of the wrong type was answered "Unexpected error." and logged as a server failure."""
    error = await api.error(query, variables)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert reason in error["message"]
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert api.client.app.state.graphql_schema.unexpected_errors == 0


async def test_unexpected_errors_are_masked_logged_and_counted(api, monkeypatch, caplog):
    calls = []

    async def broken(*args):
        calls.append(args)
        raise RuntimeError("secret detail")

    monkeypatch.setattr(catalog, "stats", broken)  # the executor's read
    monkeypatch.setattr(catalog, "read_graph", broken)  # the compiled read
    error = await api.error("{ stats { papers } }")
    assert error["message"] == "Unexpected error."
    assert "secret" not in str(error)
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    [record] = [r for r in caplog.records if r.name == "papers.graphql" and r.levelname == "ERROR"]
    assert record.exc_info
    assert "secret detail" in str(record.exc_info[1])  # the traceback is in the log
    assert len(calls) == 1  # whichever path ran it, it ran once: a failed compiled read is not run again


SUBMIT = """mutation($text: String!, $format: ListingFormat, $year: Int) {
  submitListing(text: $text, format: $format, year: $year) { jobId } }"""


async def test_submit_listing_needs_the_api_key(api):
    text = factories.page([factories.paper(200)], label="Apr 2")
    for key in (None, "wrong"):
        body = await api.query(SUBMIT, {"text": text}, key=key)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    async with db.connection(api.url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM ingest_jobs") == 0

    job_id = (await api.data(SUBMIT, {"text": text, "format": "page", "year": 2024}, key=KEY))["submitListing"]["jobId"]
    async with db.connection(api.url) as conn:
        job = await jobs.get(conn, job_id)
    assert job is not None
    assert job.status == "queued"
    assert (job.payload, job.format, job.year, job.source) == (text.encode(), "page", 2024, "graphql")
    assert (await api.data("{ stats { jobsQueued } }"))["stats"]["jobsQueued"] == 1

    # The format is the ListingFormat enum (REST's too), written unquoted in a document, its value in variables.
    error = await api.error(SUBMIT, {"text": text, "format": "pdf"}, key=KEY)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Value 'pdf' does not exist in 'ListingFormat' enum" in error["message"]
    literal = f"mutation {{ submitListing(text: {json.dumps(text)}, format: page, year: 2024) {{ jobId }} }}"
    assert (await api.data(literal, key=KEY))["submitListing"]["jobId"]

    # Not a listing: refused at once with the reason and line `papers ingest` gives, nothing queued.
    html = "<!DOCTYPE html><html><body><p>Hello.</p></body></html>"
    error = await api.error(SUBMIT, {"text": html}, key=KEY)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("line 1: an HTML page with no entries")
    atom = (Path(__file__).parents[1] / "fixtures" / "arxiv_api.atom").read_text()
    assert (await api.data(SUBMIT, {"text": atom}, key=KEY))["submitListing"]["jobId"]
    assert (await api.data("{ stats { jobsQueued } }"))["stats"]["jobsQueued"] == 3


async def test_writes_are_refused_without_a_configured_key(fresh_db):
    async with AsyncTestClient(app=create_app(settings(api_key=None), database_url=fresh_db)) as client:
        response = await client.post(
            "/graphql", json={"query": SUBMIT, "variables": {"text": "x"}}, headers={"Authorization": "Bearer "}
        )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "no API key configured" in error["message"]


def test_schema_file_is_current():
    assert SCHEMA_FILE.read_text() == sdl(), (
        "schema.graphql is out of date; regenerate it with `python -m api.export_schema > schema.graphql`"
    )


@pytest.mark.parametrize(
    "query",
    [
        '{ paper(id: "a\\u0000b") { id } }',
        '{ listing(id: "a\\u0000b") { id } }',
        '{ papers(filter: {q: "a\\u0000b"}) { edges { node { id } } } }',
    ],
)
async def test_nul_characters_are_user_errors(api, query):
    error = await api.error(query)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "NUL" in error["message"]


async def test_guards_hold_for_a_repeated_document(api):
    ten = '{ paper(id: "x") { listings { listing { entries { edges { node { paper { listings { listing { id }'
    ten += " } } } } } } } } }"
    for _ in range(3):  # the parse/validation caches must keep refusing it
        body = await api.query(ten)
        assert body.get("data") is None
        assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_a_repeated_document_is_parsed_and_validated_once(api, monkeypatch):
    import strawberry.schema.schema as executor

    calls = []
    parse, validate = executor.parse, executor.validate_document

    def counted_parse(*args, **kwargs):
        calls.append("parse")
        return parse(*args, **kwargs)

    def counted_validate(*args):
        calls.append("validate")
        return validate(*args)

    monkeypatch.setattr(executor, "parse", counted_parse)
    monkeypatch.setattr(executor, "validate_document", counted_validate)
    query = "{ papers(first: 2) { edges { node { id } } } } # unique to this test"
    for _ in range(4):
        assert (await api.data(query))["papers"]["edges"]
    assert calls == ["parse", "validate"]


async def test_a_released_connection_is_not_reset_by_a_round_trip(api):
    # Every statement a request sends is its own: no RESET ALL / UNLISTEN after each release.
    api.statements.clear()
    await api.data("{ stats { papers } }")
    assert api.statements
    assert not any("RESET ALL" in s or "UNLISTEN" in s for s in api.statements)


@pytest.mark.parametrize(
    ("body", "headers", "detail"),
    [
        (b"{bad", {"content-type": "application/json"}, "Unable to parse request body as JSON"),
        (b"query", {"content-type": "application/x-unknown"}, "Unsupported content type"),
        (b"{}", {"content-type": "application/json"}, "No GraphQL query found in the request"),
    ],
)
async def test_unreadable_requests_get_problem_bodies(api, body, headers, detail):
    response = await api.client.post("/graphql", content=body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail}
