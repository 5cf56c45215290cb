"""Section 3: which text to embed (title only, or title + abstract cut at 128/256/512 word pieces) and on which
backend (torch fp32 or ONNX Runtime int8), per CPU second."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence

import numpy as np

from bench.harness.report import fmt, table
from bench.quality.metrics import K, graded, rank_of, single_target
from bench.quality.queries import KINDS, QuerySet
from bench.quality.report import load_average
from bench.quality.seeds import MODELS, Paper, Seeds
from bench.quality.similar import Gains
from ingest import embedder as product_embedder
from ingest.embedder import LocalEmbedder, OnnxEmbedder, embedding_text


@dataclasses.dataclass(frozen=True)
class Variant:
    """A text to embed: the title alone or title + abstract, cut at max_tokens word pieces, on a backend."""

    label: str
    abstract: bool
    max_tokens: int
    backend: str = "torch"  # torch (fp32) or onnx (int8)

    def name(self) -> str:
        """How the report names it."""
        text = f"{self.label} at {self.max_tokens} tokens" if self.abstract else self.label
        return f"{text} ({self.backend})"

    def encoder(self) -> LocalEmbedder | OnnxEmbedder:
        """The product's embedder for this variant."""
        if self.backend == "onnx":
            return OnnxEmbedder(MODELS, max_tokens=self.max_tokens)
        return LocalEmbedder(max_tokens=self.max_tokens)


TORCH_256 = Variant("title + abstract", True, 256)  # the torch fp32 embedder shipped before ONNX
VARIANTS = (
    Variant("title only", False, 256),
    Variant("title + abstract", True, 128),
    TORCH_256,
    Variant("title + abstract", True, 128, "onnx"),
    Variant("title + abstract", True, 192, "onnx"),
    Variant("title + abstract", True, 256, "onnx"),
)
EXTRA = Variant("title + abstract", True, 512)  # timed once: the slowest, and an extra beyond the model's design
# What the product embeds by default (ingest/embedder.py; the default backend is ONNX).
CODE = Variant("title + abstract", True, product_embedder.MAX_TOKENS, "onnx")
BACKEND_SLACK = 0.01  # how much quality the ONNX backend may lose against torch fp32 and still be the default


@dataclasses.dataclass
class Measured:
    """One variant's encode cost and retrieval quality."""

    variant: Variant
    texts: int
    cut: int  # texts longer than max_tokens
    walls: list[float]
    cpus: list[float]
    ndcg: dict[str, float]  # query type -> nDCG@10
    similar: float  # similar-paper nDCG@10 against the rare-title-words proxy

    @property
    def mean(self) -> float:
        """nDCG@10 averaged over the query types (they favour opposite variants)."""
        return statistics.mean(self.ndcg[k] for k in KINDS)

    @property
    def cpu_ms(self) -> float:
        """Median process CPU milliseconds (all threads) per paper."""
        return statistics.median(self.cpus) / self.texts * 1000

    @property
    def rate(self) -> float:
        """Median papers per wall-clock second."""
        return self.texts / statistics.median(self.walls)


@dataclasses.dataclass
class TextResult:
    """Every variant measured, with the conditions of the measurement."""

    measured: list[Measured]
    runs: int
    threads: int
    load_before: str
    load_after: str
    tokens: list[int]  # word pieces of title + abstract per paper
    title_tokens: list[int]
    slack: float
    per_kind: dict[str, int]  # queries per type

    def best_mean(self) -> float:
        """The best mean nDCG@10 of any variant."""
        return max(m.mean for m in self.measured)

    def chosen(self) -> Measured:
        """The cheapest torch variant (CPU per paper) within `slack` of the best mean nDCG@10: which text to embed."""
        torch = [m for m in self.measured if m.variant.backend == "torch"]
        best = max(m.mean for m in torch)
        return min((m for m in torch if m.mean >= best - self.slack), key=lambda m: m.cpu_ms)

    def onnx_choice(self) -> Measured | None:
        """The cheapest ONNX variant whose mean and similar-paper nDCG@10 are both within BACKEND_SLACK of torch fp32
        on the chosen text (None: torch stays the default)."""
        base = self.chosen()
        fit = [
            m
            for m in self.measured
            if m.variant.backend == "onnx"
            and m.mean >= base.mean - BACKEND_SLACK
            and m.similar >= base.similar - BACKEND_SLACK
        ]
        return min(fit, key=lambda m: m.cpu_ms) if fit else None

    def of(self, variant: Variant) -> Measured | None:
        """A variant's measurement, if it was measured."""
        return next((m for m in self.measured if m.variant == variant), None)


def _timed_encodes(
    encoders: Sequence[LocalEmbedder | OnnxEmbedder],
    texts: Sequence[Sequence[str]],
    runs: Sequence[int],
) -> tuple[list[np.ndarray], list[list[float]], list[list[float]]]:
    """Encode each variant's texts `runs[i]` times, round robin, so drift in machine load hits all alike."""
    vectors: list[np.ndarray] = [np.zeros(0) for _ in encoders]
    walls: list[list[float]] = [[] for _ in encoders]
    cpus: list[list[float]] = [[] for _ in encoders]
    for run in range(max(runs)):
        for i, encoder in enumerate(encoders):
            if run >= runs[i]:
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            vectors[i] = encoder.encode(texts[i])
            walls[i].append(time.perf_counter() - wall)
            cpus[i].append(time.process_time() - cpu)
    return vectors, walls, cpus


def _quality(
    vectors: np.ndarray, encoder: LocalEmbedder | OnnxEmbedder, papers: Sequence[Paper], queries: QuerySet, gains: Gains
) -> tuple[dict[str, float], float]:
    """Exact cosine ranking in numpy: nDCG@10 per query type, and similar-paper nDCG@10 against `gains`."""
    ids = [p.id for p in papers]
    texts = queries.texts()
    query_vectors = dict(zip(texts, encoder.encode(texts), strict=True))
    ndcg = {}
    for kind in KINDS:
        ranks = [
            rank_of([ids[j] for j in np.argsort(-(vectors @ query_vectors[q.text]), kind="stable")[:K]], q.target)
            for q in queries.labelled[kind]
        ]
        ndcg[kind] = single_target(ranks).ndcg
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    row = {pid: i for i, pid in enumerate(ids)}
    similar = statistics.mean(
        graded([ids[j] for j in np.argsort(-sims[row[pid]], kind="stable")[:K]], g)[0] for pid, g in gains.items() if g
    )
    return ndcg, similar


def measure(seeds: Seeds, queries: QuerySet, gains: Gains, *, runs: int, extra: bool, slack: float) -> TextResult:
    """Encode the seed papers as each variant (timed), then score each variant's vectors on the same queries."""
    import torch

    variants = [*VARIANTS, EXTRA] if extra else list(VARIANTS)
    full = [embedding_text(p.title, p.abstract) for p in seeds.papers]
    titles = [p.title for p in seeds.papers]
    tokenizer = LocalEmbedder().load().tokenizer
    tokens = [len(tokenizer(t, truncation=False)["input_ids"]) for t in full]
    title_tokens = [len(tokenizer(t, truncation=False)["input_ids"]) for t in titles]
    texts = [full if v.abstract else titles for v in variants]
    encoders = [v.encoder() for v in variants]
    for encoder, batch in zip(encoders, texts, strict=True):
        encoder.encode(batch[:16])  # loads the model and warms it up outside the timing
    load_before = load_average()
    vectors, walls, cpus = _timed_encodes(encoders, texts, [1 if v is EXTRA else runs for v in variants])
    load_after = load_average()
    measured = []
    for i, v in enumerate(variants):
        lengths = tokens if v.abstract else title_tokens
        ndcg, similar = _quality(vectors[i], encoders[i], seeds.papers, queries, gains)
        cut = sum(1 for n in lengths if n > v.max_tokens)
        measured.append(Measured(v, len(texts[i]), cut, walls[i], cpus[i], ndcg, similar))
    per_kind = {kind: len(queries.labelled[kind]) for kind in KINDS}
    return TextResult(
        measured, runs, torch.get_num_threads(), load_before, load_after, tokens, title_tokens, slack, per_kind
    )


def render(r: TextResult) -> str:
    """Section 3 of the report."""
    rows = [
        (
            m.variant.label + ("" if m.variant.abstract else f" (at most {max(r.title_tokens)} tokens)"),
            "torch fp32" if m.variant.backend == "torch" else "onnx int8",
            m.variant.max_tokens if m.variant.abstract else "-",
            f"{m.cut}/{m.texts}",
            fmt(m.rate, 1) + ("" if len(m.walls) > 1 else " (1 run)"),
            fmt(m.cpu_ms, 1),
            *(fmt(m.ndcg[k], 3) for k in KINDS),
            fmt(m.mean, 3),
            fmt(m.similar, 3),
        )
        for m in r.measured
    ]
    headers = (
        "text",
        "backend",
        "max tokens",
        "texts cut",
        "papers/s",
        "CPU ms/paper",
        *(f"nDCG@10 {k}" for k in KINDS),
        "nDCG@10 mean",
        "similar nDCG@10 (title-word proxy)",
    )
    n = r.measured[0].texts
    extra = f" (the {EXTRA.max_tokens} row is an extra with one run)" if r.of(EXTRA) else ""
    runs = (
        f"Throughput is the median of {r.runs} runs, taken round robin over the variants so that changes in machine"
        f" load hit all of them alike{extra}"
        if r.runs > 1
        else "Throughput is from a single run of each variant"
    )
    return f"""## 3. Which text to embed: quality per second

Each variant encodes the same {n} texts with `LocalEmbedder(max_tokens=...).encode` (torch fp32, batches of 32) \
or `OnnxEmbedder(max_tokens=...).encode` (ONNX Runtime, int8 weights, one text per call, as many calls at once \
as cores); longer texts are cut, after a warm-up batch. {runs}. *CPU ms/paper* is the process's CPU time \
(all threads) per paper: it is much less sensitive than wall time to other work on the machine, so the choice \
below uses it (torch threads: {r.threads}; load average 1/5/15 min before: {r.load_before}, after: \
{r.load_after}). Quality is exact cosine ranking in numpy over the {n} vectors (no index) with the queries \
embedded by the same embedder: nDCG@10 on the section 1 queries, and similar-paper nDCG@10 against the \
shared-rare-title-words proxy of section 2. Word pieces of title + abstract: median \
{statistics.median(r.tokens):.0f}, p95 {np.percentile(r.tokens, 95):.0f}, max {max(r.tokens)} (titles alone: max \
{max(r.title_tokens)}). The reworded-title queries and the title-word proxy are built from titles, so they favour \
title-only vectors; the abstract-sentence queries favour long windows (a sentence past the cut is not in the \
vector). The mean of the two query types balances these biases.

{table(headers, rows, align="llrrrrrrrr")}"""


def _longer_window(r: TextResult) -> str:
    """What the extra 512-token window buys over 256, when both were measured."""
    long, base = r.of(EXTRA), r.of(TORCH_256)
    if not (long and base):
        return ""
    worth = 1 / min(r.per_kind.values())
    return (
        f" Going to {EXTRA.max_tokens} tokens costs {long.cpu_ms / base.cpu_ms:.1f}x the CPU of 256 for"
        f" {long.mean - base.mean:+.3f} mean nDCG@10 (one query is worth {worth:.3f}); the model card says the"
        " model was trained on sequences of at most 128 tokens, so 256 is already beyond its training length."
    )


def conclusion(r: TextResult) -> str:
    """The text-to-embed bullet: the computed choice, why the others lose, and whether the code agrees."""
    chosen = r.chosen()
    title = r.of(VARIANTS[0])
    short = r.of(VARIANTS[1])
    parts = [
        f"- **Text to embed**: the cheapest torch variant (CPU ms per paper) whose mean nDCG@10 over the two query"
        f" types is within {r.slack} of the best ({r.best_mean():.3f}) is **{chosen.variant.name()}**"
        f" ({chosen.mean:.3f}, {chosen.cpu_ms:.0f} CPU ms/paper)."
    ]
    if title:
        best_title = max(r.measured, key=lambda m: m.ndcg[KINDS[0]]) is title
        parts.append(
            f" Title only costs {title.cpu_ms:.0f} CPU ms/paper"
            + (" and is the best on title-derived queries" if best_title else "")
            + f" but finds few papers from abstract content ({title.ndcg[KINDS[1]]:.2f})."
        )
    if short:
        parts.append(
            f" Cutting at {short.variant.max_tokens} tokens cuts {short.cut} of {short.texts} texts"
            f" (abstract-sentence nDCG@10 {short.ndcg[KINDS[1]]:.2f})."
        )
    parts.append(_longer_window(r))
    parts.append("\n" + _backend(r))
    return "".join(parts)


def _backend(r: TextResult) -> str:
    """The backend bullet: each ONNX variant against torch fp32, the computed default, and whether the code agrees."""
    base, pick = r.chosen(), r.onnx_choice()
    deltas = "; ".join(
        f"{m.variant.max_tokens} tokens: mean nDCG@10 {m.mean:.3f} ({m.mean - base.mean:+.3f}), similar"
        f" {m.similar:.3f} ({m.similar - base.similar:+.3f}), {base.cpu_ms / m.cpu_ms:.1f}x less CPU per paper"
        for m in r.measured
        if m.variant.backend == "onnx"
    )
    head = (
        f"- **Backend**: against torch fp32 on {base.variant.name()} (mean nDCG@10 {base.mean:.3f}, similar"
        f" {base.similar:.3f}, {base.cpu_ms:.0f} CPU ms/paper), ONNX int8 at {deltas}."
    )
    if pick is None:
        return head + f" No ONNX variant stays within {BACKEND_SLACK} on both: torch fp32 should stay the default."
    agrees = pick.variant == CODE
    return head + (
        f" The cheapest within {BACKEND_SLACK} of torch on both is **{pick.variant.name()}**. The code embeds"
        f" {CODE.name()} by default (`ingest/embedder.py`, `PAPERS_EMBEDDER_BACKEND`): "
        + ("consistent with this measurement." if agrees else "this measurement points to another choice.")
    )
