"""Compiled GraphQL reads answer exactly what Strawberry's executor answers, and leave it everything else."""

from __future__ import annotations

import json

import pytest
import strawberry
from graphql import ExecutionResult, GraphQLSchema
from litestar.testing import AsyncTestClient
from strawberry.extensions import SchemaExtension

from api.app import create_app
from api.graphql.pipeline import Pipeline
from api.graphql.schema import make_schema
from api.graphql.schema import schema as papers_schema
from api.services import catalog
from schema import limits
from tests.apps import settings
from tests.integration.test_graphql import ARXIV, KEY, load

# Each runs on the compiled path: (query, variables); {a}/{b}/{c} are the listings' public ids.
COMPILED = [
    ('{ paper(id: "%s") { id title arxivId firstSeen lastSeen firstListed lastListed } }' % ARXIV.format(61), None),
    ("query($id: String!) { paper(id: $id) { title listings { id dateLabel date rank } } }", {"id": ARXIV.format(62)}),
    ('{ paper(id: "nope") { id listings { id } } }', None),
    ('{ a: paper(id: "%s") { __typename t: title } b: paper(id: "nope") { id } }' % ARXIV.format(63), None),
    (
        "query($n: Int!) { papers(first: $n) { edges { cursor node { id listings { id rank listing { id date"
        " entryCount kind source heading dateLabel rejectCount ingestedAt } } } }"
        " pageInfo { hasNextPage endCursor } } }",
        {"n": 7},
    ),
    (
        "query($f: PaperFilterInput, $s: PaperSort!) { papers(filter: $f, sort: $s, first: 5) { totalCount"
        " edges { node { id title } } pageInfo { endCursor } } }",
        {"f": {"listedFrom": "2024-03-12", "arxiv": False}, "s": "TITLE"},
    ),
    (
        '{ papers(filter: {q: "paper", listing: "{b}"}, sort: FIRST_SEEN, first: 3)'
        " { totalCount edges { node { id } } } }",
        None,
    ),
    (
        "fragment P on Paper { id title ...L } fragment L on Paper { listings { ... on ListingRef { id rank } } }"
        " query Q { papers(first: 4) { edges { node { ...P } } } }",
        None,
    ),
    (
        '{ listing(id: "{b}") { id source kind date dateLabel entryCount rejectCount'
        " entries(first: 4) { edges { cursor node { rank titleAsPrinted abstractAsPrinted"
        " paper { id listings { id } } } }"
        " pageInfo { hasNextPage endCursor } } } }",
        None,
    ),
    (
        '{ listing(id: "nope") { id }'
        " listings(first: 2) { edges { node { id entries(first: 2) { edges { node { rank } } } } }"
        " pageInfo { hasNextPage endCursor } }"
        " stats { papers listings entries rejects embedded jobsQueued jobsFailed } }",
        None,
    ),
    ("query One($id: String!) { paper(id: $id) { id } } query Two { stats { papers } }", {"id": ARXIV.format(65)}),
    # the same response key twice merges; fragments on the interface; the root __typename
    (
        '{ __typename paper(id: "%s") { listings { id } listings { rank } ... on PaperFields { title } } }'
        % ARXIV.format(66),
        None,
    ),
    # a total alone: no aggregate folds the page's rows into the one the connection is
    ("{ listings(first: 2) { totalCount } papers(first: 3) { totalCountExact } }", None),
    # a page of a listing's entries after a cursor of that listing
    (
        '{ listing(id: "{b}") { entries(first: 3, after: "%s") { edges { node { rank } } pageInfo { hasNextPage } } } }'
        % "WyJlbnRyaWVzOntifSIsIDJd",
        None,
    ),
]

# Each goes to Strawberry: errors, writes, fields compiled reads do not run, what only the executor does.
HANDED_OVER = [
    ("{ papers(first: 0) { edges { node { id } } } }", None),
    ('{ papers(first: 2, after: "bogus") { edges { node { id } } } }', None),
    ('{ listing(id: "{a}") { entries(first: 2, after: "bogus") { edges { node { rank } } } } }', None),
    ("query($id: String!) { paper(id: $id) { id } }", {"id": 5}),
    ("query($id: String!) { paper(id: $id) { id } }", None),
    ('{ paper(id: "x") { id @include(if: false) title } }', None),
    ('{ paper(id: "x") { id id: title } }', None),
    ("{ __schema { queryType { name } } }", None),
    ('{ paper(id: "x") { nope } }', None),
    ("{ paper(id: ", None),
    ('mutation { submitListing(text: "x") { jobId } }', None),
    ('{ search(q: "paper", mode: KEYWORD) { edges { node { id } } } }', None),
    ('{ paper(id: "%s") { title similar(first: 2) { id } } }' % ARXIV.format(61), None),
    (
        "{ listings(first: 2) { edges { node {"
        ' entries(first: 1, after: "WyJlbnRyaWVzOngiLCAxXQ") { edges { cursor } } } } } }',
        None,
    ),
]


@pytest.fixture
async def clients(fresh_db, monkeypatch):
    """A compiled-reads app, a Strawberry-only app over the same data, and whether the compiled path answered."""
    listings = await load(fresh_db)
    answered: list[bool] = []
    read = catalog.read_graph

    async def recording(conn, statement):
        answered[-1] = True
        return await read(conn, statement)

    monkeypatch.setattr(catalog, "read_graph", recording)
    on = create_app(settings(api_key=KEY, graphql_compiled=True), database_url=fresh_db)
    off = create_app(settings(api_key=KEY, graphql_compiled=False), database_url=fresh_db)
    async with AsyncTestClient(app=on) as compiled, AsyncTestClient(app=off) as strawberry:
        yield compiled, strawberry, listings, answered


def _body(query: str, variables: dict | None, listings: dict[str, str], operation: str | None = None) -> dict:
    for name, public_id in listings.items():
        query = query.replace("{%s}" % name, public_id)
        # a cursor of listing b's entries after rank 2, written with its placeholder
        query = query.replace("WyJlbnRyaWVzOntifSIsIDJd", _cursor(f"entries:{public_id}", 2) if name == "b" else "")
    body = {"query": query, "variables": variables}
    return {**body, "operationName": operation} if operation else body


def _cursor(kind: str, rank: int) -> str:
    from sql import cursor

    return cursor.encode(kind, [rank])


async def _both(clients, query, variables, operation=None):
    """Both apps' answers; the compiled app is asked twice, the second time with the document known."""
    compiled, strawberry, listings, answered = clients
    body = _body(query, variables, listings, operation)
    answers = []
    for _ in range(2):
        answered.append(False)
        response = await compiled.post("/graphql", json=body)
        answers.append((response, answered.pop()))
    (ours, first), (again, second) = answers
    assert (again.status_code, again.content, second) == (ours.status_code, ours.content, first)
    theirs = await strawberry.post("/graphql", json=body)
    return ours, theirs, first


@pytest.mark.parametrize(("query", "variables"), COMPILED)
async def test_compiled_reads_answer_byte_for_byte_like_strawberry(clients, query, variables):
    operation = "One" if "query One" in query else None
    ours, theirs, compiled = await _both(clients, query, variables, operation)
    assert compiled, "the compiled path did not answer"
    assert ours.status_code == theirs.status_code == 200
    assert ours.headers["content-type"] == theirs.headers["content-type"]
    assert ours.content == theirs.content
    assert "errors" not in json.loads(ours.content)


async def test_a_failing_compiled_read_is_reported_as_the_executor_reports_it(clients):
    ours, theirs, compiled = await _both(clients, '{ paper(id: "a\\u0000b") { id } }', None)
    assert compiled  # it ran once, compiled, and failed: a client error, not a retry
    assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content)
    assert ours.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_without_an_operation_name_both_run_the_first_operation(clients):
    # Strawberry's choice (the GraphQL spec would refuse the document): the compiled path makes the same one.
    ours, theirs, compiled = await _both(
        clients, "query One { stats { papers } } query Two { stats { listings } }", None
    )
    assert compiled
    assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content)
    assert ours.json() == {"data": {"stats": {"papers": 65}}}


@pytest.mark.parametrize(("query", "variables"), HANDED_OVER)
async def test_everything_else_is_strawberrys_answer(clients, query, variables):
    ours, theirs, compiled = await _both(clients, query, variables)
    assert not compiled
    assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content)


async def test_pages_walked_through_compiled_reads_match(clients):
    query = (
        "query($after: String) { papers(first: 6, after: $after)"
        " { edges { node { id } } pageInfo { hasNextPage endCursor } } }"
    )
    after, seen = None, []
    while True:
        ours, theirs, compiled = await _both(clients, query, {"after": after})
        assert compiled
        assert ours.content == theirs.content
        page = ours.json()["data"]["papers"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 65


ONE_STATEMENT = [
    '{ paper(id: "%s") { title listings { id date rank } } }' % ARXIV.format(64),
    "{ papers(first: 20) { totalCount edges { cursor node { id title } }"
    " pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
    "{ papers(last: 5, sort: TITLE) { edges { cursor node { id } } pageInfo { hasPreviousPage startCursor } } }",
    '{ listing(id: "{b}") { id entries(first: 10) { totalCount edges { cursor node { rank paper { title } } }'
    " pageInfo { hasNextPage endCursor } } } }",
]


@pytest.mark.parametrize("document", ONE_STATEMENT)
async def test_a_read_is_one_statement(fresh_db, monkeypatch, document):
    from sql import db

    listings = await load(fresh_db)
    statements: list[str] = []
    init = db.init_connection

    async def logging_init(conn) -> None:
        await init(conn)
        conn.add_query_logger(lambda record: statements.append(record.query))

    monkeypatch.setattr(db, "init_connection", logging_init)
    query = {"query": document.replace("{b}", listings["b"])}
    async with AsyncTestClient(app=create_app(settings(), database_url=fresh_db)) as client:
        await client.post("/graphql", json=query)  # warm up: asyncpg introspects types once per connection
        statements.clear()
        response = await client.post("/graphql", json=query)
    data = response.json()["data"]
    assert all(value for value in data.values()), data
    assert len(statements) == 1, statements


async def test_a_known_read_skips_strawberrys_per_request_machinery(clients, monkeypatch):
    compiled, _, _, answered = clients
    schema = compiled.app.state.graphql_schema
    executed: list[int] = []
    real = schema.execute

    async def counting(*args, **kwargs):
        executed.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(schema, "execute", counting)
    body = {"query": "query($id: String!) { paper(id: $id) { title } }", "variables": {"id": "pap_nope"}}
    for _ in range(3):
        answered.append(False)
        assert (await compiled.post("/graphql", json=body)).json() == {"data": {"paper": None}}
        assert answered.pop()
    assert len(executed) == 1  # the first time only: then the document was known, valid and compiled


def test_the_known_read_lane_repeats_the_schemas_only_extension():
    """answer_known runs Pipeline's steps itself: a second extension would be skipped for known reads."""
    extensions = make_schema().extensions
    assert len(extensions) == 1
    assert isinstance(extensions[0](), Pipeline)


def test_strawberry_keeps_the_graphql_core_schema_it_validates_with():
    """Pins `schema._schema`: the compiled path plans against the schema Strawberry validated the document with."""
    core = papers_schema._schema
    assert isinstance(core, GraphQLSchema)
    assert core.query_type is not None
    assert set(core.query_type.fields) >= {"paper", "papers", "listing", "listings", "stats"}
    assert core.get_type("PaperFilterInput") is not None


async def test_a_result_set_in_on_execute_replaces_execution():
    """Pins the documented caching hook the compiled path is built on: the resolver never runs."""
    ran = []

    @strawberry.type
    class Query:
        @strawberry.field
        def value(self) -> int:
            ran.append(True)
            return 1

    class Answer(SchemaExtension):
        def on_execute(self):
            self.execution_context.result = ExecutionResult(data={"value": 2})
            yield

    result = await strawberry.Schema(query=Query, extensions=[Answer]).execute("{ value }")
    assert result.data == {"value": 2}
    assert not ran


async def test_totals_past_the_count_cap_say_at_least_in_both_paths(clients, monkeypatch):
    monkeypatch.setattr(limits, "MAX_COUNTED", 10)  # 65 papers, 3 listings, listing b of 35 entries
    query = (
        "{ papers(first: 2) { totalCount totalCountExact } listings(first: 1) { totalCount totalCountExact }"
        ' listing(id: "{b}") { entryCount entries(first: 1) { totalCount totalCountExact } } }'
    )
    ours, theirs, compiled = await _both(clients, query, None)
    assert compiled
    assert ours.content == theirs.content
    assert ours.json()["data"] == {
        "papers": {"totalCount": 10, "totalCountExact": False},
        "listings": {"totalCount": 3, "totalCountExact": True},
        "listing": {"entryCount": 35, "entries": {"totalCount": 10, "totalCountExact": False}},
    }
