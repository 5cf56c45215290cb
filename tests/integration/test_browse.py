"""Facets, export and autocomplete over REST, GraphQL and the CLI, checked against the paper list itself."""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import re
import subprocess
import sys

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.http.problem import PROBLEM_JSON
from api.services import browse
from schema import limits
from schema.api import PaperFilter
from sql import db
from tests import factories
from tests.apps import settings
from tests.integration.test_rest import CORPUS, assert_problem, load, walk

FILTERS = [
    {},
    {"q": "sparse routing"},
    {"arxiv": "true"},
    {"arxiv": "false", "listed_from": "2024-03-12"},
    {"listed_to": "2024-03-11"},
]


@pytest.fixture
async def client(fresh_db):
    await load(fresh_db, CORPUS)
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db)) as c:
        yield c


async def expected_facets(client, by: str, flt: dict) -> dict:
    """The counts computed from the list under the same filters, paper by paper."""
    counts: collections.Counter = collections.Counter()
    for paper in await walk(client, "/v1/papers", limit=100, **flt):
        if by == "listing":
            detail = (await client.get(f"/v1/papers/{paper['id']}")).json()
            counts.update({ref["id"] for ref in detail["listings"]})
        elif by == "has_arxiv":
            counts[str(paper["arxiv_id"] is not None).lower()] += 1
        else:
            day = paper["first_listed"]
            counts[day[: 7 if by == "listed_month" else 4] if day else None] += 1
    return dict(counts)


@pytest.mark.parametrize("flt", FILTERS)
@pytest.mark.parametrize("by", ["listing", "listed_month", "listed_year", "has_arxiv"])
async def test_facets_count_what_the_list_holds(client, by, flt):
    response = await client.get("/v1/papers", params={"group_by": by, **flt})
    assert response.status_code == 200, response.text
    groups = response.json()
    assert {g["key"]: g["count"] for g in groups} == await expected_facets(client, by, flt)
    counts = [g["count"] for g in groups]
    assert counts == sorted(counts, reverse=True)  # largest first


async def test_facets_of_the_corpus(client):
    months = (await client.get("/v1/papers", params={"group_by": "listed_month"})).json()
    assert months == [{"key": "2024-03", "count": 12}, {"key": None, "count": 4}]
    arxiv = (await client.get("/v1/papers", params={"group_by": "has_arxiv", "q": "sparse routing"})).json()
    assert arxiv == [{"key": "false", "count": 2}, {"key": "true", "count": 1}]


async def test_facets_refuse_an_unknown_field(client):
    body = assert_problem(await client.get("/v1/papers", params={"group_by": "author"}), 400)
    assert "group_by" in json.dumps(body)


async def test_facets_over_graphql_equal_rest(client):
    query = "query($by: FacetField!, $f: PaperFilterInput) { paperFacets(by: $by, filter: $f) { key count } }"
    for by in ("LISTING", "LISTED_YEAR", "HAS_ARXIV"):
        for flt in ({}, {"q": "sparse routing"}, {"arxiv": False, "listedFrom": "2024-03-12"}):
            rest_filter = {
                {"listedFrom": "listed_from"}.get(k, k): (str(v).lower() if isinstance(v, bool) else v)
                for k, v in flt.items()
            }
            rest = (await client.get("/v1/papers", params={"group_by": by.lower(), **rest_filter})).json()
            response = await client.post("/graphql", json={"query": query, "variables": {"by": by, "f": flt}})
            assert response.json() == {"data": {"paperFacets": rest}}, (by, flt)


def parse_export(body: bytes, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in body.decode().splitlines()]
    return list(csv.DictReader(io.StringIO(body.decode(), newline="")))


@pytest.mark.parametrize("flt", FILTERS)
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_export_holds_every_matching_paper_once(client, monkeypatch, fmt, flt):
    monkeypatch.setattr(limits, "EXPORT_BATCH", 3)  # several batches, and a short last one
    response = await client.get("/v1/export", params={"format": fmt, **flt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(browse.MEDIA_TYPES[fmt].split(";")[0])
    assert f'filename="papers.{fmt}"' in response.headers["content-disposition"]
    exported = parse_export(response.content, fmt)
    listed = await walk(client, "/v1/papers", limit=100, **flt)
    if fmt == "csv":  # every value as text, an empty field for null
        listed = [{k: "" if v is None else str(v) for k, v in p.items()} for p in listed]
        for row in exported:
            assert list(row) == list(browse.CSV_COLUMNS)
    assert sorted(exported, key=lambda p: p["id"]) == sorted(listed, key=lambda p: p["id"])


async def test_export_csv_keeps_commas_quotes_and_newlines(fresh_db):
    title = 'Commas, "Quotes" and Lines in a Title'
    await load(fresh_db, {"odd.txt": factories.page([(title, factories.paper(1)[1])], label="Mar 11")})
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db)) as c:
        [row] = parse_export((await c.get("/v1/export", params={"format": "csv"})).content, "csv")
    assert row["title"] == title


async def test_export_refuses_bad_requests_before_streaming(client):
    assert_problem(await client.get("/v1/export", params={"format": "xml"}), 400)
    assert_problem(await client.get("/v1/export", params={"q": "x" * (limits.MAX_QUERY_CHARS + 1)}), 400)
    assert_problem(await client.get("/v1/export", params={"arxiv": "yes"}), 400)
    # A filter only the database refuses (a NUL) is refused before the stream starts, not by cutting it.
    assert_problem(await client.get("/v1/export", params={"listing": "lst_\x00"}), 400)


async def test_head_of_an_export_answers_gets_headers_and_reads_no_paper(fresh_db):
    """HEAD checks what GET checks, and the database sees the statement, but with LIMIT 0: no paper is read."""
    await load(fresh_db, CORPUS)
    async with AsyncTestClient(create_app(settings(pool_min=1, pool_max=1), database_url=fresh_db)) as c:
        statements: list[str] = []
        async with c.app.state.pool.acquire() as conn:  # the pool's one connection: every statement is logged
            conn.add_query_logger(lambda record: statements.append(record.query))
        for fmt in ("jsonl", "csv"):
            get, head = await c.get("/v1/export", params={"format": fmt}), await c.head(f"/v1/export?format={fmt}")
            assert (head.status_code, head.content) == (200, b"")
            assert get.content
            assert "content-length" not in head.headers  # streamed: no length is claimed
            for name in ("content-type", "content-disposition"):
                assert head.headers[name] == get.headers[name]
        reads = [re.search(r"LIMIT (\d+)", q).group(1) for q in statements if "FROM papers" in q]  # type: ignore[union-attr]
        assert reads == [str(limits.EXPORT_BATCH), "0"] * 2
        # Refused as GET is: a filter only the database refuses, an unknown format, a parameter export does not take.
        for query in ("listing=lst_%00", "format=xml", "limit=5"):
            head = await c.head(f"/v1/export?{query}")
            assert (head.status_code, head.headers["content-type"], head.content) == (400, PROBLEM_JSON, b"")
            assert_problem(await c.get(f"/v1/export?{query}"), 400)


async def test_export_reads_a_batch_only_when_asked_and_holds_no_connection_between(fresh_db, monkeypatch):
    await load(fresh_db, CORPUS)
    monkeypatch.setattr(limits, "EXPORT_BATCH", 4)
    pool = await db.create_pool(fresh_db, min_size=1, max_size=2)
    statements: list[str] = []
    try:
        chunks = await browse.export(pool, PaperFilter(), "jsonl")
        async with db.pooled(pool) as conn:
            conn.add_query_logger(lambda record: statements.append(record.query))
            first = await anext(chunks)
            assert len(first.splitlines()) == 4
            assert len(statements) <= 1  # one batch read, nothing ahead of the reader
            assert pool.get_idle_size() == pool.get_size() - 1  # only this test's own connection is out
            rest = [chunk async for chunk in chunks]
    finally:
        await pool.close()
    assert sum(len(c.splitlines()) for c in [first, *rest]) == 16


def test_cli_export_writes_the_same_as_rest(fresh_db, tmp_path):
    import asyncio

    asyncio.run(load(fresh_db, CORPUS))
    env = {**os.environ, "DATABASE_URL": fresh_db}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", "export", *args], env=env, capture_output=True, timeout=120
        )

    jsonl = run("--q", "sparse routing")
    assert jsonl.returncode == 0, jsonl.stderr
    assert sorted(p["title"] for p in parse_export(jsonl.stdout, "jsonl")) == sorted(
        factories.paper(i)[0] for i in (0, 20, 30)
    )
    out = tmp_path / "papers.csv"
    written = run("--format", "csv", "--arxiv", "true", "--listed-from", "2024-03-01", "-o", str(out))
    assert written.returncode == 0, written.stderr
    [row] = parse_export(out.read_bytes(), "csv")
    assert row["arxiv_id"] == "2403.00020"
    bad = run("--arxiv", "maybe")
    assert bad.returncode == 2
    assert b"expected true or false" in bad.stderr


async def test_autocomplete_prefix_first_then_fragments(client):
    response = await client.get("/v1/autocomplete", params={"q": "sparse rout"})
    assert response.status_code == 200, response.text
    titles = [s["title"] for s in response.json()["items"]]
    assert titles[:3] == sorted(factories.paper(i)[0] for i in (0, 20, 30))
    fragment = [s["title"] for s in (await client.get("/v1/autocomplete", params={"q": "Routing"})).json()["items"]]
    assert set(fragment) >= {factories.paper(i)[0] for i in (0, 20, 30)}  # a word inside the title
    assert all("Routing" in t for t in fragment)


async def test_autocomplete_is_case_insensitive_capped_and_unique(client):
    items = (await client.get("/v1/autocomplete", params={"q": "SPARSE", "limit": 2})).json()["items"]
    assert len(items) == 2
    assert all(s["title"].startswith("Sparse") for s in items)
    one_letter = [s["title"] for s in (await client.get("/v1/autocomplete", params={"q": "s"})).json()["items"]]
    assert sorted(one_letter[:4]) == sorted(factories.paper(i)[0] for i in (0, 6, 20, 30))  # these start with S
    assert all(re.search(r"\bs", t, re.IGNORECASE) for t in one_letter[4:])  # a word starting with s
    many = (await client.get("/v1/autocomplete", params={"q": "stud"})).json()["items"]  # every title: "(Study n)"
    assert len(many) == limits.MAX_SUGGESTIONS
    assert len({s["id"] for s in many}) == len(many)


async def test_autocomplete_treats_like_wildcards_as_text(client):
    for typed in ("%", "_", "\\", "Sparse%"):
        response = await client.get("/v1/autocomplete", params={"q": typed})
        assert response.status_code == 200, response.text
        assert all(typed.rstrip("%_\\").lower() in s["title"].lower() for s in response.json()["items"])
    assert (await client.get("/v1/autocomplete", params={"q": "%"})).json()["items"] == []


async def test_autocomplete_refuses_bad_input(client):
    assert_problem(await client.get("/v1/autocomplete", params={"q": ""}), 400)
    assert_problem(await client.get("/v1/autocomplete", params={"q": "x" * 201}), 400)
    assert_problem(await client.get("/v1/autocomplete", params={"q": "ab", "limit": 11}), 400)
    assert_problem(await client.get("/v1/autocomplete"), 400)


async def test_autocomplete_words_in_any_order_last_one_a_prefix(client):
    titles = [s["title"] for s in (await client.get("/v1/autocomplete", params={"q": "scale rout"})).json()["items"]]
    assert titles == [factories.paper(30)[0]]  # "Sparse Routing at Scale (Study 30)"
    assert (await client.get("/v1/autocomplete", params={"q": "scal routing"})).json()["items"] == []  # whole words


async def test_autocomplete_over_graphql(client):
    query = '{ autocomplete(q: "sparse rout", first: 3) { id title } }'
    body = (await client.post("/graphql", json={"query": query})).json()
    rest = (await client.get("/v1/autocomplete", params={"q": "sparse rout", "limit": 3})).json()["items"]
    assert body == {"data": {"autocomplete": rest}}
    blank = (await client.post("/graphql", json={"query": '{ autocomplete(q: "   ") { id } }'})).json()
    assert blank["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
