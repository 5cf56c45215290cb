"""Section 1, continued: the issue's quality targets, and how other fusions of the same two rankings would rank.

Hybrid search fuses the keyword top 50 and the HNSW top 50 by a convex combination of min-max normalised scores
(BM25 and cosine each scaled to [0, 1] within its own top 50, BM25 weighted 0.7; `api.services.search.fuse`). Here
the same two rankings of every labelled query and description are fused again by other rules, offline, so that a
change of rule can be judged on the same queries: reciprocal rank fusion (k = 60, the rule shipped before, 10, 1)
and another weight.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

import asyncpg

from api.services.search import HYBRID_KEYWORD_HITS, HYBRID_KEYWORD_WEIGHT, QueryEmbeddings, fuse, search_papers
from bench.harness.report import Target, fmt, table
from bench.quality.metrics import K, rank_of, single_target
from bench.quality.queries import KINDS, QuerySet
from schema.api import SearchMode
from schema.paging import PageRequest

# nDCG@10 before issue 12 (docs/similarity.md at d5892e0: torch fp32 vectors, keyword search requiring every word).
BEFORE = {
    ("reworded title", "keyword"): 0.426,
    ("reworded title", "semantic"): 0.933,
    ("reworded title", "hybrid"): 0.937,
    ("abstract sentence", "keyword"): 0.996,
    ("abstract sentence", "semantic"): 0.796,
    ("abstract sentence", "hybrid"): 1.000,
}
KEYWORD_REWORDED = Target(at_least=0.6)  # issue 12: keyword mode on reworded titles

RRF_K = 60  # the constant of Cormack et al. (2009), hybrid search's fusion until the measurement below
Scored = list[tuple[str, float]]  # (paper id, score), best first
Rule = Callable[[Scored, Scored], list[str]]


def rrf(keyword: Scored, semantic: Scored, k: int) -> list[str]:
    """Reciprocal rank fusion with constant k; ties keep the keyword ranking first, as the product does."""
    scores: dict[str, float] = collections.defaultdict(float)
    for ranking in (keyword, semantic):
        for rank, (pid, _) in enumerate(ranking, start=1):
            scores[pid] += 1 / (k + rank)
    return sorted(scores, key=lambda pid: -scores[pid])


def convex(keyword: Scored, semantic: Scored, alpha: float) -> list[str]:
    """alpha x min-max BM25 + (1 - alpha) x min-max cosine, as hybrid search fuses (`fuse`)."""
    return [pid for pid, _ in fuse([(keyword, alpha), (semantic, 1 - alpha)])]


RULES: dict[str, Rule] = {
    f"min-max convex, BM25 weight {HYBRID_KEYWORD_WEIGHT} (shipped)": lambda kw, sem: convex(
        kw, sem, HYBRID_KEYWORD_WEIGHT
    ),
    f"RRF k = {RRF_K}": lambda kw, sem: rrf(kw, sem, RRF_K),
    "RRF k = 10": lambda kw, sem: rrf(kw, sem, 10),
    "RRF k = 1": lambda kw, sem: rrf(kw, sem, 1),
    "min-max convex, BM25 weight 0.5": lambda kw, sem: convex(kw, sem, 0.5),
    f"min-max convex, BM25 weight {HYBRID_KEYWORD_WEIGHT}, HNSW top 20 only": lambda kw, sem: convex(
        kw, sem[:20], HYBRID_KEYWORD_WEIGHT
    ),
}


@dataclasses.dataclass
class FusionRanks:
    """Per rule: the ranks of each query type's papers, and of the described papers."""

    ranks: dict[str, dict[str, list[int | None]]]  # rule -> query type -> ranks
    described: dict[str, list[int | None]]  # rule -> rank per description


async def _rankings(conn: asyncpg.Connection, embeddings: QueryEmbeddings, text: str) -> tuple[Scored, Scored]:
    """The keyword and the semantic top HYBRID_KEYWORD_HITS, with their scores, as hybrid search gets them."""

    async def ranked(mode: SearchMode) -> Scored:
        page = await search_papers(conn, embeddings, text, PageRequest(HYBRID_KEYWORD_HITS), mode=mode)
        return [(h.id, h.score) for h in page.items]

    return await ranked("keyword"), await ranked("semantic")


async def measure(conn: asyncpg.Connection, embeddings: QueryEmbeddings, queries: QuerySet) -> FusionRanks:
    """Each query's two rankings, fused by every rule."""
    ranks: dict[str, dict[str, list[int | None]]] = {rule: {kind: [] for kind in KINDS} for rule in RULES}
    for kind in KINDS:
        for q in queries.labelled[kind]:
            keyword, semantic = await _rankings(conn, embeddings, q.text)
            for rule, combine in RULES.items():
                ranks[rule][kind].append(rank_of(combine(keyword, semantic), q.target))
    described: dict[str, list[int | None]] = {rule: [] for rule in RULES}
    for d in queries.described:
        pair = await _rankings(conn, embeddings, d.text) if d.paper else None
        for rule, combine in RULES.items():
            described[rule].append(rank_of(combine(*pair), d.paper.id) if pair and d.paper else None)
    return FusionRanks(ranks, described)


def targets(ndcg: Callable[[str, str], float]) -> tuple[list[str], list[str]]:
    """(met, missed) of the issue's quality targets, given nDCG@10 by (query type, mode)."""
    met: list[str] = []
    missed: list[str] = []
    for (kind, mode), before in BEFORE.items():
        now = ndcg(kind, mode)
        (met if now >= before else missed).append(f"{mode} on {kind}s {now:.3f} vs {before:.3f}")
    now = ndcg("reworded title", "keyword")
    (met if KEYWORD_REWORDED.verdict(now) == "met" else missed).append(f"keyword on reworded titles {now:.3f} ≥ 0.6")
    return met, missed


def render(r: FusionRanks, ndcg: Callable[[str, str], float]) -> str:
    """The targets and the fusion-rule table."""
    rows = [(kind, mode, fmt(before, 3), fmt(ndcg(kind, mode), 3)) for (kind, mode), before in BEFORE.items()]
    before = table(("query type", "mode", "nDCG@10 before issue 12", "nDCG@10 now"), rows, align="llrr")
    fused = []
    for rule in RULES:
        scores = [single_target(r.ranks[rule][kind]) for kind in KINDS]
        described = ", ".join(str(x) if x else f">{K}" for x in r.described[rule])
        fused.append((rule, *(fmt(s.ndcg, 3) for s in scores), *(f"{s.missed}/{s.n}" for s in scores), described))
    headers = ("fusion rule", *(f"nDCG@10 {k}" for k in KINDS), *(f"missed {k}" for k in KINDS), "description ranks")
    return f"""### Against the figures before issue 12, and other fusion rules

Issue 12's targets: nDCG@10 of every mode at least its figure before the issue (docs/similarity.md at d5892e0: \
torch fp32 vectors, keyword search requiring every word), keyword mode on reworded titles ≥ 0.6.

{before}

Hybrid search's two rankings (keyword top {HYBRID_KEYWORD_HITS} by BM25, HNSW top {HYBRID_KEYWORD_HITS} by \
cosine) fused again offline by other rules, on the same queries (the first row is what `search_papers` does; \
`bench/quality/hybrid.py`):

{table(headers, fused, align="lrrrrl")}"""


def conclusion(r: FusionRanks, ndcg: Callable[[str, str], float]) -> str:
    """The targets bullet, and which fusion rule does best here."""
    met, missed = targets(ndcg)

    def mean(rule: str) -> float:
        return sum(single_target(r.ranks[rule][k]).ndcg for k in KINDS) / len(KINDS)

    best = max(RULES, key=mean)
    shipped = next(iter(RULES))
    return (
        f"- **Issue 12 quality targets**: met {len(met)} of {len(met) + len(missed)}"
        + (f"; missed: {'; '.join(missed)}" if missed else "")
        + f". Of the hybrid fusion rules tried on the same rankings, {best} has the best mean nDCG@10"
        + (
            f" ({mean(best):.3f})"
            if best == shipped
            else f" ({mean(best):.3f}, against {mean(shipped):.3f} for {shipped}: reconsider the rule)"
        )
        + "; these queries reuse the paper's own words, so they favour rules that lean on BM25."
    )
