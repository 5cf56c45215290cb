"""Reads for browsing the collection: facet counts, export batches and title suggestions."""

from __future__ import annotations

from typing import Any

import asyncpg

from schema.api import FacetCount, FacetField, Paper, PaperFilter, Suggestion
from sql.fragments import PAPER_COLUMNS, Where, paper_filters
from sql.queries import paper_of

# Each single-valued facet: the expression a paper is grouped by (NULL for papers never listed on a known day).
_KEYS = {
    "listed_month": "to_char(p.first_listed, 'YYYY-MM')",
    "listed_year": "to_char(p.first_listed, 'YYYY')",
    "has_arxiv": "(p.arxiv_id IS NOT NULL)::text",
}


def _facet_sql(by: FacetField, where: Where, limit: int) -> str:
    """The statement counting matching papers per value of `by`, largest counts first."""
    if by == "listing":
        # A paper counts once per listing it is in (a page may print it twice); listings are named last,
        # for the groups kept only.
        return f"""SELECT l.public_id AS key, g.count FROM (
                       SELECT e.listing_key, count(DISTINCT e.paper_key) AS count
                       FROM listing_entries e JOIN papers p USING (paper_key) WHERE {where.sql()}
                       GROUP BY e.listing_key ORDER BY count DESC, e.listing_key LIMIT {limit}
                   ) g JOIN listings l USING (listing_key) ORDER BY g.count DESC, l.public_id"""
    return f"""SELECT {_KEYS[by]} AS key, count(*) AS count FROM papers p WHERE {where.sql()}
               GROUP BY 1 ORDER BY count DESC, key NULLS LAST LIMIT {limit}"""


async def facets(conn: asyncpg.Connection, flt: PaperFilter, by: FacetField, *, limit: int) -> list[FacetCount]:
    """How many papers matching the filter share each value of `by` (at most `limit` groups, largest first)."""
    where = Where()
    paper_filters(where, flt)
    rows = await conn.fetch(_facet_sql(by, where, limit), *where.params)
    return [FacetCount(r["key"], r["count"]) for r in rows]


async def papers_after(
    conn: asyncpg.Connection, flt: PaperFilter, after_key: int, limit: int
) -> tuple[list[Paper], int | None]:
    """The next `limit` papers matching the filter in storage-key order after `after_key`, and the last key read.

    The key is internal and never changes, so walking it visits every paper present throughout exactly once.
    """
    where = Where()
    paper_filters(where, flt)
    where.add("p.paper_key > {}", after_key)
    rows = await conn.fetch(
        f"SELECT {PAPER_COLUMNS}, p.paper_key FROM papers p WHERE {where.sql()} ORDER BY p.paper_key LIMIT {limit}",
        *where.params,
    )
    return [paper_of(r) for r in rows], (rows[-1]["paper_key"] if rows else None)


# Titles starting with the text (index range on lower(title); chr(1114111) is the last code point), then titles
# with a word close to it, nearest first (GiST distance order). `<%` keeps those at least
# pg_trgm.word_similarity_threshold (0.6) alike. An Append returns its parts in order, each part sorted.
_SUGGEST = """
    (SELECT p.public_id, p.title, 0 AS tier FROM papers p
     WHERE lower(p.title) ~>=~ lower($1) AND lower(p.title) ~<~ (lower($1) || chr(1114111))
     ORDER BY lower(p.title) USING ~<~ LIMIT $2)
    UNION ALL
    (SELECT p.public_id, p.title, 1 AS tier FROM papers p WHERE $1 <% p.title ORDER BY p.title <<-> $1 LIMIT $2)
"""


async def suggest(conn: asyncpg.Connection, text: str, limit: int) -> list[Suggestion]:
    """Up to `limit` titles that start with `text`, then titles with a word like it, without repeats."""
    rows: list[Any] = await conn.fetch(_SUGGEST, text, limit)
    seen: dict[str, Suggestion] = {}
    for row in sorted(rows, key=lambda r: r["tier"]):  # stable: each part keeps its own order
        seen.setdefault(row["public_id"], Suggestion(row["public_id"], row["title"]))
    return list(seen.values())[:limit]
