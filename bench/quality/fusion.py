"""Section 2, continued: similar papers from dense neighbours fused with a BM25 "more like this" of the paper's terms.

The more-like-this query is the paper's own heaviest stems (BM25 weight in the paper x idf, like Lucene's
MoreLikeThis), run over the keyword index of migration 006 as a typed query is (postings best first, a bounded
number per stem). It lives here, not in `sql/`, because the product does not use it unless it measures better.
"""

from __future__ import annotations

import collections
import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence

import asyncpg

from api.services.search import QueryEmbeddings, similar_papers
from bench.harness.report import fmt, table
from bench.quality.metrics import K, graded, ms
from bench.quality.seeds import Seeds
from bench.quality.similar import RARE_WORDS, SAME_LISTING, Gains

TERMS = 25  # stems of the paper in its query: Lucene MoreLikeThis's default maxQueryTerms
DEPTH = 200  # postings read per stem, as for a typed keyword query (sql/keyword.py KEYWORD_DEPTH)
CANDIDATES = 50  # each ranking's top that is fused (hybrid search fuses 50 keyword hits too)
RRF_K = 60
DENSE = "similar_papers (dense neighbours)"
MLT = f"BM25 more like this ({TERMS} stems)"

MLT_SQL = """WITH q AS MATERIALIZED (
    SELECT * FROM (
        SELECT s.lexeme AS term, ln(1 + (n.df - k.df + 0.5)::float8 / (k.df + 0.5)) AS idf,
            keyword_impact(cardinality(s.positions) + 2 * cardinality(array_positions(s.weights, 'A')),
                           length(p.search)) AS weight
        FROM papers p CROSS JOIN LATERAL unnest(p.search) s
        JOIN keyword_terms k ON k.term = s.lexeme
        CROSS JOIN (SELECT coalesce(max(df), 0) AS df FROM keyword_terms WHERE term = '') n
        WHERE p.paper_key = $1 AND k.df > 1) stems
    ORDER BY weight * idf DESC, term LIMIT $2),
hits AS (SELECT h.paper_key, sum(q.weight * q.idf * h.impact) AS score
    FROM q CROSS JOIN LATERAL (
        SELECT kp.paper_key, kp.impact FROM keyword_postings kp
        WHERE kp.term = q.term AND kp.paper_key <> $1
        ORDER BY kp.impact DESC, kp.paper_key LIMIT $3) h
    GROUP BY h.paper_key ORDER BY score DESC, h.paper_key LIMIT $4)
SELECT p.public_id, hits.score FROM hits JOIN papers p USING (paper_key) ORDER BY hits.score DESC, p.paper_key"""

Scored = list[tuple[str, float]]  # a ranking: (paper id, score), best first


async def more_like_this(conn: asyncpg.Connection, key: int, limit: int) -> Scored:
    """The papers best matching a paper's own heaviest stems by BM25, itself left out."""
    return [(r["public_id"], r["score"]) for r in await conn.fetch(MLT_SQL, key, TERMS, DEPTH, limit)]


def rrf(rankings: Sequence[Scored], weights: Sequence[float]) -> list[str]:
    """Weighted reciprocal rank fusion: sum of weight / (k + rank)."""
    scores: dict[str, float] = collections.defaultdict(float)
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (pid, _) in enumerate(ranking, start=1):
            scores[pid] += weight / (RRF_K + rank)
    return sorted(scores, key=lambda pid: -scores[pid])


def combsum(dense: Scored, mlt: Scored, alpha: float) -> list[str]:
    """Cosine + alpha x BM25 / the best BM25 score; a paper missing from one ranking gets that ranking's floor."""
    cos, bm25 = dict(dense), dict(mlt)
    top, floor = max(bm25.values(), default=1.0) or 1.0, min(cos.values(), default=0.0)
    return sorted(cos.keys() | bm25.keys(), key=lambda pid: -(cos.get(pid, floor) + alpha * bm25.get(pid, 0.0) / top))


Fuse = Callable[[Scored, Scored], list[str]]
METHODS: dict[str, Fuse] = {
    DENSE: lambda d, m: [pid for pid, _ in d],
    MLT: lambda d, m: [pid for pid, _ in m],
    "RRF dense + more like this": lambda d, m: rrf([d, m], [1.0, 1.0]),
    "RRF dense + more like this x 0.25": lambda d, m: rrf([d, m], [1.0, 0.25]),
    "cosine + 0.1 x BM25 / best (CombSUM)": lambda d, m: combsum(d, m, 0.1),
    "dense top 20 reordered by RRF with more like this": lambda d, m: rrf(
        [d[:20], [h for h in m if h[0] in {pid for pid, _ in d[:20]}]], [1.0, 1.0]
    ),
}


@dataclasses.dataclass(frozen=True)
class FusionRow:
    """One method's nDCG@10 and recall@10 on each proxy."""

    method: str
    scores: dict[str, tuple[float, float]]  # proxy -> (nDCG@10, recall@10)


@dataclasses.dataclass
class FusionResult:
    """Every method on both proxies, and what the more-like-this query cost."""

    rows: list[FusionRow]
    papers: int
    latency: list[float]

    def row(self, method: str) -> FusionRow:
        """The row of one method."""
        return next(r for r in self.rows if r.method == method)

    def better_on_both(self) -> list[FusionRow]:
        """Fusions whose nDCG@10 beats similar_papers' on both proxies."""
        base = self.row(DENSE).scores
        return [
            r
            for r in self.rows
            if r.method not in (DENSE, MLT) and all(r.scores[p][0] > base[p][0] for p in (SAME_LISTING, RARE_WORDS))
        ]


async def measure(
    conn: asyncpg.Connection, embeddings: QueryEmbeddings, seeds: Seeds, gains: dict[str, Gains]
) -> FusionResult:
    """Rank every seed paper's neighbours by each method and score them against the proxies' gains."""
    dense: dict[str, Scored] = {}
    mlt: dict[str, Scored] = {}
    latency = []
    for p in seeds.papers:
        dense[p.id] = [(h.id, h.score) for h in await similar_papers(conn, embeddings, p.id, limit=CANDIDATES)]
        started = time.perf_counter()
        mlt[p.id] = await more_like_this(conn, p.key, CANDIDATES)
        latency.append(time.perf_counter() - started)
    rows = []
    for method, fuse in METHODS.items():
        ranked = {pid: fuse(dense[pid], mlt[pid]) for pid in dense}
        scores = {}
        for proxy, proxy_gains in gains.items():
            values = [graded(ranked[pid], g) for pid, g in proxy_gains.items() if g]
            scores[proxy] = (statistics.mean(v[0] for v in values), statistics.mean(v[1] for v in values))
        rows.append(FusionRow(method, scores))
    return FusionResult(rows, len(seeds.papers), latency)


def render(r: FusionResult) -> str:
    """The fusion part of section 2."""
    proxies = (RARE_WORDS, SAME_LISTING)
    rows = [(x.method, *(fmt(v, 3) for p in proxies for v in x.scores[p])) for x in r.rows]
    headers = ("method", *(f"{p} {m}" for p in proxies for m in ("nDCG@10", "recall@10")))
    return f"""### Fused with a BM25 "more like this" of the paper's own terms

The query of a paper is its {TERMS} heaviest stems (weight in the paper x idf; a stem no other paper has is left \
out), ranked over the BM25 keyword index with each stem's postings read best first, {DEPTH} at most \
(`bench/quality/fusion.py`; p50 {ms(r.latency, 50):.1f} ms, p95 {ms(r.latency, 95):.1f} ms per paper here). \
Each ranking's top {CANDIDATES} is fused: reciprocal rank fusion (k = {RRF_K}) with the BM25 ranking at full or \
quarter weight, a weighted sum of the cosine and the BM25 score scaled by its best, or BM25 only reordering \
the dense top 20. Same proxies and query papers as above ({K} results each). The title-words proxy is lexical, \
so it favours the BM25 ranking by construction; the same-listing proxy is not lexical but weak.

{table(headers, rows, align="lrrrr")}"""


def conclusion(r: FusionResult) -> str:
    """The fusion bullet: whether any fusion beats dense neighbours on both proxies, hence what the product does."""
    base = r.row(DENSE).scores
    fused = [x for x in r.rows if x.method not in (DENSE, MLT)]
    best_rare = max(fused, key=lambda x: x.scores[RARE_WORDS][0])
    best_listing = max(fused, key=lambda x: x.scores[SAME_LISTING][0])
    winners = r.better_on_both()
    verdict = (
        f"{', '.join(x.method for x in winners)} beats dense neighbours on both proxies"
        if winners
        else "no fusion beats dense neighbours on both, so `similar_papers` and recommendations keep dense neighbours"
        " alone"
    )
    return (
        f"- **Similar papers fused with BM25 more-like-this**: on the {RARE_WORDS} proxy (lexical) the best fusion,"
        f" {best_rare.method}, reaches nDCG@10 {best_rare.scores[RARE_WORDS][0]:.3f} against"
        f" {base[RARE_WORDS][0]:.3f} for dense neighbours (BM25 alone {r.row(MLT).scores[RARE_WORDS][0]:.3f}); on the"
        f" {SAME_LISTING} proxy the best fusion, {best_listing.method}, has {best_listing.scores[SAME_LISTING][0]:.3f}"
        f" against {base[SAME_LISTING][0]:.3f} (BM25 alone {r.row(MLT).scores[SAME_LISTING][0]:.3f}): {verdict}."
        " No category-labelled set is available offline here, so the arXiv category test of issue 12 is not rerun."
    )
