"""The standard Relay pagination queries, forward and backward, through every connection and both executors.

Each request is answered by the compiled path and by Strawberry's executor (the `clients` fixture); both answers
must be the same bytes, and the compiled path must have answered every page of papers, listings and entries.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from schema.api import PaperFilter
from schema.paging import PageRequest
from sql import queries
from tests.integration.test_graphql_compiled import _both, clients  # noqa: F401 - the fixture, used by name

PAGE = "totalCount edges {{ cursor node {{ {} }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}"
ARGS = "$first: Int, $after: String, $last: Int, $before: String"
PAGING = "first: $first, after: $after, last: $last, before: $before"


def _query(template: str, node: str) -> str:
    return template.replace("ARGS", ARGS).replace("PAGING", PAGING).replace("PAGE", PAGE.format(node))


# Every connection: (name, query, path to the connection, node's key field, compiled?)
CONNECTIONS = [
    ("papers", _query("query(ARGS) { papers(PAGING, sort: TITLE) { PAGE } }", "id"), ["papers"], "id", True),
    ("listings", _query("query(ARGS) { listings(PAGING) { PAGE } }", "id"), ["listings"], "id", True),
    (
        "entries",
        _query('query(ARGS) { listing(id: "{b}") { entries(PAGING) { PAGE } } }', "rank"),
        ["listing", "entries"],
        "rank",
        True,
    ),
    (
        "search",
        _query('query(ARGS) { search(q: "paper", mode: KEYWORD, PAGING) { PAGE } }', "id"),
        ["search"],
        "id",
        False,
    ),
]
TOTALS = {"papers": 65, "listings": 3, "entries": 35, "search": 65}


async def _page(clients, query, path, compiled, **variables):  # noqa: F811 - the fixture, passed on
    ours, theirs, answered = await _both(clients, query, variables)
    assert ours.content == theirs.content
    assert answered == compiled
    body = ours.json()
    assert "errors" not in body, body
    connection = body["data"]
    for key in path:
        connection = connection[key]
    edges, info = connection["edges"], connection["pageInfo"]
    assert all(isinstance(e["cursor"], str) and e["cursor"] for e in edges)  # a cursor on every edge
    assert (info["startCursor"], info["endCursor"]) == (
        (edges[0]["cursor"], edges[-1]["cursor"]) if edges else (None, None)
    )
    return connection


@pytest.mark.parametrize(("name", "query", "path", "key", "compiled"), CONNECTIONS, ids=[c[0] for c in CONNECTIONS])
async def test_relay_pages_forward_and_backward(clients, name, query, path, key, compiled):  # noqa: F811
    size = 2 if name == "listings" else 7
    forward, after, pages = [], None, 0
    while True:
        page = await _page(clients, query, path, compiled, first=size, after=after)
        assert page["totalCount"] == TOTALS[name]
        assert page["pageInfo"]["hasPreviousPage"] == (pages > 0)
        forward += [(e["node"][key], e["cursor"]) for e in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    nodes = [node for node, _ in forward]
    assert len(nodes) == len(set(nodes)) == TOTALS[name]

    backward: list[tuple[object, str]] = []
    before, pages = None, 0
    while True:
        page = await _page(clients, query, path, compiled, last=size, before=before)
        assert page["totalCount"] == TOTALS[name]
        assert page["pageInfo"]["hasNextPage"] == (pages > 0)
        backward = [(e["node"][key], e["cursor"]) for e in page["edges"]] + backward
        pages += 1
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert backward == forward  # the same rows, in the same order, with the same cursors

    # From any edge's cursor, either way, and between two cursors.
    a, b = (0, 2) if name == "listings" else (2, 5)
    (_, at_a), (_, at_b) = forward[a], forward[b]
    after_a = await _page(clients, query, path, compiled, first=2, after=at_a)
    assert [e["node"][key] for e in after_a["edges"]] == nodes[a + 1 : a + 3]
    info = after_a["pageInfo"]
    assert (info["hasPreviousPage"], info["hasNextPage"]) == (True, len(nodes) > a + 3)
    before_b = await _page(clients, query, path, compiled, last=2, before=at_b)
    assert [e["node"][key] for e in before_b["edges"]] == nodes[b - 2 : b]
    info = before_b["pageInfo"]
    assert (info["hasPreviousPage"], info["hasNextPage"]) == (b > 2, True)
    between = await _page(clients, query, path, compiled, first=10, after=at_a, before=at_b)
    assert [e["node"][key] for e in between["edges"]] == nodes[a + 1 : b]
    assert between["pageInfo"]["hasNextPage"] is False


async def test_first_and_last_together_are_refused_by_both_executors(clients):  # noqa: F811
    ours, theirs, answered = await _both(clients, "{ papers(first: 2, last: 2) { edges { cursor } } }", None)
    assert not answered
    assert ours.content == theirs.content
    [error] = ours.json()["errors"]
    assert (error["message"], error["extensions"]["code"]) == ("give `first` or `last`, not both", "BAD_USER_INPUT")


async def test_has_previous_page_reads_a_few_index_pages_under_a_generic_plan(conn):
    # A page after a cursor asks whether rows lie at or before it. As an EXISTS, PostgreSQL's generic plan (taken
    # after five calls) scanned the table from the far end: 45 ms per page at 100,000 papers, growing with them.
    await conn.execute(
        """INSERT INTO papers (public_id, fingerprint, title, abstract, last_listed)
           SELECT 'pap_t' || g, 'fp' || g, 'Paper ' || g, 'An abstract.', date '2024-01-01' + g / 100
           FROM generate_series(1, 20000) g"""
    )
    await conn.execute("ANALYZE papers")
    first = await queries.papers_page(conn, PaperFilter(), PageRequest(20))
    statements: list[tuple[str, tuple]] = []
    conn.add_query_logger(lambda record: statements.append((record.query, record.args)))
    page = await queries.papers_page(conn, PaperFilter(), PageRequest(20, after=first.cursors[-1]))
    assert page.has_previous
    await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not at once
    [(probe, args)] = [(q, a) for q, a in statements if "LIMIT 21" not in q]  # not the page itself
    await conn.execute(f"PREPARE probe AS {probe}")  # its generic plan, as the session caches it
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    last_listed, key = args
    explain = f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE probe('{last_listed.isoformat()}', {int(key)})"
    plan = "\n".join(r[0] for r in await conn.fetch(explain))
    hits = re.search(r"Buffers: shared hit=(\d+)", plan)
    assert hits, plan
    assert int(hits.group(1)) < 20, plan
