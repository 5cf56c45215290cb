"""Reads for browsing the collection: facet counts, export batches and title suggestions."""

from __future__ import annotations

import re

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


# Titles starting with the text, in order (a range of lower(title); chr(1114111) is the last code point).
_STARTING = """
    SELECT p.public_id, p.title FROM papers p
    WHERE lower(p.title) ~>=~ $1 AND lower(p.title) ~<~ ($1 || chr(1114111))
    ORDER BY lower(p.title) USING ~<~ LIMIT $2
"""
# Titles with a word starting with the last typed word and holding the other typed words whole, not already
# starting with the text. The candidates are read in word order from the words' index and only the first
# MAX_CANDIDATES are looked at: what is typed cannot make the statement read the table (a rare combination
# whose last word is very common may then find fewer than asked).
MAX_CANDIDATES = 2000
_WITH_WORDS = f"""
    SELECT p.public_id, p.title FROM (
        SELECT w.paper_key FROM paper_title_words w
        WHERE w.word ~>=~ $1 AND w.word ~<~ ($1 || chr(1114111))
        ORDER BY w.word USING ~<~, w.paper_key LIMIT {MAX_CANDIDATES}
    ) c JOIN papers p USING (paper_key)
    WHERE NOT starts_with(lower(p.title), $2)
      AND (SELECT count(*) FROM paper_title_words x WHERE x.paper_key = c.paper_key AND x.word = ANY($3::text[]))
          = cardinality($3::text[])
    LIMIT $4
"""
WORD = re.compile(r"[^\W_]+")  # what the trigger's '[^[:alnum:]]+' split leaves


async def suggest(conn: asyncpg.Connection, text: str, limit: int) -> list[Suggestion]:
    """Up to `limit` titles starting with `text`, then titles with a word starting with its last word that hold
    its other words."""
    typed = text.lower()
    rows = list(await conn.fetch(_STARTING, typed, limit))
    words = WORD.findall(typed)
    if len(rows) < limit and words:
        *whole, last = words
        # A title with two words starting alike comes once per word: ask for enough to fill the answer.
        rows += await conn.fetch(_WITH_WORDS, last, typed, sorted(set(whole)), 3 * limit)
    found: dict[str, Suggestion] = {}
    for row in rows:
        found.setdefault(row["public_id"], Suggestion(row["public_id"], row["title"]))
    return list(found.values())[:limit]
