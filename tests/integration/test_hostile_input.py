"""Bad and hostile input gets a precise 4xx (problem body or GraphQL error code), never a 500 or a traceback."""

from __future__ import annotations

import base64
import json
import logging

import pytest
import strawberry.schema.schema as executor
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.graphql import cost
from api.graphql.documents import MAX_BYTES, MAX_CACHED_DOCUMENT
from api.rest.params import ENTRIES_CURSOR, EXAMPLE_LISTING, LISTINGS_CURSOR, PAPERS_CURSOR, SEARCH_CURSOR
from sql.queries import rank_of
from tests.apps import settings
from tests.embedders import HashEmbedder
from tests.integration.test_rest import CORPUS, KEY, assert_problem, load


def forged(kind: str, *values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, *values]).encode()).decode().rstrip("=")


@pytest.fixture
async def client(fresh_db):
    await load(fresh_db, CORPUS)
    app = create_app(settings(api_key=KEY), database_url=fresh_db, embedder=HashEmbedder())
    async with AsyncTestClient(app) as c:
        yield c


async def graphql(client, query: str, variables: dict | None = None) -> dict:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    "cursor",
    [
        forged("papers:recent", "2024-03-11", 2**70),  # a key past bigint
        forged("papers:recent", "99999-01-01", 1),  # a date no calendar has
        forged("papers:recent", "2024-03-11"),  # wrong arity
        forged("papers:recent", "2024-03-11", 1, 2),
        forged("papers:first_seen", "2024-03-11T09:30:00", 1),  # no time zone
        forged("papers:recent", "2024-03-11", True),
        "x" * 5000,
    ],
)
async def test_forged_paper_cursors_are_400(client, cursor):
    body = assert_problem(await client.get("/v1/papers", params={"cursor": cursor}), 400)
    assert "cursor" in body["detail"]
    sort = (
        "FIRST_SEEN" if "first_seen" in base64.urlsafe_b64decode(cursor + "==").decode(errors="replace") else "RECENT"
    )
    query = "query($c: String, $s: PaperSort!) { papers(after: $c, sort: $s) { edges { cursor } } }"
    errors = (await graphql(client, query, {"c": cursor, "s": sort}))["errors"]
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("cursor", [forged(f"entries:{EXAMPLE_LISTING}", -1), forged("entries:x", 2**40)])
async def test_forged_entry_cursors_are_400(client, cursor):
    listing_id = (await client.get("/v1/listings")).json()["items"][0]["id"]
    assert_problem(await client.get(f"/v1/listings/{listing_id}", params={"cursor": cursor}), 400)


async def test_each_endpoints_example_cursor_is_one_it_accepts(client):
    assert (await client.get("/v1/papers", params={"cursor": PAPERS_CURSOR})).status_code == 200
    assert (await client.get("/v1/listings", params={"cursor": LISTINGS_CURSOR})).status_code == 200
    assert rank_of(EXAMPLE_LISTING, ENTRIES_CURSOR) == 50  # the example listing is not in this database
    search = {"q": "shorter chain of thought reasoning", "cursor": SEARCH_CURSOR}
    assert (await client.get("/v1/search", params=search)).status_code == 200


@pytest.mark.parametrize("value", ["maybe", "1", "0", "TRUE", "yes", ""])
async def test_boolean_filters_take_only_true_or_false(client, value):
    body = assert_problem(await client.get("/v1/papers", params={"arxiv": value}), 400)
    assert "`arxiv` must be true or false" in body["detail"]
    assert (await client.get("/v1/papers", params={"arxiv": "true"})).status_code == 200


async def test_every_boolean_query_parameter_is_strict(client):
    """The guard sits on each route that takes a boolean; the OpenAPI document says which those are."""
    spec = (await client.get("/schema/openapi.json")).json()
    checked = []
    for url, operations in spec["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            schema = parameter["schema"]
            kinds = [schema.get("type")] + [alt.get("type") for alt in schema.get("oneOf", [])]
            types = {t for kind in kinds for t in (kind if isinstance(kind, list) else [kind])}
            if parameter["in"] == "query" and "boolean" in types:
                params = {parameter["name"]: "1", **({"q": "reasoning"} if url == "/v1/search" else {})}
                response = await client.get(url.replace("{paper_id}", "x"), params=params)
                assert "must be true or false" in assert_problem(response, 400)["detail"]
                checked.append(f"{url}?{parameter['name']}")
    assert sorted(checked) == [
        "/v1/export?arxiv",
        "/v1/listings?count",
        "/v1/papers?arxiv",
        "/v1/papers?count",
        "/v1/search?arxiv",
        "/v1/search?count",
    ]


DEEP = b"[" * 3000 + b"]" * 3000


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/papers/batch", b'{"ids": ' + DEEP + b"}"),
        ("/v1/recommendations", b'{"positive": ' + DEEP + b"}"),
        ("/graphql", b'{"query": "{ stats { papers } }", "variables": {"a": ' + DEEP + b"}}"),
        ("/v1/listings", DEEP),
    ],
)
async def test_json_nested_thousands_deep_is_400(client, path, body):
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    assert "deep" in assert_problem(await client.post(path, content=body, headers=headers), 400)["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [("/graphql", b'{"query": "\xff"}'), ("/v1/papers/batch", b'{"ids": ["\xff"]}'), ("/graphql", b"\xff\xfe{")],
)
async def test_bodies_that_are_not_utf8_are_400(client, path, body):
    assert_problem(await client.post(path, content=body, headers={"content-type": "application/json"}), 400)


async def test_a_document_repeating_one_field_hundreds_of_times_is_refused_before_validation(client, monkeypatch):
    validated: list[int] = []
    real = executor.validate_document

    def counting(*args):
        validated.append(1)
        return real(*args)

    monkeypatch.setattr(executor, "validate_document", counting)
    repeated = "{ stats { " + " ".join(["papers"] * 250) + " } }"
    many = "{ stats { " + " ".join(f"a{i}: papers" for i in range(cost.MAX_FIELDS + 1)) + " } }"
    for query, limit in [(repeated, f"at most {cost.MAX_REPEATS}"), (many, f"at most {cost.MAX_FIELDS}")]:
        for _ in range(2):
            [error] = (await graphql(client, query))["errors"]
            assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
            assert limit in error["message"]
    assert not validated  # refused on size alone: validating it compared its selections pair by pair


async def test_an_operation_that_could_return_too_much_is_refused_with_its_cost(client):
    entries = "entries(first: 100) { edges { node { rank } } }"
    query = "{ papers(first: 100) { edges { node { listings { listing { " + entries + " } } } } } }"
    [error] = (await graphql(client, query))["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert "objects" in error["message"]
    assert f"at most {cost.MAX_OBJECTS:,}" in error["message"]


async def test_a_cost_a_variable_changes_is_estimated_on_every_request(client):
    """A document's cost is kept only when no variable can change it."""
    entries = "entries(first: 100) { edges { node { rank } } }"
    query = "query($n: Int!) { papers(first: $n) { edges { node { listings { listing { " + entries + " } } } } } }"
    for n, refused in [(1, False), (100, True), (1, False), (100, True)]:
        body = await graphql(client, query, {"n": n})
        codes = [e["extensions"]["code"] for e in body.get("errors", [])]
        assert codes == (["QUERY_TOO_COSTLY"] if refused else []), (n, body)


async def test_model_calls_per_request_are_bounded(client):
    aliases = " ".join(f'r{i}: search(q: "topic {i}", first: 1) {{ edges {{ node {{ id }} }} }}' for i in range(11))
    [error] = (await graphql(client, "{ " + aliases + " }"))["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert f"at most {cost.MAX_MODEL_CALLS}" in error["message"]


async def test_documents_are_kept_within_a_byte_budget(client):
    schema = client.app.state.graphql_schema
    filler = "x" * (MAX_CACHED_DOCUMENT - 200)
    for i in range(3 * MAX_BYTES // MAX_CACHED_DOCUMENT):
        await graphql(client, f"# {filler} {i}\n{{ stats {{ papers }} }}")
    assert schema.documents._bytes <= MAX_BYTES
    assert len(schema.documents) <= MAX_BYTES // (MAX_CACHED_DOCUMENT - 200) + 1


async def test_client_errors_are_logged_at_info_without_a_traceback(client, caplog):
    with caplog.at_level(logging.INFO, logger="papers"):
        await graphql(client, '{ papers(first: 2, after: "bogus") { edges { cursor } } }')
        await graphql(client, "{ nope }")
    graphql_records = [r for r in caplog.records if r.name == "papers.graphql"]
    assert graphql_records
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in graphql_records)
