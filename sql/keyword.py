"""BM25 keyword search over the impact-ordered postings of migration 006, and its rebuild.

Two plans (docs/design.md, "Keyword ranking"):
- walk: each query stem's postings are read best first, `depth` of them that pass the filters; a paper's
  score is the sum over the stems it was read for. Cost grows with depth and the number of stems,
  never with the number of matching papers. A deep page's walk ranks in tiers (`_hits`), so that it
  extends the ranking of a first page. With a quoted phrase, one walk of the phrase's rarest stem checks the
  phrase on at most PHRASE_SCAN x depth of its best postings and scores the first `depth` papers that have it
  exactly (`_phrase_walk`); when that finds fewer than PHRASE_WALK_MIN papers (a phrase rare among its word's
  papers), the exhaustive plan answers instead.
- exhaustive: every paper that matches is scored from its tsvector. Used when a listing is named (its
  papers are few), after a phrase walk that came up short and for a phrase query's papers past its walk's
  first tier (the phrase's matches are found through the GIN index), and by the benchmark as the exact
  reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg
import numpy as np

from schema.api import PaperFilter, ScoredPaper
from schema.paging import Total
from sql import search
from sql.embeddings import SPACE_COLUMN, Space, space_from
from sql.fragments import PAPER_COLUMNS, Where, capped_count, paper_filters
from sql.search import scored_paper
from sql.terms import TermStats, query_terms

# Postings of the phrase's rarest stem a phrase walk may check, per paper it must find: past it, the phrase is rare
# among the papers of that word, and the GIN index finds its papers faster than the walk would.
PHRASE_SCAN = 10
# Papers the first tier of a phrase walk must find, else the exhaustive plan answers every page of the query: a fixed
# number, not the page's size, so that every page of a query is cut from the same plan ("Paging a ranking").
PHRASE_WALK_MIN = 20
# Postings read per query stem for the first pages, chosen by measurement (docs/design.md, "Keyword ranking"); a deeper
# page doubles it (`_walk_depth`), each doubling a tier ranked after the ones before it.
KEYWORD_DEPTH = 200
# Any of the stems, as a tsquery the GIN index answers (each stem quoted as tsquery input wants).
_ANY_TERM = """p.search @@ (SELECT string_agg('''' || replace(replace(term, '\\', '\\\\'), '''', '''''') || '''', ' | ')
    FROM q)::tsquery"""


def _walk_depth(rows: int) -> int:
    """Postings a walk reads per stem to rank `rows` papers: KEYWORD_DEPTH, doubled until it is at least `rows`.

    A walk of that depth holds at least `rows` papers (or every match), all in whole tiers, which a deeper walk
    keeps as they are (`_hits`).
    """
    depth = KEYWORD_DEPTH
    while depth < rows:
        depth *= 2
    return depth


class KeywordQuery(NamedTuple):
    """A parsed keyword query: the words ranked, phrases that must match, words that must not."""

    text: str  # every word to rank by, phrases included, negated words left out
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def _where(query: KeywordQuery, flt: PaperFilter, params: list[object]) -> Where:
    where = Where(params)
    for phrase in query.phrases:
        where.add("p.search @@ phraseto_tsquery('english', {})", phrase)
    if query.excluded:
        where.add("NOT (p.search @@ websearch_to_tsquery('english', {}))", " or ".join(query.excluded))
    paper_filters(where, flt)
    return where


def _needs_papers(query: KeywordQuery, flt: PaperFilter) -> bool:
    """Whether a posting must be checked against its paper (a filter or an excluded word)."""
    return bool(query.excluded or query.phrases) or flt != PaperFilter()


def _plain(query: KeywordQuery, flt: PaperFilter, exhaustive: bool) -> bool:
    """Whether a ranking's plan is the same for every query text: a postings walk with nothing to check per paper."""
    return not (exhaustive or _needs_papers(query, flt))


async def keyword(
    conn: asyncpg.Connection,
    query: KeywordQuery,
    flt: PaperFilter,
    *,
    limit: int,
    depth: int | None = None,
    exhaustive: bool = False,
    stats: TermStats | None = None,
) -> list[ScoredPaper]:
    """The `limit` best papers by BM25 (title-boosted), filtered; see the module note for the two plans.

    Without `depth`, the ranking every page of a search is cut from (`_tiers`); with it, one walk of `depth` postings
    per stem (the benchmark's designs). With `stats`, idf comes from them instead of this database's index (a
    collection split over several databases: docs/scale-out.md).
    """
    tiers = _tiers(query, depth, limit)
    rows = await _ranked(conn, query, flt, limit=limit, tiers=tiers, exhaustive=exhaustive, stats=stats)
    if _came_up_short(query, flt, rows[0]["first_found"] if rows else 0, exhaustive):
        rows = await _ranked(conn, query, flt, limit=limit, tiers=tiers, exhaustive=True, stats=stats)
    else:
        rows += await _rest(conn, query, flt, tiers, [r["key"] for r in rows], limit, exhaustive, stats)
    return [scored_paper(r, r["score"]) for r in rows]


def _tiers(query: KeywordQuery, depth: int | None, rows: int) -> _Tiers:
    """The walk that ranks `rows` papers: one of `depth` postings per stem where given, else the ladder of
    `_walk_depth` in tiers from KEYWORD_DEPTH; a phrase walk stays in its first tier (`_rest`)."""
    if depth is not None:
        return _Tiers(depth)
    return _Tiers(KEYWORD_DEPTH, KEYWORD_DEPTH) if query.phrases else _Tiers(_walk_depth(rows), KEYWORD_DEPTH)


async def _rest(
    conn: asyncpg.Connection,
    query: KeywordQuery,
    flt: PaperFilter,
    tiers: _Tiers,
    found: list[int],
    limit: int,
    exhaustive: bool,
    stats: TermStats | None,
) -> list[asyncpg.Record]:
    """Past a phrase walk's first tier (`found`, fewer than `limit`), the phrase's other papers scored exactly (the
    exhaustive plan); nothing for any other ranking.

    A deeper phrase walk would check ten times its depth in postings, most of them against papers without the phrase:
    past the first tier that cost more than finding the phrase's papers through the GIN index (docs/design.md,
    "Paging a ranking").
    """
    phrase_walk = bool(query.phrases) and not (exhaustive or flt.listing) and tiers.first_depth is not None
    if not phrase_walk or len(found) >= limit:
        return []
    more = limit - len(found)
    return await _ranked(conn, query, flt, limit=more, tiers=tiers, exhaustive=True, stats=stats, exclude=found)


async def _ranked(
    conn: asyncpg.Connection,
    query: KeywordQuery,
    flt: PaperFilter,
    *,
    limit: int,
    tiers: _Tiers,
    exhaustive: bool,
    stats: TermStats | None,
    exclude: Sequence[int] = (),
) -> list[asyncpg.Record]:
    params: list[object] = []
    terms = query_terms(params, query.text, stats, plan_once=stats is None and _plain(query, flt, exhaustive))
    hits = _hits(query, flt, params, tiers=tiers, exhaustive=exhaustive, exclude=exclude)
    # The limit written in, as the depth is: a parameter would be costed at a tenth of the table in a generic plan.
    return await conn.fetch(
        f"""WITH {terms}, walked AS ({hits}),
            hits AS (SELECT * FROM walked ORDER BY {tiers.order()} LIMIT {int(limit)})
            SELECT {PAPER_COLUMNS}, hits.paper_key AS key, hits.score, {_first_found(query, exhaustive)} AS first_found
            FROM hits JOIN papers p USING (paper_key)
            ORDER BY {tiers.order("hits.")}""",
        *params,
    )


def _first_found(query: KeywordQuery, exhaustive: bool) -> str:
    """SQL of how many papers the first tier of a phrase walk found (up to PHRASE_WALK_MIN); needs `walked`."""
    if not query.phrases or exhaustive:
        return "NULL::bigint"
    return f"(SELECT count(*) FROM (SELECT FROM walked WHERE tier = 0 LIMIT {PHRASE_WALK_MIN}) f)"


def _came_up_short(query: KeywordQuery, flt: PaperFilter, first_found: int | None, exhaustive: bool) -> bool:
    """Whether a phrase walk's first tier found fewer than PHRASE_WALK_MIN papers: its scan cap may hide many.

    Counted in the first tier, whatever the page, so that every page of a query takes the same plan.
    """
    return bool(query.phrases) and not (exhaustive or flt.listing) and (first_found or 0) < PHRASE_WALK_MIN


async def count_ranked(
    conn: asyncpg.Connection, query: KeywordQuery, flt: PaperFilter, *, keyword: bool, semantic: bool
) -> Total:
    """How many filtered papers a search ranks (up to MAX_COUNTED): those the keyword query matches, those with a
    vector, or either."""
    params: list[object] = []
    terms = query_terms(params, query.text, None)
    ranked = ["p.embedding IS NOT NULL"] if semantic else []
    if keyword:
        words = _where(query, PaperFilter(), params)  # phrases and excluded words
        ranked.append(f"({words.sql()})" if query.phrases else f"({_ANY_TERM} AND {words.sql()})")
    where = Where(params)
    paper_filters(where, flt)
    rows = f"""FROM papers p WHERE ({" OR ".join(ranked)}) AND {where.sql()}"""
    return Total.of(await conn.fetchval(f"WITH {terms} SELECT {capped_count(rows)}", *params))


class _Tiers(NamedTuple):
    """A walk's depth, and where its tiers end: at first_depth, doubled until depth (one tier without first_depth)."""

    depth: int
    first_depth: int | None = None

    def ends(self) -> list[int]:
        """The depth of each tier but the last (which ends at `depth`)."""
        ends, end = [], self.first_depth or self.depth
        while end < self.depth:
            ends.append(end)
            end *= 2
        return ends

    def order(self, table: str = "") -> str:
        """A ranking's ORDER BY: by tier where there are tiers, then score, then key (ties always break alike)."""
        ranked = f"{table}score DESC, {table}paper_key"
        return f"{table}tier, {ranked}" if self.ends() else ranked


def _hits(
    query: KeywordQuery,
    flt: PaperFilter,
    params: list[object],
    *,
    tiers: _Tiers,
    exhaustive: bool,
    exclude: Sequence[int] = (),
) -> str:
    """The SQL of every ranked paper's (paper_key, tier, score) under the module note's plan, but the exhaustive
    plan's `exclude`; needs the `q` CTE.

    A walk ranks in tiers when it reads deeper than the first tier (a deep page): tier j holds the papers a walk of
    depth first_depth x 2^j finds and a shallower one does not, scored as that walk scores them, and every tier ranks
    after the ones before it. So a deeper page's ranking begins with exactly the ranking a shallower page was cut from
    (docs/design.md, "Paging a ranking"); one tier is the plain walk.
    """
    where = _where(query, flt, params)
    if exhaustive or flt.listing:
        if exclude:  # the papers a phrase walk's first tier ranked already
            where.add("NOT (p.paper_key = ANY({}::bigint[]))", list(exclude))
        condition = where.sql() if (query.phrases or flt.listing) else f"{_ANY_TERM} AND {where.sql()}"
        return f"""SELECT p.paper_key, 0 AS tier, {_score("i.impact")}
            FROM papers p CROSS JOIN LATERAL keyword_impacts(p.search) i JOIN q ON q.term = i.term
            WHERE {condition} GROUP BY p.paper_key"""
    depth, ends = int(tiers.depth), tiers.ends()
    if query.phrases:
        return _phrase_walk(query, where, depth)
    join = "JOIN papers p ON p.paper_key = kp.paper_key" if _needs_papers(query, flt) else ""
    walk = f"""SELECT kp.paper_key, kp.impact FROM keyword_postings kp {join}
            WHERE kp.term = q.term AND {where.sql()}
            ORDER BY kp.impact DESC, kp.paper_key LIMIT {depth}"""
    if not ends:
        return f"""SELECT h.paper_key, 0 AS tier, {_score("h.impact")}
            FROM q CROSS JOIN LATERAL ({walk}) h GROUP BY h.paper_key"""
    # A posting's tier: the first walk that reads it, by its rank among the postings that pass.
    tier = f"width_bucket(w.passed, '{{{','.join(str(e + 1) for e in ends)}}}'::bigint[])"
    return f"""SELECT DISTINCT ON (h.paper_key) h.paper_key, h.tier, {_score("h.impact")}
        FROM q CROSS JOIN LATERAL (
            SELECT w.paper_key, w.impact, {tier} AS tier
            FROM (SELECT *, row_number() OVER (ORDER BY impact DESC, paper_key) AS passed FROM ({walk}) v) w) h
        GROUP BY h.paper_key, h.tier ORDER BY h.paper_key, h.tier"""


def _score(impact: str) -> str:
    """SQL of a paper's BM25 score: its stems' idf x impact summed, rounded to 9 decimals (scores stay far below 1e6).

    A float sum depends on the order of its terms, and the order follows the plan: equal scores summed in another
    order differ in the last bit, so a plan changed by ANALYZE between two pages broke their ties another way and the
    pages disagreed. Rounded, equal scores are equal again and the key breaks the tie (docs/design.md, "Paging a
    ranking").
    """
    return f"round(sum(q.idf * {impact}) * 1e9) / 1e9 AS score"  # float8 arithmetic: cheaper than numeric's round


def _phrase_walk(query: KeywordQuery, where: Where, depth: int) -> str:
    """SQL of a phrase query's walk: (paper_key, tier 0, exact score) of the first `depth` papers with the phrase
    (and the filters) among the best PHRASE_SCAN x depth postings of the phrases' rarest stem, each scored over every
    query stem from its tsvector.

    Every paper with the phrase holds that stem, so one postings list finds the candidates; exact scores rank them
    (a walk of every stem's postings scored each paper only for the stems it was read for).
    """
    phrase_stems = f"tsvector_to_array(to_tsvector('english', {where.param(' '.join(query.phrases))}))"
    # The rarest in the whole index, not among the query's stems (a long query may leave the phrase's out of `q`).
    anchor = f"""(SELECT s.term FROM unnest({phrase_stems}) AS s(term) LEFT JOIN keyword_terms k USING (term)
        ORDER BY coalesce(k.df, 0), s.term LIMIT 1)"""
    # Each posting's paper checked in turn (OFFSET 0 keeps the subquery a per-row check): a plan made for any values
    # could otherwise find the phrase's papers through the GIN index first, all of them, however common.
    found = f"""SELECT kp.paper_key FROM (SELECT paper_key, impact FROM keyword_postings WHERE term = {anchor}
            ORDER BY impact DESC, paper_key LIMIT {depth * PHRASE_SCAN}) kp
            CROSS JOIN LATERAL (SELECT FROM papers p WHERE p.paper_key = kp.paper_key AND {where.sql()} OFFSET 0) ok
            ORDER BY kp.impact DESC, kp.paper_key LIMIT {depth}"""
    return f"""SELECT c.paper_key, 0 AS tier, {_score("i.impact")}
        FROM ({found}) c JOIN papers p USING (paper_key)
        CROSS JOIN LATERAL keyword_impacts(p.search) i JOIN q ON q.term = i.term GROUP BY c.paper_key"""


class HybridRanks(NamedTuple):
    """Both rankings of a hybrid search as (paper key, score), and the space of the vectors they compared."""

    keyword: list[tuple[int, float]]
    semantic: list[tuple[int, float]]
    space: Space | None


async def hybrid_ranks(
    conn: asyncpg.Connection,
    query: KeywordQuery,
    vector: np.ndarray,
    flt: PaperFilter,
    *,
    limit: int,
    depth: int | None = None,
) -> HybridRanks:
    """(key, score) of the `limit` best papers by BM25 (the walk `keyword` takes for `depth`) and of the `limit`
    nearest by HNSW (cosine similarity), filtered, in one statement, with the stored vectors' space (for the caller
    to refuse another's query vector without a round trip of its own).

    Keys and scores only: the fusion needs no more, and only the page shown is read in full (`papers_by_key`).
    """
    tiers = _tiers(query, depth, limit)
    row = await _hybrid_row(conn, query, vector, flt, limit=limit, tiers=tiers, exhaustive=False)
    if _came_up_short(query, flt, row["first_found"], False):
        row = await _hybrid_row(conn, query, vector, flt, limit=limit, tiers=tiers, exhaustive=True)
    matched = list(zip(row["keyword"], map(float, row["keyword_scores"]), strict=True))
    rest = await _rest(conn, query, flt, tiers, [key for key, _ in matched], limit, False, None)
    matched += [(r["key"], float(r["score"])) for r in rest]
    # The neighbours in the scan's order, as search.nearest keeps them.
    neighbours = zip(row["semantic_keys"], row["distances"], strict=True)
    semantic = [(key, 1.0 - float(distance)) for key, distance in neighbours]
    return HybridRanks(matched, semantic, space_from(row["space"]))


async def _hybrid_row(
    conn: asyncpg.Connection,
    query: KeywordQuery,
    vector: np.ndarray,
    flt: PaperFilter,
    *,
    limit: int,
    tiers: _Tiers,
    exhaustive: bool,
) -> asyncpg.Record:
    params: list[object] = []
    terms = query_terms(params, query.text, None, plan_once=_plain(query, flt, exhaustive))
    hits = _hits(query, flt, params, tiers=tiers, exhaustive=exhaustive)
    where = Where(params)
    where.add("p.embedding IS NOT NULL")
    iterative = await search.iterative_scan(conn)  # known once per process: no round trip
    where.add(search.ef_search_gate(search.hybrid_ef_search(limit, iterative=iterative)))
    paper_filters(where, flt)
    vec, n = where.param(vector), int(limit)  # the limit written in: see _ranked
    statement = f"""WITH {terms}, walked AS ({hits}),
        kw AS (SELECT * FROM walked ORDER BY {tiers.order()} LIMIT {n}),
        nn AS (SELECT p.paper_key, p.embedding <=> {vec} AS distance FROM papers p
               WHERE {where.sql()} ORDER BY p.embedding <=> {vec} LIMIT {n})
        SELECT (SELECT coalesce(array_agg(paper_key ORDER BY {tiers.order()}), '{{}}') FROM kw) AS keyword,
               (SELECT coalesce(array_agg(score ORDER BY {tiers.order()}), '{{}}') FROM kw) AS keyword_scores,
               {_first_found(query, exhaustive)} AS first_found,
               coalesce(array_agg(nn.paper_key), '{{}}') AS semantic_keys,
               coalesce(array_agg(nn.distance), '{{}}') AS distances,
               {SPACE_COLUMN} AS space
        FROM nn"""
    # The gate sets the HNSW half's ef_search, deep pages included: no transaction of SET LOCALs for those.
    row = await search.with_session_settings(conn, lambda: conn.fetchrow(statement, *params))
    assert row is not None  # an aggregate: always one row
    return row


async def papers_by_key(conn: asyncpg.Connection, keys: list[int], scores: list[float]) -> list[ScoredPaper]:
    """Papers by key with their scores, in the order given."""
    rows = await conn.fetch(
        f"""SELECT {PAPER_COLUMNS}, u.score
            FROM unnest($1::bigint[], $2::float8[]) WITH ORDINALITY AS u(paper_key, score, n)
            JOIN papers p USING (paper_key) ORDER BY u.n""",
        keys,
        scores,
    )
    return [scored_paper(r, r["score"]) for r in rows]


async def rebuild(conn: asyncpg.Connection) -> int:
    """Write the keyword index again from the papers (in one transaction); returns the papers indexed."""
    async with conn.transaction():
        # Writers wait (SHARE blocks INSERT/UPDATE); readers keep reading the old index until commit
        # (DELETE, not TRUNCATE, whose exclusive lock would stop them).
        await conn.execute("LOCK TABLE papers IN SHARE MODE")
        await conn.execute("SELECT keyword_rebuild()")
        return int(await conn.fetchval("SELECT count(*) FROM papers"))
