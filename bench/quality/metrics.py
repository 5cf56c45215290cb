"""Ranking metrics at k: nDCG, recall and MRR for one relevant document or graded gains; latency percentiles."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

K = 10


def rank_of(ranked: Sequence[str], target: str) -> int | None:
    """1-based rank of target in ranked, None when absent."""
    return next((i for i, doc in enumerate(ranked, start=1) if doc == target), None)


@dataclasses.dataclass(frozen=True)
class Scores:
    """Single-relevant-document metrics over a set of queries."""

    n: int
    ndcg: float
    recall: float
    mrr: float
    top5: float
    missed: int


def single_target(ranks: Sequence[int | None], k: int = K) -> Scores:
    """nDCG@k, recall@k, MRR@k and the top-5 share with one relevant document per query (None = not found)."""
    hit = [r for r in ranks if r is not None and r <= k]
    n = max(len(ranks), 1)
    return Scores(
        n=len(ranks),
        ndcg=sum(1 / math.log2(r + 1) for r in hit) / n,
        recall=len(hit) / n,
        mrr=sum(1 / r for r in hit) / n,
        top5=sum(1 for r in hit if r <= 5) / n,
        missed=len(ranks) - len(hit),
    )


def graded(ranked: Sequence[str], gains: Mapping[str, float], k: int = K) -> tuple[float, float]:
    """nDCG@k with graded gains and capped recall@k = relevant in the top k / min(#relevant, k)."""
    top = list(ranked[:k])
    dcg = sum(gains.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(top))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    hits = sum(1 for d in top if gains.get(d, 0.0) > 0)
    return (dcg / idcg if idcg else 0.0), hits / min(len(gains), k)


def ms(seconds: Sequence[float], q: float) -> float:
    """The q-th percentile of durations in seconds, in milliseconds (NaN when there are none)."""
    return float(np.percentile(seconds, q)) * 1000 if seconds else float("nan")
