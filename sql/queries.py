"""The read query layer shared by REST, GraphQL and the worker: every SELECT the API runs."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, Sequence

import asyncpg

from ingest.identity import normalize_arxiv_id
from schema.api import (
    Listing, ListingEntry, ListingRef, Paper, PaperDetail, PaperFilter, PaperSort, Stats, TitleMatch,
)  # fmt: skip
from sql import cursor

_PAPER_COLUMNS = """p.public_id AS id, p.title, p.abstract, p.arxiv_id, p.first_seen, p.last_seen,
                    p.first_listed, p.last_listed"""
_LISTING_COLUMNS = """l.public_id AS id, l.source, l.kind, l.date_label, l.listed_on AS date, l.heading,
                      l.entry_count, l.reject_count, l.ingested_at"""
# asyncpg maps date.min to and from -infinity, the sort value of papers never listed on a known day.
_NO_DATE = dt.date.min

# Each sort: the key expressions (all ascending or all descending, the last one unique) and direction.
_SORTS: dict[str, tuple[list[str], str]] = {
    "recent": (["coalesce(p.last_listed, date '-infinity')", "p.paper_key"], "DESC"),
    "title": (["p.title", "p.paper_key"], "ASC"),
    "first_seen": (["p.first_seen", "p.paper_key"], "ASC"),
}


def _paper(row: asyncpg.Record) -> Paper:
    return Paper(**{k: row[k] for k in Paper.__struct_fields__})


def _listing(row: asyncpg.Record) -> Listing:
    return Listing(**{k: row[k] for k in Listing.__struct_fields__})


class _Where:
    """Accumulates SQL conditions with numbered parameters."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []

    def add(self, template: str, *values: Any) -> None:
        numbers = [f"${len(self.params) + i + 1}" for i in range(len(values))]
        self.conditions.append(template.format(*numbers))
        self.params.extend(values)

    def sql(self) -> str:
        return " AND ".join(self.conditions) or "true"


def _paper_filters(where: _Where, flt: PaperFilter) -> None:
    if flt.q:
        where.add("p.search @@ websearch_to_tsquery('english', {})", flt.q)
    if flt.listing:
        where.add(
            "EXISTS (SELECT 1 FROM listing_entries e JOIN listings l USING (listing_key)"
            " WHERE e.paper_key = p.paper_key AND l.public_id = {})",
            flt.listing,
        )
    if flt.listed_from:
        where.add("p.last_listed >= {}", flt.listed_from)
    if flt.listed_to:
        where.add("p.first_listed <= {}", flt.listed_to)
    if flt.arxiv is not None:
        where.add("(p.arxiv_id IS NOT NULL) = {}", flt.arxiv)


def _sort_values(sort: str, row: asyncpg.Record) -> list[Any]:
    if sort == "recent":
        return [(row["last_listed"] or _NO_DATE).isoformat(), row["paper_key"]]
    if sort == "title":
        return [row["title"], row["paper_key"]]
    return [row["first_seen"].isoformat(), row["paper_key"]]


def _parse_sort_values(sort: str, values: list[Any]) -> list[Any]:
    try:
        first, key = values
        if sort == "recent":
            return [dt.date.fromisoformat(first), int(key)]
        if sort == "first_seen":
            return [dt.datetime.fromisoformat(first), int(key)]
        return [str(first), int(key)]
    except (TypeError, ValueError):
        raise cursor.InvalidCursor("cursor is malformed") from None


async def papers_page(
    conn: asyncpg.Connection, flt: PaperFilter, *, sort: PaperSort = "recent", after: str | None = None,
    limit: int = 20,
) -> tuple[list[Paper], str | None]:
    """One page of papers matching the filter, in keyset order, with the cursor of the next page."""
    keys, direction = _SORTS[sort]
    where = _Where()
    _paper_filters(where, flt)
    if after:
        values = _parse_sort_values(sort, cursor.decode(after, f"papers:{sort}"))
        op = "<" if direction == "DESC" else ">"
        where.add(f"({', '.join(keys)}) {op} ({{}}, {{}})", *values)
    order = ", ".join(f"{k} {direction}" for k in keys)
    rows = await conn.fetch(
        f"SELECT {_PAPER_COLUMNS}, p.paper_key FROM papers p WHERE {where.sql()} ORDER BY {order} LIMIT {limit + 1}",
        *where.params,
    )
    next_cursor = cursor.encode(f"papers:{sort}", _sort_values(sort, rows[limit - 1])) if len(rows) > limit else None
    return [_paper(r) for r in rows[:limit]], next_cursor


async def count_papers(conn: asyncpg.Connection, flt: PaperFilter) -> int:
    """How many papers match the filter."""
    where = _Where()
    _paper_filters(where, flt)
    return await conn.fetchval(f"SELECT count(*) FROM papers p WHERE {where.sql()}", *where.params)


def _id_match(column: str, number: int, ids: Sequence[str]) -> tuple[str, Any]:
    """`column = $n` for one id, `column = ANY($n::text[])` for several: the condition and its parameter.

    PostgreSQL keeps one generic plan for a scalar parameter, but an array parameter of unknown length
    makes it plan every call again, which costs several times the lookup itself (docs/design.md).
    """
    if len(ids) == 1:
        return f"{column} = ${number}", ids[0]
    return f"{column} = ANY(${number}::text[])", list(ids)


def _by_public_or_arxiv(ids: Sequence[str]) -> tuple[str, list[Any], list[str]]:
    """The WHERE clause matching papers by public or arXiv id, its parameters, and each id's arXiv form."""
    arxiv = [normalize_arxiv_id(i) or "" for i in ids]
    known = [a for a in arxiv if a]
    by_public, public = _id_match("p.public_id", 1, ids)
    if not known:  # a NULL parameter instead would make every plan custom again
        return by_public, [public], arxiv
    by_arxiv, arxiv_param = _id_match("p.arxiv_id", 2, known)
    return f"{by_public} OR {by_arxiv}", [public, arxiv_param], arxiv


def _in_asked_order(rows: Sequence[Any], ids: Sequence[str], arxiv: Sequence[str], build: Any) -> list[Any]:
    by_public = {r["id"]: build(r) for r in rows}
    by_arxiv = {r["arxiv_id"]: by_public[r["id"]] for r in rows if r["arxiv_id"]}
    return [by_public.get(i) or by_arxiv.get(a) for i, a in zip(ids, arxiv)]


async def papers_by_ids(conn: asyncpg.Connection, ids: Sequence[str]) -> list[Paper | None]:
    """Papers by public id or arXiv id, in the order asked, None for unknown ids."""
    where, params, arxiv = _by_public_or_arxiv(ids)
    rows = await conn.fetch(f"SELECT {_PAPER_COLUMNS} FROM papers p WHERE {where}", *params)
    return _in_asked_order(rows, ids, arxiv, _paper)


# A paper with its listings (newest first) as one row; `{where}` picks the paper (bench/api.py's pgbench
# floor runs this same statement).
PAPER_DETAIL_SQL = f"""SELECT {_PAPER_COLUMNS},
           ARRAY(SELECT row(l.public_id, l.date_label, l.listed_on, e.rank)
                 FROM listing_entries e JOIN listings l USING (listing_key) WHERE e.paper_key = p.paper_key
                 ORDER BY l.listed_on DESC NULLS LAST, l.listing_key DESC, e.rank) AS listings
    FROM papers p WHERE {{where}}"""


async def paper_detail(conn: asyncpg.Connection, paper_id: str) -> PaperDetail | None:
    """One paper by public or arXiv id with its listings, in one statement; None when unknown."""
    where, params, arxiv = _by_public_or_arxiv([paper_id])
    rows = await conn.fetch(PAPER_DETAIL_SQL.format(where=where), *params)

    def build(r: asyncpg.Record) -> PaperDetail:
        return PaperDetail(**{k: r[k] for k in Paper.__struct_fields__}, listings=[ListingRef(*x) for x in r["listings"]])

    [paper] = _in_asked_order(rows, [paper_id], arxiv, build)
    return paper


async def listings_of_papers(conn: asyncpg.Connection, paper_ids: Sequence[str]) -> list[list[ListingRef]]:
    """For each paper public id, the listings it appeared in (newest first), in one statement."""
    where, param = _id_match("p.public_id", 1, paper_ids)
    rows = await conn.fetch(
        f"""SELECT p.public_id AS paper, l.public_id AS id, l.date_label, l.listed_on AS date, e.rank
            FROM papers p JOIN listing_entries e USING (paper_key) JOIN listings l USING (listing_key)
            WHERE {where} ORDER BY l.listed_on DESC NULLS LAST, l.listing_key DESC, e.rank""",
        param,
    )  # fmt: skip
    found: dict[str, list[ListingRef]] = {}
    for r in rows:
        found.setdefault(r["paper"], []).append(ListingRef(r["id"], r["date_label"], r["date"], r["rank"]))
    return [found.get(i, []) for i in paper_ids]


async def match_title(conn: asyncpg.Connection, title: str, *, threshold: float = 0.5) -> TitleMatch | None:
    """The paper whose title is most similar (trigram) to `title`, if any is at least `threshold` similar."""
    row = await conn.fetchrow(
        f"""SELECT {_PAPER_COLUMNS}, similarity(p.title, $1) AS score FROM papers p
            WHERE p.title % $1 ORDER BY p.title <-> $1 LIMIT 1""",
        title,
    )
    if row is None or row["score"] < threshold:
        return None
    return TitleMatch(_paper(row), round(float(row["score"]), 4))


async def listings_page(
    conn: asyncpg.Connection, *, after: str | None = None, limit: int = 20
) -> tuple[list[Listing], str | None]:
    """One page of listings, newest date first."""
    where = _Where()
    if after:
        day, key = cursor.decode(after, "listings")
        try:
            where.add("(coalesce(l.listed_on, date '-infinity'), l.listing_key) < ({}, {})",
                      dt.date.fromisoformat(day), int(key))  # fmt: skip
        except (TypeError, ValueError):
            raise cursor.InvalidCursor("cursor is malformed") from None
    rows = await conn.fetch(
        f"""SELECT {_LISTING_COLUMNS}, l.listing_key FROM listings l WHERE {where.sql()}
            ORDER BY coalesce(l.listed_on, date '-infinity') DESC, l.listing_key DESC LIMIT {limit + 1}""",
        *where.params,
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = cursor.encode("listings", [(last["date"] or _NO_DATE).isoformat(), last["listing_key"]])
    return [_listing(r) for r in rows[:limit]], next_cursor


async def listings_by_ids(conn: asyncpg.Connection, ids: Sequence[str]) -> list[Listing | None]:
    """Listings by public id, in the order asked."""
    where, param = _id_match("l.public_id", 1, ids)
    rows = await conn.fetch(f"SELECT {_LISTING_COLUMNS} FROM listings l WHERE {where}", param)
    found = {r["id"]: _listing(r) for r in rows}
    return [found.get(i) for i in ids]


class EntriesRequest(NamedTuple):
    """One page of one listing's entries: after this cursor, at most limit."""

    listing_id: str
    after: str | None
    limit: int


def _after_rank(request: EntriesRequest) -> int:
    if not request.after:
        return 0
    values = cursor.decode(request.after, f"entries:{request.listing_id}")
    if len(values) != 1 or not isinstance(values[0], int):
        raise cursor.InvalidCursor("cursor is malformed")
    return values[0]


async def entries_pages(
    conn: asyncpg.Connection, requests: Sequence[EntriesRequest]
) -> list[tuple[list[ListingEntry], str | None]]:
    """Pages of entries of several listings in rank order, in one statement (raises InvalidCursor)."""
    ranks = [_after_rank(r) for r in requests]
    params: list[Any] = [[r.listing_id for r in requests], ranks, [r.limit for r in requests]]
    source = "unnest($1::text[], $2::int[], $3::int[]) WITH ORDINALITY"
    if len(requests) == 1:  # scalar parameters: one cached generic plan (see _id_match)
        source, params = "(VALUES ($1::text, $2::int, $3::int, 1::bigint))", [p[0] for p in params]
    rows = await conn.fetch(
        f"""SELECT r.i, e.rank, e.title_variant, e.abstract_variant, {_PAPER_COLUMNS}
            FROM {source} AS r(listing_id, after_rank, lim, i)
            JOIN listings l ON l.public_id = r.listing_id
            CROSS JOIN LATERAL (
                SELECT * FROM listing_entries e WHERE e.listing_key = l.listing_key AND e.rank > r.after_rank
                ORDER BY e.rank LIMIT r.lim + 1
            ) e
            JOIN papers p ON p.paper_key = e.paper_key
            ORDER BY r.i, e.rank""",
        *params,
    )  # fmt: skip
    grouped: dict[int, list[asyncpg.Record]] = {}
    for row in rows:
        grouped.setdefault(row["i"], []).append(row)
    pages = []
    for i, request in enumerate(requests, start=1):
        found = grouped.get(i, [])
        entries = [ListingEntry(r["rank"], _paper(r), r["title_variant"], r["abstract_variant"]) for r in found]
        more = len(found) > request.limit
        next_cursor = cursor.encode(f"entries:{request.listing_id}", [found[request.limit - 1]["rank"]]) if more else None
        pages.append((entries[: request.limit], next_cursor))
    return pages


async def entries_page(
    conn: asyncpg.Connection, listing_id: str, *, after: str | None = None, limit: int = 20
) -> tuple[list[ListingEntry], str | None]:
    """One page of a listing's entries in rank order."""
    [page] = await entries_pages(conn, [EntriesRequest(listing_id, after, limit)])
    return page


async def stats(conn: asyncpg.Connection) -> Stats:
    """Collection totals."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM papers) AS papers,
                  (SELECT count(*) FROM listings) AS listings,
                  (SELECT count(*) FROM listing_entries) AS entries,
                  (SELECT count(*) FROM ingest_rejects) AS rejects,
                  (SELECT count(*) FROM papers WHERE embedding IS NOT NULL) AS embedded,
                  (SELECT count(*) FROM ingest_jobs WHERE status IN ('queued', 'running')) AS jobs_queued,
                  (SELECT count(*) FROM ingest_jobs WHERE status = 'failed') AS jobs_failed"""
    )
    return Stats(**dict(row))
