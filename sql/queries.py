"""Catalog reads: papers, listings, entries and totals, as the contracts of schema/api.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import asyncpg

from schema.api import (
    Listing,
    ListingEntry,
    ListingRef,
    Paper,
    PaperDetail,
    PaperFilter,
    Stats,
    TitleMatch,
)
from schema.errors import InvalidCursorError
from schema.paging import Page, PageRequest, Total, flags
from sql import cursor
from sql.fragments import (
    LISTING_COLUMNS,
    LISTING_SORT,
    PAPER_COLUMNS,
    Sort,
    Where,
    add_keyset,
    capped_count,
    id_match,
    in_asked_order,
    keyset_values,
    order_by,
    page_bounds,
    paper_by_public_or_arxiv,
    paper_filters,
    paper_sort,
    rows_beyond,
)

# The order of a paper's listings, and of a listing's entries.
LISTINGS_OF_PAPER_ORDER = "l.listed_on DESC NULLS LAST, l.listing_key DESC, e.rank"


def paper_of(row: asyncpg.Record) -> Paper:
    """A paper contract from a row with the paper columns."""
    return Paper(**{k: row[k] for k in Paper.__struct_fields__})


def _listing(row: asyncpg.Record) -> Listing:
    return Listing(**{k: row[k] for k in Listing.__struct_fields__})


async def _keyset_page(
    conn: asyncpg.Connection,
    source: str,
    columns: str,
    filters: Callable[[Where], None],
    sort: Sort,
    kind: str,
    request: PageRequest,
    build: Callable[[asyncpg.Record], Any],
) -> Page[Any]:
    """One page of `source` (a table and its alias; `columns` selected) in a keyset order, read forward or
    backward, every row with its cursor; whether rows lie past the cursor the page starts from is one index
    probe, made only then."""
    where = Where()
    filters(where)
    page_bounds(where, sort, request, kind)
    rows = await conn.fetch(
        f"""SELECT {columns}, {sort.value} AS sort_key, {sort.keys[1]} AS row_key FROM {source} WHERE {where.sql()}
            ORDER BY {order_by(sort, reverse=request.backward)} LIMIT {request.size + 1}""",
        *where.params,
    )
    more = len(rows) > request.size
    rows = rows[: request.size]
    if request.backward:
        rows.reverse()
    beyond = False
    far = request.far_side()
    if far is not None:
        other = Where()
        filters(other)
        add_keyset(other, sort, far[0], kind, far[1])
        beyond = await conn.fetchval(f"SELECT {rows_beyond(source, other, sort, far[1])}", *other.params)
    has_next, has_previous = flags(request, more, beyond)
    cursors = cursor.Cursors(kind, [keyset_values(sort, r["sort_key"], r["row_key"]) for r in rows])
    return Page([build(r) for r in rows], cursors, has_next, has_previous)


async def papers_page(
    conn: asyncpg.Connection, flt: PaperFilter, request: PageRequest, *, sort: str = "recent"
) -> Page[Paper]:
    """One page of papers matching the filter, in the keyset order of `sort` (`-name` reverses it)."""
    return await _keyset_page(
        conn,
        "papers p",
        PAPER_COLUMNS,
        lambda where: paper_filters(where, flt),
        paper_sort(sort),
        f"papers:{sort}",
        request,
        paper_of,
    )


async def count_papers(conn: asyncpg.Connection, flt: PaperFilter) -> Total:
    """How many papers match the filter (up to MAX_COUNTED)."""
    where = Where()
    paper_filters(where, flt)
    return Total.of(await conn.fetchval(f"SELECT {capped_count(f'FROM papers p WHERE {where.sql()}')}", *where.params))


async def papers_by_ids(conn: asyncpg.Connection, ids: Sequence[str]) -> list[Paper | None]:
    """Papers by public id or arXiv id, in the order asked, None for unknown ids."""
    where = Where()
    arxiv = paper_by_public_or_arxiv(where, ids)
    rows = await conn.fetch(f"SELECT {PAPER_COLUMNS} FROM papers p WHERE {where.sql()}", *where.params)
    return in_asked_order(rows, ids, arxiv, paper_of)


# A paper with its listings (newest first) as one row.
_PAPER_DETAIL = f"""SELECT {PAPER_COLUMNS},
           ARRAY(SELECT row(l.public_id, l.date_label, l.listed_on, e.rank)
                 FROM listing_entries e JOIN listings l USING (listing_key) WHERE e.paper_key = p.paper_key
                 ORDER BY {LISTINGS_OF_PAPER_ORDER}) AS listings
    FROM papers p WHERE """


async def paper_detail(conn: asyncpg.Connection, paper_id: str) -> PaperDetail | None:
    """One paper by public or arXiv id with its listings, in one statement; None when unknown."""
    where = Where()
    arxiv = paper_by_public_or_arxiv(where, [paper_id])
    rows = await conn.fetch(_PAPER_DETAIL + where.sql(), *where.params)

    def build(r: asyncpg.Record) -> PaperDetail:
        refs = [ListingRef(*x) for x in r["listings"]]
        return PaperDetail(**{k: r[k] for k in Paper.__struct_fields__}, listings=refs)

    [paper] = in_asked_order(rows, [paper_id], arxiv, build)
    return paper


async def listings_of_papers(conn: asyncpg.Connection, paper_ids: Sequence[str]) -> list[list[ListingRef]]:
    """For each paper public id, the listings it appeared in (newest first), in one statement."""
    where = Where()
    condition = id_match(where, "p.public_id", paper_ids)
    rows = await conn.fetch(
        f"""SELECT p.public_id AS paper, l.public_id AS id, l.date_label, l.listed_on AS date, e.rank
            FROM papers p JOIN listing_entries e USING (paper_key) JOIN listings l USING (listing_key)
            WHERE {condition} ORDER BY {LISTINGS_OF_PAPER_ORDER}""",
        *where.params,
    )
    found: dict[str, list[ListingRef]] = {}
    for r in rows:
        found.setdefault(r["paper"], []).append(ListingRef(r["id"], r["date_label"], r["date"], r["rank"]))
    return [found.get(i, []) for i in paper_ids]


async def match_title(conn: asyncpg.Connection, title: str, *, threshold: float = 0.5) -> TitleMatch | None:
    """The paper whose title is most similar (trigram) to `title`, if any is at least `threshold` similar."""
    row = await conn.fetchrow(
        f"""SELECT {PAPER_COLUMNS}, similarity(p.title, $1) AS score FROM papers p
            WHERE p.title % $1 ORDER BY p.title <-> $1 LIMIT 1""",
        title,
    )
    if row is None or row["score"] < threshold:
        return None
    return TitleMatch(paper_of(row), round(float(row["score"]), 4))


async def listings_page(conn: asyncpg.Connection, request: PageRequest) -> Page[Listing]:
    """One page of listings, newest date first."""
    return await _keyset_page(
        conn, "listings l", LISTING_COLUMNS, lambda where: None, LISTING_SORT, "listings", request, _listing
    )


async def count_listings(conn: asyncpg.Connection) -> Total:
    """How many listings there are (up to MAX_COUNTED)."""
    return Total.of(await conn.fetchval(f"SELECT {capped_count('FROM listings')}"))


async def listings_by_ids(conn: asyncpg.Connection, ids: Sequence[str]) -> list[Listing | None]:
    """Listings by public id, in the order asked."""
    where = Where()
    condition = id_match(where, "l.public_id", ids)
    rows = await conn.fetch(f"SELECT {LISTING_COLUMNS} FROM listings l WHERE {condition}", *where.params)
    found = {r["id"]: _listing(r) for r in rows}
    return [found.get(i) for i in ids]


class EntriesRequest(NamedTuple):
    """One page of one listing's entries."""

    listing_id: str
    page: PageRequest


MAX_RANK = 2**31 - 1


def entries_kind(listing_id: str) -> str:
    """The cursor kind of a listing's entries."""
    return f"entries:{listing_id}"


def rank_of(listing_id: str, token: str) -> int:
    """The rank an entries cursor of this listing stands for; InvalidCursorError otherwise."""
    values = cursor.decode(token, entries_kind(listing_id))
    if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool):
        raise InvalidCursorError("cursor is malformed")
    if not 0 <= values[0] <= MAX_RANK:
        raise InvalidCursorError("cursor is malformed")
    return values[0]


class RankBounds(NamedTuple):
    """A page of entries in ranks: strictly between `after` and `before`, and the far side's ranks [lo, hi]
    (an empty range when the page starts from no cursor)."""

    after: int
    before: int
    lo: int
    hi: int


def rank_bounds(listing_id: str, request: PageRequest) -> RankBounds:
    """The ranks a page request of this listing's entries covers (InvalidCursorError for a cursor not its own)."""
    after = rank_of(listing_id, request.after) if request.after else 0
    before = rank_of(listing_id, request.before) if request.before else MAX_RANK + 1
    far = request.far_side()
    if far is None:
        return RankBounds(after, before, 1, 0)
    return RankBounds(after, before, before, MAX_RANK) if far[1] == "from" else RankBounds(after, before, 1, after)


_ENTRIES = f"""SELECT r.i, o.beyond, e.rank, e.title_variant, e.abstract_variant, {PAPER_COLUMNS}
    FROM {{source}} AS r(listing_id, after_rank, before_rank, lo, hi, lim, dir, i)
    JOIN listings l ON l.public_id = r.listing_id
    CROSS JOIN LATERAL (
        SELECT EXISTS (SELECT 1 FROM listing_entries x WHERE x.listing_key = l.listing_key
                       AND x.rank BETWEEN r.lo AND r.hi) AS beyond
    ) o
    LEFT JOIN LATERAL (
        SELECT * FROM listing_entries e
        WHERE e.listing_key = l.listing_key AND e.rank > r.after_rank AND e.rank < r.before_rank
        ORDER BY {{order}} LIMIT r.lim + 1
    ) e ON true
    LEFT JOIN papers p ON p.paper_key = e.paper_key
    ORDER BY r.i, {{order}}"""


async def entries_pages(conn: asyncpg.Connection, requests: Sequence[EntriesRequest]) -> list[Page[ListingEntry]]:
    """Pages of entries of several listings in rank order, in one statement (raises InvalidCursorError)."""
    bounds = [rank_bounds(r.listing_id, r.page) for r in requests]
    columns: list[list[Any]] = [[r.listing_id for r in requests], *map(list, zip(*bounds, strict=True))]
    columns += [[r.page.size for r in requests], [-1 if r.page.backward else 1 for r in requests]]
    types = ["text", "bigint", "bigint", "bigint", "bigint", "int", "int"]
    params: list[Any] = columns
    source = f"unnest({', '.join(f'${n}::{t}[]' for n, t in enumerate(types, start=1))}) WITH ORDINALITY"
    order = "e.rank * r.dir"  # each page in its own direction
    if len(requests) == 1:  # scalar parameters: one cached generic plan (see fragments.id_match)
        params = [c[0] for c in columns]
        source = f"(VALUES ({', '.join(f'${n}::{t}' for n, t in enumerate(types, start=1))}, 1::bigint))"
        order = "e.rank DESC" if requests[0].page.backward else "e.rank"  # read in index order, no sort
    rows = await conn.fetch(_ENTRIES.format(source=source, order=order), *params)
    grouped: dict[int, list[asyncpg.Record]] = {}
    for row in rows:
        grouped.setdefault(row["i"], []).append(row)
    return [_entries_page(request, grouped.get(i, [])) for i, request in enumerate(requests, start=1)]


def _entries_page(request: EntriesRequest, rows: list[asyncpg.Record]) -> Page[ListingEntry]:
    beyond = bool(rows and rows[0]["beyond"])
    found = [r for r in rows if r["rank"] is not None]
    more = len(found) > request.page.size
    found = found[: request.page.size]
    if request.page.backward:
        found.reverse()
    has_next, has_previous = flags(request.page, more, beyond)
    kind = entries_kind(request.listing_id)
    return Page(
        [ListingEntry(r["rank"], paper_of(r), r["title_variant"], r["abstract_variant"]) for r in found],
        cursor.Cursors(kind, [[r["rank"]] for r in found]),
        has_next,
        has_previous,
    )


STATS = {
    "papers": "(SELECT count(*) FROM papers)",
    "listings": "(SELECT count(*) FROM listings)",
    "entries": "(SELECT count(*) FROM listing_entries)",
    "rejects": "(SELECT count(*) FROM ingest_rejects)",
    "embedded": "(SELECT count(*) FROM papers WHERE embedding IS NOT NULL)",
    "jobs_queued": "(SELECT count(*) FROM ingest_jobs WHERE status IN ('queued', 'running'))",
    "jobs_failed": "(SELECT count(*) FROM ingest_jobs WHERE status = 'failed')",
}


async def stats(conn: asyncpg.Connection) -> Stats:
    """Collection totals."""
    row = await conn.fetchrow("SELECT " + ", ".join(f"{sql} AS {name}" for name, sql in STATS.items()))
    assert row is not None  # a SELECT without FROM returns one row
    return Stats(**dict(row))
