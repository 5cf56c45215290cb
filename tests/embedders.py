"""Test doubles for the embedder interface (they live only in tests)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from ingest.embedder import EmbeddingError

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Deterministic bag-of-words vectors: texts sharing words are close; no model, no network."""

    model = "test/hash-bow"
    backend = "test"
    quantization = "fp32"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.ready = True
        self.calls = 0

    def vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


class FailingEmbedder(HashEmbedder):
    """Always fails, like an embedding server that is down."""

    model = HashEmbedder.model

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbeddingError("embedding server unreachable")


class LoadingEmbedder(HashEmbedder):
    """A model that is still loading."""

    def __init__(self, dim: int = 384) -> None:
        super().__init__(dim)
        self.ready = False
