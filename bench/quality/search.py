"""Section 1: keyword, semantic and hybrid search on the labelled queries, and the hand-written descriptions."""

from __future__ import annotations

import dataclasses
import inspect
import statistics
import time

import asyncpg

from api.services.search import Budget, QueryEmbeddings, search_papers
from bench.harness.report import Target, fmt, table
from bench.quality.metrics import K, Scores, ms, rank_of, single_target
from bench.quality.queries import KINDS, QuerySet
from schema.api import SearchMode
from schema.paging import PageRequest

MODES: tuple[SearchMode, ...] = ("keyword", "semantic", "hybrid")
FOUND = Target(at_most=5)  # the done-when check: a description's paper ranks in the top 5
CHECKED_MODES = ("semantic", "hybrid")  # keyword search is not expected to find a paraphrase
# Why a mode fails on a query type, said only when the measurement shows that type as the mode's weakest.
WHY = {
    ("keyword", "reworded title"): "a swapped synonym matches nothing, and the words kept also match other titles",
    ("semantic", "abstract sentence"): "one sentence from deep in an abstract is a small part of the paper's vector",
}
DEFAULT_MODE = inspect.signature(search_papers).parameters["mode"].default

# The evaluation embeds its whole query set; a client request may embed only a few texts.
UNBOUNDED = Budget(texts=1_000_000_000)


@dataclasses.dataclass
class SearchResult:
    """Ranks of each query's paper per query type and mode, latencies, and the descriptions' ranks."""

    queries: QuerySet
    papers: int
    ranks: dict[tuple[str, str], list[int | None]]
    latency: dict[str, list[float]]
    embed_seconds: list[float]
    described: list[dict[str, int | None]]  # per description: mode -> rank

    def scores(self, kind: str, mode: str) -> Scores:
        """The metrics of one query type in one mode."""
        return single_target(self.ranks[(kind, mode)])

    def mean_ndcg(self, mode: str) -> float:
        """nDCG@10 of a mode averaged over the query types (each type weighs the same)."""
        return statistics.mean(self.scores(kind, mode).ndcg for kind in KINDS)

    def described_ok(self, ranks: dict[str, int | None]) -> bool:
        """Whether a description's paper is found in the top 5 in every checked mode."""
        return bool(ranks) and all(FOUND.verdict(ranks.get(m)) == "met" for m in CHECKED_MODES)

    def done(self) -> bool:
        """The done-when check: every description passes."""
        return all(self.described_ok(r) for r in self.described)


async def _search(
    conn: asyncpg.Connection,
    embeddings: QueryEmbeddings,
    text: str,
    target: str,
    mode: SearchMode,
) -> tuple[int | None, float]:
    started = time.perf_counter()
    hits = (await search_papers(conn, embeddings, text, PageRequest(K), mode=mode)).items
    return rank_of([h.id for h in hits], target), time.perf_counter() - started


async def measure(
    conn: asyncpg.Connection,
    embeddings: QueryEmbeddings,
    queries: QuerySet,
    papers: int,
) -> SearchResult:
    """Embed every query once (timed), then run each through search_papers in each mode."""
    embed_seconds = []
    for text in queries.texts():  # cached afterwards, so search latency below excludes the model
        started = time.perf_counter()
        await embeddings.vector(text, UNBOUNDED)
        embed_seconds.append(time.perf_counter() - started)
    ranks: dict[tuple[str, str], list[int | None]] = {}
    latency: dict[str, list[float]] = {mode: [] for mode in MODES}
    for kind in KINDS:
        for mode in MODES:
            found = [await _search(conn, embeddings, q.text, q.target, mode) for q in queries.labelled[kind]]
            ranks[(kind, mode)] = [rank for rank, _ in found]
            latency[mode] += [seconds for _, seconds in found]
    described: list[dict[str, int | None]] = []
    for d in queries.described:
        if d.paper is None:
            described.append({})
            continue
        paper = d.paper
        described.append({mode: (await _search(conn, embeddings, d.text, paper.id, mode))[0] for mode in MODES})
    return SearchResult(queries, papers, ranks, latency, embed_seconds, described)


def _quality_table(r: SearchResult) -> str:
    rows = []
    for kind in KINDS:
        for mode in MODES:
            s = r.scores(kind, mode)
            rows.append((kind, s.n, mode, *(fmt(v, 3) for v in (s.ndcg, s.recall, s.mrr, s.top5)), f"{s.missed}/{s.n}"))
    headers = ("query type", "n", "mode", "nDCG@10", "recall@10", "MRR@10", "in top 5", "missed")
    return table(headers, rows, align="lrlrrrrr")


def _described_table(r: SearchResult) -> str:
    rows: list[tuple[object, ...]] = []
    for d, ranks in zip(r.queries.described, r.described, strict=True):
        if d.paper is None:
            rows.append((d.prefix, f"`{d.text}`", "-", "-", "-", "paper not in the seeds"))
            continue
        name = d.paper.title.split(":")[0] if ":" in d.paper.title else d.prefix
        rows.append(
            (
                f"{d.paper.id} ({name})",
                f"`{d.text}`",
                *(ranks[m] or f">{K}" for m in MODES),
                "yes" if r.described_ok(ranks) else "NO",
            )
        )
    headers = ("paper", "description (query)", *MODES, f"top 5 in {' and '.join(CHECKED_MODES)}")
    return table(headers, rows, align="llrrrl")


def render(r: SearchResult) -> str:
    """Section 1 of the report."""
    n = statistics.mean(len(r.queries.labelled[kind]) for kind in KINDS)
    example = r.queries.labelled["reworded title"][0]
    latency = table(
        ("mode", "p50 ms", "p95 ms"), [(m, fmt(ms(r.latency[m], 50), 1), fmt(ms(r.latency[m], 95), 1)) for m in MODES]
    )
    top5 = ", ".join(f"{m} puts {r.scores('reworded title', m).top5:.0%} in the top 5" for m in MODES)
    return f"""## 1. Search quality on labelled queries

A sample of {r.queries.sampled} seed papers (seed {r.queries.seed}) gives two queries each, and the one relevant \
document of each query is the paper it came from:

- **reworded title**: the title without a leading one-word `Acronym:` head, lower-cased, with synonyms swapped from \
a small hand-written table (model->network, learning->training, efficient->fast, method->approach, large language \
model->LLM, generation->synthesis, image->picture, ...; see `WORD_SYNONYMS` and `PHRASE_SYNONYMS` in \
`bench/quality/queries.py`), stop words dropped and the remaining words shuffled. This imitates someone who \
remembers what a paper is about but not its wording.
- **abstract sentence**: one sentence from the middle of the abstract (never the first; at least six words when \
there is such a sentence). Its words are all in the paper, so keyword search is expected to do well here; semantic \
search must find a paper from one of its later sentences.

Each query runs through `api.services.search.search_papers(conn, QueryEmbeddings(embedder), q, mode=..., \
limit={K})`. nDCG@10 with a single relevant document is 1/log2(rank+1) when it is in the top 10, else 0; recall@10 \
is the share of queries whose paper is in the top 10; MRR@10 is the mean of 1/rank (0 outside the top 10); top-5 is \
the share found in the first five; with about {n:.0f} queries per type one query is worth {1 / n:.3f}. *Missed* \
counts queries whose paper is not in the top 10 (keyword search ranks any word by BM25; a swapped synonym matches \
nothing).

{_quality_table(r)}

Search latency per query (query vectors cached first; embedding one query took median \
{ms(r.embed_seconds, 50):.1f} ms, p95 {ms(r.embed_seconds, 95):.1f} ms):

{latency}

Example of a generated reworded-title query: `{example.text}` (for paper `{example.target}`; the seed text itself \
is not reproduced here).

### Done-when check: a reworded description finds its paper in the top 5

Descriptions written by hand in our own words (none of them copies title or abstract wording beyond common terms); \
ranks out of {r.papers} papers:

{_described_table(r)}

Result: {"PASS" if r.done() else "FAIL"}. Over the generated reworded titles, {top5}."""


def conclusion(r: SearchResult) -> str:
    """The search-modes bullet: modes ranked by measurement, each single mode's weak query type, the default."""
    ranking = sorted(MODES, key=r.mean_ndcg, reverse=True)
    order = " > ".join(f"{m} {r.mean_ndcg(m):.2f}" for m in ranking)
    weak = []
    for mode in MODES:
        kind = min(KINDS, key=lambda k: r.scores(k, mode).ndcg)
        why = f": {WHY[(mode, kind)]}" if (mode, kind) in WHY else ""
        weak.append(f"{mode} on {kind}s ({r.scores(kind, mode).ndcg:.2f}{why})")
    singles = [m for m in MODES if m != "hybrid"]
    shortfall = max(max(r.scores(k, m).ndcg for m in singles) - r.scores(k, "hybrid").ndcg for k in KINDS)
    hybrid = (
        "at least as good as the better single mode on both query types"
        if shortfall <= 0
        else f"at most {shortfall:.3f} below the better single mode on each query type"
    )
    default = (
        "consistent with this ranking"
        if ranking[0] == DEFAULT_MODE
        else f"but {ranking[0]} ranks first here: reconsider the default"
    )
    checked = " and ".join(CHECKED_MODES)
    verdict = "met" if r.done() else "missed"
    return (
        f"- **Search modes**, ranked by nDCG@10 averaged over the two query types: {order}."
        f" Weakest query type per mode: {'; '.join(weak)}."
        f" Hybrid (fused) is {hybrid}. `search_papers` defaults to {DEFAULT_MODE}: {default}."
        f" Done-when check {verdict}: {sum(map(r.described_ok, r.described))} of {len(r.described)} hand-written"
        f" descriptions find their paper in the top 5 in {checked} search."
    )
