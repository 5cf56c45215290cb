"""Catalog reads: papers, listings, entries and totals, with the checks every caller shares.

REST handlers and GraphQL resolvers call these (never the query layer directly), so a bound or a
"not found" is decided once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

import schema.api as contracts
from schema import limits
from schema.errors import InvalidInputError, NotFoundError
from schema.paging import Page, PageRequest, Total
from schema.selection import Selection
from sql import graph, queries
from sql.queries import EntriesRequest
from sql.routing import Source, looks_up, reads, status

GraphStatement = tuple[str, list[Any]]


def page_size(limit: int) -> int:
    """The page size asked for (`limit` on REST, `first` on GraphQL), if it is within 1..MAX_PAGE."""
    if not 1 <= limit <= limits.MAX_PAGE:
        raise InvalidInputError(f"page size must be between 1 and {limits.MAX_PAGE}, got {limit}")
    return limit


def page_request(
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    *,
    default: int = limits.DEFAULT_PAGE,
) -> PageRequest:
    """Which page a client asks for: `first` rows after a cursor, or `last` rows before one (not both)."""
    if first is not None and last is not None:
        raise InvalidInputError("give `first` or `last`, not both")
    size = last if last is not None else first if first is not None else default
    return PageRequest(page_size(size), after or None, before or None, backward=last is not None)


def check_filter(flt: contracts.PaperFilter) -> contracts.PaperFilter:
    """A filter whose text is short enough to search with."""
    if flt.q is not None and len(flt.q) > limits.MAX_QUERY_CHARS:
        raise InvalidInputError(f"q is longer than {limits.MAX_QUERY_CHARS} characters")
    return flt


@reads
async def papers_page(
    conn: asyncpg.Connection, flt: contracts.PaperFilter, page: PageRequest, *, sort: str = "recent"
) -> Page[contracts.Paper]:
    """One page of papers matching the filter, in the order of `sort` (`-name` reverses it)."""
    return await queries.papers_page(conn, check_filter(flt), page, sort=sort)


@reads
async def count_papers(conn: asyncpg.Connection, flt: contracts.PaperFilter) -> Total:
    """How many papers match the filter (up to MAX_COUNTED)."""
    return await queries.count_papers(conn, check_filter(flt))


@looks_up
async def paper(conn: asyncpg.Connection, paper_id: str) -> contracts.PaperDetail:
    """One paper by public or arXiv id, with its listings; NotFoundError when unknown."""
    found = await queries.paper_detail(conn, paper_id)
    if found is None:
        raise NotFoundError(f"no paper with id {paper_id!r}")
    return found


@reads
async def papers_by_ids(conn: asyncpg.Connection, ids: Sequence[str]) -> list[contracts.Paper | None]:
    """Papers by public or arXiv id, in the order asked, None for unknown ids."""
    if len(ids) > limits.MAX_BATCH:
        raise InvalidInputError(f"at most {limits.MAX_BATCH} ids per batch, got {len(ids)}")
    return await queries.papers_by_ids(conn, ids) if ids else []


@reads
async def match_title(conn: asyncpg.Connection, title: str) -> contracts.TitleMatch:
    """The paper whose title is closest to `title`; NotFoundError when none is close."""
    low, high = limits.TITLE_MATCH_CHARS
    if not low <= len(title) <= high:
        raise InvalidInputError(f"title must be {low} to {high} characters")
    found = await queries.match_title(conn, title)
    if found is None:
        raise NotFoundError(f"no paper title is close to {title!r}")
    return found


@reads
async def listings_of_papers(conn: asyncpg.Connection, paper_ids: Sequence[str]) -> list[list[contracts.ListingRef]]:
    """For each paper public id, the listings it appeared in, newest first."""
    return await queries.listings_of_papers(conn, paper_ids)


@reads
async def listings_page(conn: asyncpg.Connection, page: PageRequest) -> Page[contracts.Listing]:
    """One page of listings, newest first."""
    return await queries.listings_page(conn, page)


@reads
async def count_listings(conn: asyncpg.Connection) -> Total:
    """How many listings there are (up to MAX_COUNTED)."""
    return await queries.count_listings(conn)


@reads
async def listings_by_ids(conn: asyncpg.Connection, ids: Sequence[str]) -> list[contracts.Listing | None]:
    """Listings by public id, in the order asked, None for unknown ids."""
    return await queries.listings_by_ids(conn, ids)


@looks_up
async def listing(conn: asyncpg.Connection, listing_id: str) -> contracts.Listing:
    """One listing; NotFoundError when unknown."""
    [found] = await queries.listings_by_ids(conn, [listing_id])
    if found is None:
        raise NotFoundError(f"no listing with id {listing_id!r}")
    return found


@reads
async def entries_pages(
    conn: asyncpg.Connection, requests: Sequence[EntriesRequest]
) -> list[Page[contracts.ListingEntry]]:
    """Pages of entries of several listings in rank order (InvalidCursorError when a cursor is not theirs)."""
    return await queries.entries_pages(conn, requests)


@reads
async def entries_page(conn: asyncpg.Connection, listing_id: str, page: PageRequest) -> Page[contracts.ListingEntry]:
    """One page of a listing's entries in rank order."""
    [found] = await queries.entries_pages(conn, [EntriesRequest(listing_id, page)])
    return found


async def stats(source: Source) -> contracts.Stats:
    """Collection totals, and the role, health and lag of every database behind the service."""
    totals = await _totals(source)
    return msgspec.structs.replace(totals, databases=status(source))


@reads
async def _totals(conn: asyncpg.Connection) -> contracts.Stats:
    return await queries.stats(conn)


def graph_statement(roots: Sequence[Selection]) -> GraphStatement:
    """The one statement answering a tree of selected fields (NotCompiledError, InvalidCursorError when it cannot)."""
    return graph.statement(roots)


@reads
async def read_graph(conn: asyncpg.Connection, statement: GraphStatement) -> list[bytes | None]:
    """The JSON of each root field of a graph statement, in order, without the spaces PostgreSQL puts in."""
    sql, params = statement
    row = await conn.fetchrow(sql, *params)
    values = list(row.values()) if row is not None else []
    return [None if v is None else msgspec.json.format(v.encode(), indent=-1) for v in values]
