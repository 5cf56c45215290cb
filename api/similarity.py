"""Search, similar papers and recommendations: the one implementation REST and GraphQL both call.

Query texts are embedded once (an LRU cache), a model that is still loading answers 503, hybrid
search fuses full-text and vector rankings by reciprocal rank fusion.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Sequence

import asyncpg
import msgspec
import numpy as np

from ingest.embedder import Embedder, EmbeddingError, embedding_text
from schema.api import MAX_PAGE, PaperFilter, RecommendRequest, ScoredPaper, SearchMode
from sql import cursor, search
from sql.embeddings import Space, SpaceMismatch, current_space

RRF_K = 60  # the constant of Cormack et al. (2009)
MAX_QUERY_CHARS = 2000
MAX_WINDOW = 1000  # deepest result reachable by paging a search
MAX_EXAMPLES = 50
NEGATIVE_WEIGHT = 0.5  # Rocchio's beta: negatives pull half as hard as positives push


class SearchInputError(ValueError):
    """The client's request cannot be answered as asked (400/404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class EmbedderUnavailable(RuntimeError):
    """Semantic features are not available right now (model loading, not configured): 503."""

    def __init__(self, message: str, retry_after: int = 10) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueryEmbeddings:
    """Embeds query texts through the embedder, remembering the last `size` ones."""

    def __init__(self, embedder: Embedder | None, size: int = 1024) -> None:
        self.embedder = embedder
        self.size = size
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self.misses = 0

    def _check_ready(self) -> Embedder:
        if self.embedder is None:
            raise EmbedderUnavailable("semantic search is not configured on this server (PAPERS_EMBEDDER=none)", 3600)
        if not getattr(self.embedder, "ready", True):
            raise EmbedderUnavailable("the embedding model is still loading; retry shortly")
        return self.embedder

    async def check_space(self, conn: asyncpg.Connection) -> None:
        """Refuse to compare a query vector with stored vectors of another model."""
        embedder = self._check_ready()
        stored = await current_space(conn)
        if stored is not None and stored != Space(embedder.model, embedder.dim):
            raise SpaceMismatch(
                f"stored embeddings are from {stored.model} ({stored.dim}-d) but this server embeds queries with"
                f" {embedder.model} ({embedder.dim}-d); run `papers embed --all`"
            )

    async def vector(self, text: str) -> np.ndarray:
        """The query vector of text (cached)."""
        embedder = self._check_ready()
        if text in self._cache:
            self._cache.move_to_end(text)
            return self._cache[text]
        self.misses += 1
        try:
            [vector] = await embedder.embed([text])
        except EmbeddingError as exc:
            raise EmbedderUnavailable(str(exc), 30) from None
        self._cache[text] = vector
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return vector


def rrf(rankings: Sequence[Sequence[ScoredPaper]], k: int = RRF_K) -> list[ScoredPaper]:
    """Reciprocal rank fusion: score = sum over rankings of 1 / (k + rank); ties keep first-seen order."""
    scores: dict[str, float] = collections.defaultdict(float)
    first: dict[str, ScoredPaper] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] += 1.0 / (k + rank)
            first.setdefault(hit.id, hit)
    order = sorted(scores, key=lambda i: -scores[i])
    return [msgspec.structs.replace(first[i], score=round(scores[i], 6)) for i in order]


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:12]


def _page_window(kind: str, after: str | None, limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise SearchInputError(f"limit must be between 1 and {MAX_PAGE}")
    offset = 0
    if after:
        [offset] = cursor.decode(after, kind) or [None]
        if not isinstance(offset, int) or offset < 0:
            raise cursor.InvalidCursor("cursor is malformed")
    if offset + limit > MAX_WINDOW:
        raise SearchInputError(f"search results can be paged up to {MAX_WINDOW}; narrow the query instead")
    return offset


async def search_papers(
    conn: asyncpg.Connection, queries: QueryEmbeddings, q: str, *, mode: SearchMode = "hybrid",
    flt: PaperFilter = PaperFilter(), after: str | None = None, limit: int = 20,
) -> tuple[list[ScoredPaper], str | None]:
    """Keyword, semantic or hybrid search with filters and an opaque offset cursor."""
    q = q.strip()
    if not q:
        raise SearchInputError("q must not be empty")
    if len(q) > MAX_QUERY_CHARS:
        raise SearchInputError(f"q is longer than {MAX_QUERY_CHARS} characters")
    kind = f"search:{mode}:{_fingerprint(q, msgspec.to_builtins(flt))}"
    offset = _page_window(kind, after, limit)
    want = offset + limit + 1
    matched: list[ScoredPaper] = []
    if mode == "keyword":
        hits = matched = await search.keyword(conn, q, flt, limit=want)
    else:
        await queries.check_space(conn)
        vector = await queries.vector(q)
        semantic = await search.nearest(conn, vector, flt, limit=max(want, 50) if mode == "hybrid" else want)
        if mode == "hybrid":
            matched = await search.keyword(conn, q, flt, limit=max(want, 50))
        hits = semantic if mode == "semantic" else rrf([matched, semantic])
    page = hits[offset : offset + limit]
    more = len(hits) > offset + limit
    return await _with_snippets(conn, q, page, {h.id for h in matched}), cursor.encode(kind, [offset + limit]) if more else None


async def _with_snippets(conn: asyncpg.Connection, q: str, page: list[ScoredPaper], matched: set[str]) -> list[ScoredPaper]:
    """Keyword hits on the page get highlighted snippets; semantic-only hits have none."""
    shown = [hit.id for hit in page if hit.id in matched]
    if not shown:
        return page
    found = await search.snippets(conn, q, shown)
    return [msgspec.structs.replace(hit, snippet=found.get(hit.id)) if hit.id in matched else hit for hit in page]


async def similar_papers(
    conn: asyncpg.Connection, queries: QueryEmbeddings, paper_id: str, *, flt: PaperFilter = PaperFilter(),
    limit: int = 10,
) -> list[ScoredPaper]:
    """The papers nearest to one paper, never the paper itself."""
    if not 1 <= limit <= MAX_PAGE:
        raise SearchInputError(f"limit must be between 1 and {MAX_PAGE}")
    [paper] = await search.papers_with_vectors(conn, [paper_id])
    if paper is None:
        raise SearchInputError(f"no paper with id {paper_id!r}", 404)
    await queries.check_space(conn)
    vector = paper.vector if paper.vector is not None else await queries.vector(embedding_text(paper.title, paper.abstract))
    return await search.nearest(conn, vector, flt, limit=limit, exclude=[paper.key])


async def recommend(conn: asyncpg.Connection, queries: QueryEmbeddings, request: RecommendRequest) -> list[ScoredPaper]:
    """Papers like the positives and the text, unlike the negatives (Rocchio), leaving out the examples."""
    if not request.positive and not (request.text and request.text.strip()):
        raise SearchInputError("give at least one positive id or a text")
    if len(request.positive) + len(request.negative) > MAX_EXAMPLES:
        raise SearchInputError(f"at most {MAX_EXAMPLES} example ids")
    if not 1 <= request.limit <= MAX_PAGE:
        raise SearchInputError(f"limit must be between 1 and {MAX_PAGE}")
    if request.text and len(request.text) > MAX_QUERY_CHARS * 5:
        raise SearchInputError(f"text is longer than {MAX_QUERY_CHARS * 5} characters")
    await queries.check_space(conn)
    ids = [*request.positive, *request.negative]
    found = await search.papers_with_vectors(conn, ids)
    unknown = [i for i, p in zip(ids, found) if p is None]
    if unknown:
        raise SearchInputError(f"unknown paper ids: {', '.join(unknown)}", 404)
    async def vec(p) -> np.ndarray:
        return p.vector if p.vector is not None else await queries.vector(embedding_text(p.title, p.abstract))
    positives = [await vec(p) for p in found[: len(request.positive)]]
    if request.text and request.text.strip():
        positives.append(await queries.vector(request.text.strip()))
    target = np.mean(positives, axis=0)
    negatives = [await vec(p) for p in found[len(request.positive) :]]
    if negatives:
        target = target - NEGATIVE_WEIGHT * np.mean(negatives, axis=0)
    norm = float(np.linalg.norm(target))
    if norm == 0:
        raise SearchInputError("the positives and negatives cancel out; give different examples")
    exclude = sorted({p.key for p in found})
    return await search.nearest(conn, (target / norm).astype(np.float32), request.filters, limit=request.limit,
                                exclude=exclude)  # fmt: skip
