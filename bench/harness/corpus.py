"""A seeded generator of realistic synthetic listings, with clustered (not uniform) vectors.

Papers belong to topics; a topic has its own vocabulary, so titles and abstracts of one topic share
words (full-text search has something to find), and its vectors scatter around a topic centroid
(HNSW sees the clustered structure real embeddings have).

    python -m bench.harness.corpus --papers 10000 --out /tmp/corpus     # writes listings as JSON Lines
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np


def _words(text: str) -> list[str]:
    """A vocabulary written as prose."""
    return text.split()


_COMMON = _words(
    "we propose a method that improves results across benchmarks while reducing cost our analysis shows "
    "consistent gains over strong baselines and ablations confirm each component matters in experiments "
    "on several datasets the approach scales and generalizes"
)
_STEMS = _words(
    "graph token reward policy diffusion retrieval attention memory agent planner sparse latent "
    "contrastive visual speech protein molecule code tabular robot quantization distillation pruning "
    "alignment preference curriculum federated causal symbolic kernel spectral fourier transport manifold "
    "energy flow score prompt reasoning verifier search tool instruction"
)
_SHAPES = (
    "{A} {B} for {C} {D}",
    "Scaling {A} {B} with {C}",
    "{A}-{B}: Efficient {C} {D}",
    "Towards {A} {C} via {B} {D}",
    "On the {A} of {B} {C}",
    "Learning {A} {B} without {C}",
)
_NOUNS = _words(
    "models networks learning inference training estimation generation representations transformers "
    "optimization benchmarks evaluation"
)


class SyntheticPaper(NamedTuple):
    """One generated paper: its text, listing day, topic and vector."""

    title: str
    abstract: str
    listed_on: dt.date
    topic: int


class Corpus(NamedTuple):
    """Generated papers and their unit vectors (rows aligned)."""

    papers: list[SyntheticPaper]
    vectors: np.ndarray


def _topic_words(rng: np.random.Generator, topics: int) -> np.ndarray:
    suffixes = ["", "ic", "ing", "ed", "ive"]
    return np.array([[f"{rng.choice(_STEMS)}{rng.choice(suffixes)}" for _ in range(24)] for _ in range(topics)])


def generate(
    n: int,
    *,
    seed: int = 7,
    topics: int = 64,
    dim: int = 384,
    spread: float = 0.35,
    start: dt.date = dt.date(2023, 1, 2),
) -> Corpus:
    """Generate n papers over n/150 daily listings, with clustered unit vectors."""
    rng = np.random.default_rng(seed)
    vocab = _topic_words(rng, topics)
    centroids = rng.normal(size=(topics, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    assigned = rng.integers(0, topics, size=n)
    noise = rng.normal(scale=spread / np.sqrt(dim), size=(n, dim)).astype(np.float32)
    vectors = centroids[assigned] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    common = np.array(_COMMON)
    papers = []
    for i in range(n):
        words = vocab[assigned[i]]
        a, b, c = (str(w).capitalize() for w in words[rng.integers(0, len(words), 3)])
        title = _SHAPES[i % len(_SHAPES)].format(A=a, B=b, C=c, D=_NOUNS[i % len(_NOUNS)]) + f" ({i})"
        length = int(rng.integers(120, 220))
        topical = rng.random(length) < 0.35
        body = np.where(
            topical, words[rng.integers(0, len(words), length)], common[rng.integers(0, len(common), length)]
        )
        abstract = " ".join(body.tolist()).capitalize() + "."
        papers.append(SyntheticPaper(title, abstract, start + dt.timedelta(days=i // 150), int(assigned[i])))
    return Corpus(papers, vectors.astype(np.float32))


def near(vectors: np.ndarray, count: int, *, noise: float = 0.1, seed: int = 11) -> np.ndarray:
    """`count` queries near the corpus: random rows plus Gaussian noise of norm `noise`, normalized (near a paper,
    never one exactly)."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.choice(len(vectors), count, replace=False)]
    queries = picked + rng.normal(scale=noise / np.sqrt(vectors.shape[1]), size=picked.shape).astype(np.float32)
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def listings(corpus: Corpus, per_listing: int = 150) -> Iterator[tuple[str, bytes]]:
    """The corpus as JSON Lines listings (name, bytes), one per listing day."""
    for start in range(0, len(corpus.papers), per_listing):
        chunk = corpus.papers[start : start + per_listing]
        rows = [
            json.dumps({"title": p.title, "abstract": p.abstract, "listed_on": p.listed_on.isoformat()}) for p in chunk
        ]
        yield f"synthetic-{start // per_listing:05d}.jsonl", ("\n".join(rows) + "\n").encode()


def main() -> None:
    """Write a corpus to a directory of JSON Lines listings."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = generate(args.papers, seed=args.seed)
    for name, data in listings(corpus):
        (args.out / name).write_bytes(data)
    np.save(args.out / "vectors.npy", corpus.vectors)
    print(f"wrote {len(corpus.papers)} papers to {args.out}")


if __name__ == "__main__":
    main()


class Loaded(NamedTuple):
    """A corpus in a database: what to request, and what it took."""

    paper_ids: list[str]
    listing_ids: list[str]
    counts: dict[str, int]
    seconds: dict[str, float]


async def load(url: str, corpus: Corpus, *, vectors: bool = True, sample: int = 100, seed: int = 7) -> Loaded:
    """Ingest the corpus into a migrated database through the ingest pipeline, then store its vectors.

    The vectors are stored in the default local space (ONNX int8): these are throughput figures,
    never search quality. Returns `sample` random paper ids and every listing id.
    """
    import random
    import re
    import time

    from ingest.embedder import LOCAL_DIM, LOCAL_MODEL
    from ingest.onnx_model import QUANTIZATION
    from ingest.pipeline import Source, ingest_source
    from sql.db import connection
    from sql.embeddings import Space, ensure_space, store

    seconds: dict[str, float] = {}
    async with connection(url) as conn:
        started = time.perf_counter()
        for name, data in listings(corpus):
            result = await ingest_source(conn, Source(name, data))
            if result.error is not None:
                raise SystemExit(f"synthetic listing {name} failed to ingest: {result.error.message}")
        seconds["ingest"] = round(time.perf_counter() - started, 1)
        if vectors:
            started = time.perf_counter()
            rows = await conn.fetch("SELECT paper_key, title FROM papers")
            # Titles end in "(i)", the paper's row in the corpus and in its vector matrix.
            index = {r["paper_key"]: int(re.search(r"\((\d+)\)\s*$", r["title"]).group(1)) for r in rows}  # type: ignore[union-attr]
            keys = list(index)
            await ensure_space(conn, Space(LOCAL_MODEL, LOCAL_DIM, "onnxruntime", QUANTIZATION))
            for i in range(0, len(keys), 2000):
                chunk = keys[i : i + 2000]
                await store(conn, chunk, corpus.vectors[[index[k] for k in chunk]], LOCAL_MODEL)
            seconds["vectors"] = round(time.perf_counter() - started, 1)
        await conn.execute("VACUUM ANALYZE")
        paper_ids = [r["public_id"] for r in await conn.fetch("SELECT public_id FROM papers ORDER BY paper_key")]
        listing_ids = [r["public_id"] for r in await conn.fetch("SELECT public_id FROM listings ORDER BY listing_key")]
        counts = {
            name: await conn.fetchval(f"SELECT count(*) FROM {name}")
            for name in ("papers", "listings", "listing_entries")
        }
    ids = random.Random(seed).sample(paper_ids, min(sample, len(paper_ids)))
    return Loaded(ids, listing_ids, counts, seconds)
