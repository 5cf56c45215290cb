"""Catalog reads: papers, listings, entries and totals, as the contracts of schema/api.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg

from schema.api import (
    Listing,
    ListingEntry,
    ListingRef,
    Paper,
    PaperDetail,
    PaperFilter,
    PaperSort,
    Stats,
    TitleMatch,
)
from schema.errors import InvalidCursorError
from sql import cursor
from sql.fragments import (
    LISTING_COLUMNS,
    LISTING_SORT,
    PAPER_COLUMNS,
    PAPER_SORTS,
    Where,
    add_keyset,
    id_match,
    in_asked_order,
    keyset_values,
    order_by,
    paper_by_public_or_arxiv,
    paper_filters,
)

# The order of a paper's listings, and of a listing's entries.
LISTINGS_OF_PAPER_ORDER = "l.listed_on DESC NULLS LAST, l.listing_key DESC, e.rank"


def paper_of(row: asyncpg.Record) -> Paper:
    """A paper contract from a row with the paper columns."""
    return Paper(**{k: row[k] for k in Paper.__struct_fields__})


def _listing(row: asyncpg.Record) -> Listing:
    return Listing(**{k: row[k] for k in Listing.__struct_fields__})


async def papers_page(
    conn: asyncpg.Connection,
    flt: PaperFilter,
    *,
    sort: PaperSort = "recent",
    after: str | None = None,
    limit: int = 20,
) -> tuple[list[Paper], str | None]:
    """One page of papers matching the filter, in keyset order, with the cursor of the next page."""
    order, kind = PAPER_SORTS[sort], f"papers:{sort}"
    where = Where()
    paper_filters(where, flt)
    if after:
        add_keyset(where, order, after, kind)
    rows = await conn.fetch(
        f"""SELECT {PAPER_COLUMNS}, {order.value} AS sort_key, p.paper_key FROM papers p WHERE {where.sql()}
            ORDER BY {order_by(order)} LIMIT {limit + 1}""",
        *where.params,
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = cursor.encode(kind, keyset_values(order, last["sort_key"], last["paper_key"]))
    return [paper_of(r) for r in rows[:limit]], next_cursor


async def count_papers(conn: asyncpg.Connection, flt: PaperFilter) -> int:
    """How many papers match the filter."""
    where = Where()
    paper_filters(where, flt)
    return int(await conn.fetchval(f"SELECT count(*) FROM papers p WHERE {where.sql()}", *where.params))


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


async def listings_page(
    conn: asyncpg.Connection, *, after: str | None = None, limit: int = 20
) -> tuple[list[Listing], str | None]:
    """One page of listings, newest date first."""
    where = Where()
    if after:
        add_keyset(where, LISTING_SORT, after, "listings")
    rows = await conn.fetch(
        f"""SELECT {LISTING_COLUMNS}, l.listing_key FROM listings l WHERE {where.sql()}
            ORDER BY {order_by(LISTING_SORT)} LIMIT {limit + 1}""",
        *where.params,
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = cursor.encode("listings", keyset_values(LISTING_SORT, last["date"], last["listing_key"]))
    return [_listing(r) for r in rows[:limit]], next_cursor


async def listings_by_ids(conn: asyncpg.Connection, ids: Sequence[str]) -> list[Listing | None]:
    """Listings by public id, in the order asked."""
    where = Where()
    condition = id_match(where, "l.public_id", ids)
    rows = await conn.fetch(f"SELECT {LISTING_COLUMNS} FROM listings l WHERE {condition}", *where.params)
    found = {r["id"]: _listing(r) for r in rows}
    return [found.get(i) for i in ids]


class EntriesRequest(NamedTuple):
    """One page of one listing's entries: after this cursor, at most limit."""

    listing_id: str
    after: str | None
    limit: int


MAX_RANK = 2**31 - 1


def entries_kind(listing_id: str) -> str:
    """The cursor kind of a listing's entries."""
    return f"entries:{listing_id}"


def after_rank(listing_id: str, after: str | None) -> int:
    """The rank an entries cursor of this listing points after (0 for none); InvalidCursorError otherwise."""
    if not after:
        return 0
    values = cursor.decode(after, entries_kind(listing_id))
    if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool):
        raise InvalidCursorError("cursor is malformed")
    if not 0 <= values[0] <= MAX_RANK:
        raise InvalidCursorError("cursor is malformed")
    return values[0]


async def entries_pages(
    conn: asyncpg.Connection, requests: Sequence[EntriesRequest]
) -> list[tuple[list[ListingEntry], str | None]]:
    """Pages of entries of several listings in rank order, in one statement (raises InvalidCursorError)."""
    ranks = [after_rank(r.listing_id, r.after) for r in requests]
    params: list[Any] = [[r.listing_id for r in requests], ranks, [r.limit for r in requests]]
    source = "unnest($1::text[], $2::int[], $3::int[]) WITH ORDINALITY"
    if len(requests) == 1:  # scalar parameters: one cached generic plan (see fragments.id_match)
        source, params = "(VALUES ($1::text, $2::int, $3::int, 1::bigint))", [p[0] for p in params]
    rows = await conn.fetch(
        f"""SELECT r.i, e.rank, e.title_variant, e.abstract_variant, {PAPER_COLUMNS}
            FROM {source} AS r(listing_id, after_rank, lim, i)
            JOIN listings l ON l.public_id = r.listing_id
            CROSS JOIN LATERAL (
                SELECT * FROM listing_entries e WHERE e.listing_key = l.listing_key AND e.rank > r.after_rank
                ORDER BY e.rank LIMIT r.lim + 1
            ) e
            JOIN papers p ON p.paper_key = e.paper_key
            ORDER BY r.i, e.rank""",
        *params,
    )
    grouped: dict[int, list[asyncpg.Record]] = {}
    for row in rows:
        grouped.setdefault(row["i"], []).append(row)
    pages = []
    for i, request in enumerate(requests, start=1):
        found = grouped.get(i, [])
        entries = [ListingEntry(r["rank"], paper_of(r), r["title_variant"], r["abstract_variant"]) for r in found]
        more = len(found) > request.limit
        last = found[request.limit - 1]["rank"] if more else None
        pages.append(
            (entries[: request.limit], cursor.encode(entries_kind(request.listing_id), [last]) if more else None)
        )
    return pages


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
