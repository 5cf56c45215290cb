"""A keyword query's stems and their collection statistics: the `q` CTE of BM25's idf that every ranking starts from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from schema import limits

# The query's stems with their document frequency (df) and the number of papers (n), from this database's index.
_LOCAL_STATS = """(SELECT s.term, coalesce(k.df, 0) AS df, n.df AS n
    FROM (SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('english', {text})))) AS s(term)
    CROSS JOIN (SELECT coalesce(max(df), 0) AS df FROM keyword_terms WHERE term = '') n
    LEFT JOIN keyword_terms k ON k.term = s.term) t"""
# The same, given by the caller: statistics of a whole collection split over several databases (docs/scale-out.md), so
# every part scores with the same idf and the parts' scores can be merged.
_GIVEN_STATS = """(SELECT g.term, g.df, {n}::bigint AS n
    FROM unnest({terms}::text[], {dfs}::bigint[]) AS g(term, df)) t"""
# BM25 idf from the document frequencies: ln(1 + (N - df + 0.5) / (df + 0.5)); the rarest stems that occur, so a
# long query reads a bounded number of postings lists.
_QUERY_TERMS = """q AS MATERIALIZED (
    SELECT t.term, ln(1 + (t.n - t.df + 0.5)::float8 / (t.df + 0.5)) AS idf FROM {stats}
    ORDER BY t.df > 0 DESC, idf DESC, t.term LIMIT {stems})"""


class TermStats(NamedTuple):
    """Collection statistics of a query's stems: the papers counted, and each stem's document frequency."""

    papers: int
    df: dict[str, int]


def combined(parts: Sequence[TermStats]) -> TermStats:
    """The statistics of disjoint parts of a collection taken together (counts add up)."""
    df: dict[str, int] = {}
    for part in parts:
        for term, count in part.df.items():
            df[term] = df.get(term, 0) + count
    return TermStats(sum(p.papers for p in parts), df)


def query_terms(params: list[object], text: str, stats: TermStats | None, *, plan_once: bool = False) -> str:
    """The `q` CTE (stems and idf), its parameters appended to params: local statistics, or the given ones.

    With plan_once the text reaches the statement through an InitPlan, which the planner cannot fold into the query's
    stems: the plan no longer depends on the text, so PostgreSQL keeps one generic plan for the statement instead of
    planning every call (~0.6 ms at 100k papers; docs/design.md, "One plan for a plain query"). Only for statements
    whose plan has no choice to make by the values (`sql.keyword._plain`): a filter or a phrase keeps a plan of its
    own per call.
    """
    if stats is None:
        params.append(text)
        source = _LOCAL_STATS.format(text=f"(SELECT ${len(params)}::text)" if plan_once else f"${len(params)}")
    else:
        terms = sorted(stats.df)
        params += [terms, [stats.df[t] for t in terms], stats.papers]
        n = len(params)
        source = _GIVEN_STATS.format(terms=f"${n - 2}", dfs=f"${n - 1}", n=f"${n}")
    return _QUERY_TERMS.format(stats=source, stems=int(limits.MAX_QUERY_STEMS))


async def term_stats(conn: asyncpg.Connection, text: str) -> TermStats:
    """This database's statistics of the stems of a query text (one part's share, for `combined`)."""
    row = await conn.fetchrow(
        f"""SELECT (SELECT coalesce(max(df), 0) FROM keyword_terms WHERE term = '') AS n,
                   coalesce(array_agg(t.term), '{{}}') AS terms, coalesce(array_agg(t.df), '{{}}') AS dfs
            FROM {_LOCAL_STATS.format(text="$1")}""",
        text,
    )
    assert row is not None  # an aggregate without GROUP BY always answers one row
    return TermStats(int(row["n"]), dict(zip(row["terms"], map(int, row["dfs"]), strict=True)))
