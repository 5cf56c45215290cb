"""Synthetic vector sets for the HNSW measurement, shaped like the real seed embeddings (or deliberately not).

- interpolated: between a seed paper and one of its nearest seed papers, plus noise with the real covariance, at
  a noise scale calibrated so a seed-sized sample has the real nearest-neighbour cosines;
- gaussian: the real mean and covariance without any topical structure (a pessimistic bound);
- clustered: the shared harness corpus (`bench/harness/corpus.py`), the vectors the throughput benchmarks use.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench.harness import corpus
from bench.quality.metrics import K

NOISE_SCALES = np.arange(0.30, 1.31, 0.05)


@dataclasses.dataclass(frozen=True)
class Shape:
    """The real vectors, their mean, a matrix that maps standard normals to their covariance, and neighbours."""

    vectors: np.ndarray
    mean: np.ndarray
    spread: np.ndarray
    neighbours: np.ndarray  # each vector's K nearest other vectors


def shape_of(vectors: np.ndarray) -> Shape:
    """Mean, covariance factor and nearest neighbours of the real vectors."""
    mean = vectors.mean(axis=0)
    values, axes = np.linalg.eigh(np.cov((vectors - mean).T))
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return Shape(vectors, mean, axes * np.sqrt(np.clip(values, 0, None)), np.argsort(-sims, axis=1)[:, :K])


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, as float32."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def interpolated(shape: Shape, count: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Points between a seed vector and one of its neighbours (as in SMOTE), plus scaled real-covariance noise."""
    i = rng.integers(0, len(shape.vectors), count)
    j = shape.neighbours[i, rng.integers(0, K, count)]
    t = rng.random((count, 1))
    centre = shape.vectors[i] + t * (shape.vectors[j] - shape.vectors[i])
    return unit(centre + noise * (rng.standard_normal((count, shape.vectors.shape[1])) @ shape.spread.T))


def gaussian(shape: Shape, count: int, rng: np.random.Generator) -> np.ndarray:
    """Draws from one Gaussian with the real mean and covariance: the real spread, no topics."""
    return unit(shape.mean + rng.standard_normal((count, shape.vectors.shape[1])) @ shape.spread.T)


def clustered(count: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The harness corpus's vectors for `count` papers, and `queries` more drawn from the same topics."""
    vectors = corpus.generate(count + queries, seed=seed).vectors
    return vectors[:count], vectors[count:]


def nn_profile(x: np.ndarray) -> tuple[float, float]:
    """Median cosine of each vector to its nearest and its K-th nearest other vector."""
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    s.sort(axis=1)
    return float(np.median(s[:, -1])), float(np.median(s[:, -K]))


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The chosen noise scale and the nearest-neighbour profiles it was chosen by."""

    noise: float
    real: tuple[float, float]
    interpolated: tuple[float, float]
    gaussian: tuple[float, float]


def calibrate(shape: Shape, seed: int) -> Calibration:
    """The noise scale whose seed-sized interpolated sample best matches the real 1st/K-th neighbour cosines."""
    real = nn_profile(shape.vectors)
    n = len(shape.vectors)
    scored = []
    for noise in NOISE_SCALES:
        got = nn_profile(interpolated(shape, n, float(noise), np.random.default_rng(seed)))
        scored.append((abs(got[0] - real[0]) + abs(got[1] - real[1]), round(float(noise), 2), got))
    _, noise, profile = min(scored)
    return Calibration(noise, real, profile, nn_profile(gaussian(shape, n, np.random.default_rng(seed))))
