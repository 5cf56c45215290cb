"""Search, similar papers and recommendations: the one implementation REST and GraphQL both call.

Query texts are embedded once (an LRU cache), a model that is still loading answers UnavailableError,
hybrid search fuses full-text and vector rankings by reciprocal rank fusion.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import re
from collections.abc import Hashable, Sequence
from typing import TypeVar

import asyncpg
import msgspec
import numpy as np

from api.services.catalog import check_filter, page_size
from api.services.snippets import Highlighter
from ingest.embedder import Embedder, embedding_text, space_of
from schema import limits
from schema.api import PaperFilter, RecommendRequest, ScoredPaper, SearchMode
from schema.errors import (
    InvalidCursorError,
    InvalidInputError,
    NotFoundError,
    QueryTooCostlyError,
    SpaceMismatchError,
    UnavailableError,
)
from schema.paging import Page, PageRequest, Total
from sql import cursor, keyword, search
from sql.embeddings import Space, current_space
from sql.keyword import KeywordQuery
from sql.routing import looks_up, reads
from sql.search import PaperVector

NOT_CONFIGURED = "semantic search is not configured on this server (PAPERS_EMBEDDER=none)"
MODEL_FAILED = "the embedding model failed to load; the server's log says why"  # waiting will not help
# Hybrid search: BM25 and cosine each min-max scaled, BM25 weighted 0.7. Chosen by measurement over reciprocal rank
# fusion (k = 60, 10, 1) and weight 0.5 (docs/similarity.md, section 1): best nDCG@10 on both query sets.
HYBRID_KEYWORD_WEIGHT = 0.7
NEGATIVE_WEIGHT = 0.5  # Rocchio's beta: negatives pull half as hard as positives push
HYBRID_KEYWORD_HITS = 50  # keyword hits fused with as many nearest neighbours in hybrid search
K = TypeVar("K", bound=Hashable)
_PHRASE = re.compile(r'"([^"]*)"')
_EXCLUDED_PHRASE = re.compile(r'(?:^|(?<=\s))-"([^"]*)"')
_EXCLUDED = re.compile(r"(?:^|(?<=\s))-(\w\S*)")


class Budget:
    """What one request may still spend: nearest-neighbour searches and texts for the model to embed.

    A GraphQL request shares one budget across all its fields (aliases and nesting cannot multiply the
    work); a REST request has one of its own.
    """

    def __init__(self, texts: int = limits.MAX_EMBEDDED_TEXTS) -> None:
        self.neighbour_searches = limits.MAX_NEIGHBOUR_SEARCHES
        self.texts = self.allowed = texts

    def spend_search(self) -> None:
        """Count one nearest-neighbour search, refusing the request's one too many."""
        if self.neighbour_searches <= 0:
            raise InvalidInputError(f"at most {limits.MAX_NEIGHBOUR_SEARCHES} similar/recommend lookups per request")
        self.neighbour_searches -= 1

    def spend_texts(self, count: int) -> None:
        """Count texts the model must embed (the query cache's misses), refusing past the request's share."""
        if count > self.texts:
            raise QueryTooCostlyError(
                f"this request needs {self.allowed - self.texts + count} texts embedded by the model"
                f" (queries, and example papers not embedded yet); at most {self.allowed} are allowed"
            )
        self.texts -= count


class QueryEmbeddings:
    """Embeds query texts through the embedder, remembering the last `size` ones."""

    def __init__(self, embedder: Embedder | None, size: int = 1024) -> None:
        self.embedder = embedder
        self.size = size
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self.misses = 0

    def _ready(self) -> Embedder:
        if self.embedder is None:
            raise UnavailableError(NOT_CONFIGURED, retry_after=3600)
        if not self.embedder.ready:
            if self.failed:
                raise UnavailableError(MODEL_FAILED, retry_after=3600)
            raise UnavailableError("the embedding model is still loading; retry shortly", retry_after=10)
        return self.embedder

    @property
    def failed(self) -> bool:
        """Whether the embedder's model failed to load (waiting will not make it ready)."""
        return getattr(self.embedder, "load_error", None) is not None

    @property
    def loading(self) -> bool:
        """Whether an embedder is configured but cannot embed yet (its model is loading)."""
        return self.embedder is not None and not self.embedder.ready

    async def check_space(self, conn: asyncpg.Connection) -> None:
        """Refuse to compare vectors with stored vectors of another space (the model need not be loaded)."""
        if self.embedder is None:  # before the round trip
            raise UnavailableError(NOT_CONFIGURED, retry_after=3600)
        self.refuse_other(await current_space(conn))

    def refuse_other(self, stored: Space | None) -> None:
        """Refuse stored vectors of another space than this server's queries (None: nothing stored yet)."""
        if self.embedder is None:
            raise UnavailableError(NOT_CONFIGURED, retry_after=3600)
        mine = space_of(self.embedder)
        if stored is not None and stored != mine:
            raise SpaceMismatchError(
                f"stored embeddings are from {stored} but this server embeds queries with {mine};"
                " run `papers embed --all`"
            )

    async def vectors(self, texts: Sequence[str], budget: Budget) -> list[np.ndarray]:
        """The vectors of texts, the ones not cached computed in one model call (counted against the budget)."""
        embedder = self._ready()
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            budget.spend_texts(len(missing))
            self.misses += len(missing)
            for text, vector in zip(missing, await embedder.embed(missing), strict=True):
                self._cache[text] = vector
        found = [self._cache[t] for t in texts]
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return found

    async def vector(self, text: str, budget: Budget) -> np.ndarray:
        """The vector of one query text (cached)."""
        [vector] = await self.vectors([text], budget)
        return vector


def fuse(
    rankings: Sequence[tuple[Sequence[tuple[K, float]], float]], depth: int = HYBRID_KEYWORD_HITS
) -> list[tuple[K, float]]:
    """Weighted sum of each ranking's scores over its first `depth` hits, each min-max scaled over them, best first;
    then the hits no first `depth` scored, taking the rankings in turn rank by rank, with score 0.

    A paper deeper than `depth` in a ranking, or absent from it, scores 0 there; ties keep first-seen order. Only the
    first `depth` hits of each ranking are scored, and the rest follow in an order that longer rankings only extend,
    so a deeper page (longer rankings) keeps the ranks before it: paging walks one ranking (docs/design.md, "Paging a
    ranking").
    """
    scores: dict[K, float] = collections.defaultdict(float)
    for ranking, weight in rankings:
        if not ranking:
            continue
        top = ranking[: max(depth, 1)]
        # Over the hits' scores, not their first and last: HNSW's scan order can put a nearer paper after a farther.
        high, low = max(score for _, score in top), min(score for _, score in top)
        for key, score in top:
            scores[key] += weight * (max(0.0, (score - low) / (high - low)) if high > low else 1.0)
    scored = [(key, score) for key, score in scores.items() if score > 0]
    ranked = {key for key, _ in scored}
    rest = (key for hits in itertools.zip_longest(*(r for r, _ in rankings)) for key, _ in filter(None, hits))
    tail = [(key, 0.0) for key in dict.fromkeys(rest) if key not in ranked]
    return sorted(scored, key=lambda item: -item[1]) + tail


def fuse_hits(keyword: Sequence[ScoredPaper], semantic: Sequence[ScoredPaper]) -> list[ScoredPaper]:
    """Hybrid search's fusion (`fuse`, BM25 weighted HYBRID_KEYWORD_WEIGHT) of rankings of papers, each paper as
    first seen, with its fused score."""
    first = {hit.id: hit for hit in [*reversed(semantic), *reversed(keyword)]}
    fused = fuse(
        [
            ([(hit.id, hit.score) for hit in keyword], HYBRID_KEYWORD_WEIGHT),
            ([(hit.id, hit.score) for hit in semantic], 1 - HYBRID_KEYWORD_WEIGHT),
        ]
    )
    return [msgspec.structs.replace(first[i], score=round(score, 6)) for i, score in fused]


def cursor_kind(q: str, mode: SearchMode, flt: PaperFilter) -> str:
    """The kind of a search's cursors: a cursor pages only the search (text, mode, filters) that issued it."""
    return f"search:{mode}:{hashlib.sha256(msgspec.json.encode((q, msgspec.to_builtins(flt)))).hexdigest()[:12]}"


def keyword_query(q: str) -> KeywordQuery:
    """Split a query into words ranked by (any may match), quoted phrases (must match) and -words (must not)."""
    excluded = [f'"{p}"' for p in _EXCLUDED_PHRASE.findall(q) if p.strip()]
    q = _EXCLUDED_PHRASE.sub(" ", q)
    phrases = tuple(p.strip() for p in _PHRASE.findall(q) if p.strip())
    q = _PHRASE.sub(lambda m: f" {m.group(1)} ", q)
    excluded += _EXCLUDED.findall(q)
    text = _EXCLUDED.sub(" ", q).replace('"', " ")
    return KeywordQuery(" ".join(text.split()), phrases, tuple(excluded))


def _query_text(q: str) -> str:
    q = q.strip()
    if not q:
        raise InvalidInputError("q must not be empty")
    if len(q) > limits.MAX_QUERY_CHARS:
        raise InvalidInputError(f"q is longer than {limits.MAX_QUERY_CHARS} characters")
    return q


def _position(kind: str, token: str) -> int:
    """The 1-based position in the ranking a search cursor stands for."""
    values = cursor.decode(token, kind)
    if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool) or values[0] < 0:
        raise InvalidCursorError("cursor is malformed")
    return values[0]


def _window(kind: str, request: PageRequest) -> tuple[int, int]:
    """The ranks a page may take, as indexes [low, high): after `after`, before `before`, within MAX_WINDOW."""
    low = _position(kind, request.after) if request.after else 0
    high = min(_position(kind, request.before) - 1, limits.MAX_WINDOW) if request.before else limits.MAX_WINDOW
    if not request.backward and low + request.size > limits.MAX_WINDOW:
        raise InvalidInputError(f"search results can be paged up to {limits.MAX_WINDOW}; narrow the query instead")
    return low, max(low, high)


def _slice(request: PageRequest, low: int, high: int, found: int) -> tuple[int, int, bool, bool]:
    """The page's indexes [start, stop) among `found` ranked hits, and its has_next and has_previous."""
    end = min(high, found)
    if request.backward:
        start = max(low, end - request.size)
        return start, end, bool(request.before) and found > high, start > low
    stop = min(low + request.size, end)
    return low, stop, end > stop, low > 0 and found > 0


@reads
async def search_papers(
    conn: asyncpg.Connection,
    queries: QueryEmbeddings,
    q: str,
    page: PageRequest,
    *,
    mode: SearchMode = "hybrid",
    flt: PaperFilter = PaperFilter(),
    budget: Budget | None = None,
) -> Page[ScoredPaper]:
    """Keyword, semantic or hybrid search with filters, paged both ways by cursors of ranking positions."""
    q = _query_text(q)
    check_filter(flt)
    kind = cursor_kind(q, mode, flt)
    low, high = _window(kind, page)
    want = (high if page.backward else min(low + page.size, high)) + 1
    matched: list[ScoredPaper] = []
    query = keyword_query(q)
    if mode == "keyword":
        hits = matched = await keyword.keyword(conn, query, flt, limit=want)
    elif mode == "semantic" or queries.loading:
        await queries.check_space(conn)  # a mismatch is told even while the model loads ...
        vector = await queries.vector(q, budget or Budget())  # ... which refuses hybrid searches here
        hits = await search.nearest(conn, vector, flt, limit=want)
    else:
        # Hybrid: the ranking statement brings the stored space along, no round trip of its own to check it.
        vector = await queries.vector(q, budget or Budget())
        return await _hybrid(conn, queries, query, vector, flt, page, kind, (low, high), want)
    start, stop, has_next, has_previous = _slice(page, low, high, len(hits))
    items = _with_snippets(query, hits[start:stop], {h.id for h in matched})
    cursors = cursor.Cursors(kind, [[position] for position in range(start + 1, stop + 1)])
    return Page(items, cursors, has_next, has_previous)


async def _hybrid(
    conn: asyncpg.Connection,
    queries: QueryEmbeddings,
    query: KeywordQuery,
    vector: np.ndarray,
    flt: PaperFilter,
    page: PageRequest,
    kind: str,
    window: tuple[int, int],
    want: int,
) -> Page[ScoredPaper]:
    """Hybrid search: the keyword and nearest-neighbour rankings (keys, scores) in one statement, fused, then only the
    page's papers read (with snippets for its keyword hits)."""
    bound = max(want, HYBRID_KEYWORD_HITS)
    matched, semantic, space = await keyword.hybrid_ranks(conn, query, vector, flt, limit=bound)
    queries.refuse_other(space)
    fused = fuse([(matched, HYBRID_KEYWORD_WEIGHT), (semantic, 1 - HYBRID_KEYWORD_WEIGHT)])
    start, stop, has_next, has_previous = _slice(page, *window, len(fused))
    shown = fused[start:stop]
    papers = await keyword.papers_by_key(conn, [key for key, _ in shown], [round(score, 6) for _, score in shown])
    keyword_keys = {key for key, _ in matched}
    hit_ids = {paper.id for paper, (key, _) in zip(papers, shown, strict=True) if key in keyword_keys}
    items = _with_snippets(query, papers, hit_ids)
    cursors = cursor.Cursors(kind, [[position] for position in range(start + 1, stop + 1)])
    return Page(items, cursors, has_next, has_previous)


@reads
async def count_search(conn: asyncpg.Connection, q: str, *, mode: SearchMode, flt: PaperFilter) -> Total:
    """How many papers a search ranks, up to MAX_COUNTED (paging reaches the first MAX_WINDOW of them)."""
    query = keyword_query(_query_text(q))
    check_filter(flt)
    return await keyword.count_ranked(conn, query, flt, keyword=mode != "semantic", semantic=mode != "keyword")


def _with_snippets(query: KeywordQuery, page: list[ScoredPaper], matched: set[str]) -> list[ScoredPaper]:
    """Keyword hits on the page get highlighted snippets (any query word marked); semantic-only hits have none."""
    if not matched.intersection(hit.id for hit in page):
        return page
    marks = Highlighter(query.text)
    return [msgspec.structs.replace(h, snippet=marks.snippet(h.abstract)) if h.id in matched else h for h in page]


async def _paper_vectors(
    queries: QueryEmbeddings, papers: Sequence[PaperVector], budget: Budget, text: str | None = None
) -> list[np.ndarray]:
    """Each paper's stored vector, then the text's; papers not embedded yet and the text in one model call."""
    texts = [embedding_text(p.title, p.abstract) for p in papers if p.vector is None] + ([text] if text else [])
    computed = iter(await queries.vectors(texts, budget) if texts else [])
    vectors = [p.vector if p.vector is not None else next(computed) for p in papers]
    return [*vectors, *computed]


@looks_up
async def similar_papers(
    conn: asyncpg.Connection,
    queries: QueryEmbeddings,
    paper_id: str,
    *,
    flt: PaperFilter = PaperFilter(),
    limit: int = 10,
    budget: Budget | None = None,
) -> list[ScoredPaper]:
    """The papers nearest to one paper, never the paper itself."""
    page_size(limit)
    budget = budget or Budget()
    budget.spend_search()
    [paper] = await search.papers_with_vectors(conn, [paper_id])
    if paper is None:
        raise NotFoundError(f"no paper with id {paper_id!r}")
    await queries.check_space(conn)
    [vector] = await _paper_vectors(queries, [paper], budget)
    return await search.nearest(conn, vector, flt, limit=limit, exclude=[paper.key])


def _check_recommend(request: RecommendRequest) -> str | None:
    """The request's free text (stripped, or None), after checking its bounds."""
    text = request.text.strip() if request.text else None
    if not request.positive and not text:
        raise InvalidInputError("give at least one positive id or a text")
    if len(request.positive) + len(request.negative) > limits.MAX_EXAMPLES:
        raise InvalidInputError(f"at most {limits.MAX_EXAMPLES} example ids")
    page_size(request.limit)
    if text and len(text) > limits.MAX_TEXT_CHARS:
        raise InvalidInputError(f"text is longer than {limits.MAX_TEXT_CHARS} characters")
    check_filter(request.filters)
    return text


@looks_up
async def recommend(
    conn: asyncpg.Connection, queries: QueryEmbeddings, request: RecommendRequest, *, budget: Budget | None = None
) -> list[ScoredPaper]:
    """Papers like the positives and the text, unlike the negatives (Rocchio), leaving out the examples."""
    text = _check_recommend(request)
    budget = budget or Budget()
    budget.spend_search()
    await queries.check_space(conn)
    ids = [*request.positive, *request.negative]
    found = await search.papers_with_vectors(conn, ids)
    unknown = [i for i, p in zip(ids, found, strict=True) if p is None]
    if unknown:
        raise NotFoundError(f"unknown paper ids: {', '.join(unknown)}")
    papers = [p for p in found if p is not None]
    vectors = await _paper_vectors(queries, papers, budget, text)
    positives = vectors[: len(request.positive)] + vectors[len(papers) :]  # the examples, then the text
    target = np.mean(positives, axis=0)
    negatives = vectors[len(request.positive) : len(papers)]
    if negatives:
        target = target - NEGATIVE_WEIGHT * np.mean(negatives, axis=0)
    norm = float(np.linalg.norm(target))
    if norm == 0:
        raise InvalidInputError("the positives and negatives cancel out; give different examples")
    exclude = sorted({p.key for p in papers})
    unit = (target / norm).astype(np.float32)
    return await search.nearest(conn, unit, request.filters, limit=request.limit, exclude=exclude)
