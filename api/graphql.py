"""The GraphQL API (Strawberry): the read contracts of schema/api.py as types, plus listing submission.

Every field reads through sql/queries.py, except search, similar papers and recommendations, which call
api/similarity.py (the service REST also calls) with the app's query embeddings. Resolvers borrow a
pooled connection for one query at a time (Strawberry resolves sibling fields concurrently, and an
asyncpg connection runs one statement at a time); nested lists go through per-request DataLoaders so
that a page of N papers with their listings costs the same number of statements as a page of one.
`similar` is one nearest-neighbour search per paper, so a request may make at most MAX_SIMILAR_LOOKUPS.
"""

from __future__ import annotations

import enum
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any, Awaitable, Callable, Generic, Sequence, TypeVar, get_args, get_origin

import msgspec
import strawberry
from graphql import GraphQLError
from litestar import MediaType, Request, Response, post
from litestar.background_tasks import BackgroundTasks
from litestar.connection import ASGIConnection
from litestar.di import Provide
from strawberry.dataloader import DataLoader
from strawberry.extensions import (
    AddValidationRules, MaskErrors, MaxTokensLimiter, ParserCache, ValidationCache,
)  # fmt: skip
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from cross_web import HTTPException as CrossWebHTTPException
from strawberry.litestar import BaseContext, make_graphql_controller

import schema.api as contracts
from api import similarity
from api.auth import key_matches
from api.problems import problem
from api.config import Settings
from ingest.parsers import FORMATS
from sql import jobs, queries
from sql.cursor import InvalidCursor
from sql.db import CONNECTION_LOST, UNSTORABLE_TEXT, pooled
from sql.embeddings import SpaceMismatch

T = TypeVar("T")
_R = TypeVar("_R")

MAX_DEPTH = 8
MAX_TOKENS = 2000
MAX_ALIASES = 15
SUBMIT_SOURCE = "graphql"
YEARS = (1990, 2100)  # as the REST endpoint
MAX_SOURCE = 200
# `similar` is one nearest-neighbour search per paper (nothing to batch): at most a page of them per
# request, so that aliases and nesting (search -> similar -> similar ...) cannot multiply the work.
MAX_SIMILAR_LOOKUPS = contracts.MAX_PAGE


# --- errors ---------------------------------------------------------------------------------------


class UserError(Exception):
    """An error meant for the client: shown as is (never masked), with `extensions.code`."""

    def __init__(self, message: str, code: str = "BAD_USER_INPUT", **extensions: Any) -> None:
        super().__init__(message)
        self.extensions = {"code": code, **extensions}


def should_mask_error(error: GraphQLError) -> bool:
    """Mask unexpected resolver failures; keep user errors and request (syntax/validation) errors."""
    original = error.original_error
    return error.path is not None and original is not None and not isinstance(original, UserError)


def _page_size(first: int) -> int:
    if not 1 <= first <= contracts.MAX_PAGE:
        raise UserError(f"`first` must be between 1 and {contracts.MAX_PAGE}, got {first}")
    return first


# --- types built from the contracts ----------------------------------------------------------------

_TYPES: dict[type, Any] = {}  # contract -> Strawberry type mirroring it


def _convert(value: Any) -> Any:
    """A contract value as GraphQL: nested contracts become their Strawberry types."""
    if isinstance(value, msgspec.Struct) and type(value) in _TYPES:
        return _TYPES[type(value)].from_contract(value)
    if isinstance(value, list):
        return [_convert(v) for v in value]
    return value


def _unwrap(kind: Any) -> tuple[Any, str | None]:
    """Split `Annotated[T, msgspec.Meta(description=...)]` into T and the description."""
    if get_origin(kind) is Annotated:
        base, *extras = get_args(kind)
        meta = next((m for m in extras if isinstance(m, msgspec.Meta)), None)
        return base, getattr(meta, "description", None)
    return kind, None


def mirrors(contract: type[msgspec.Struct], *, is_input: bool = False) -> Callable[[type[T]], type[T]]:
    """Make a Strawberry type (or input) whose fields are the contract's fields, then the class's own.

    The class may re-annotate a contract field (to use the Strawberry type of a nested contract) and
    add resolver fields. Output types get `from_contract(obj)`, inputs get `to_contract()`.
    """

    def wrap(cls: type[T]) -> type[T]:
        own = dict(cls.__dict__.get("__annotations__", {}))
        annotations: dict[str, Any] = {}
        for field in msgspec.structs.fields(contract):
            kind, description = _unwrap(field.type)
            annotations[field.name] = own.pop(field.name, kind)
            if field.default is not msgspec.NODEFAULT:
                setattr(cls, field.name, strawberry.field(default=field.default, description=description))
            elif field.default_factory is not msgspec.NODEFAULT:
                setattr(cls, field.name, strawberry.field(default_factory=field.default_factory, description=description))
            elif description and field.name not in cls.__dict__:
                setattr(cls, field.name, strawberry.field(description=description))
        cls.__annotations__ = {**annotations, **own}
        names = tuple(annotations)

        def to_contract(self: Any) -> msgspec.Struct:
            return contract(**{n: getattr(self, n) for n in names})

        def from_contract(type_: Any, obj: msgspec.Struct) -> Any:
            return type_(**{n: _convert(getattr(obj, n)) for n in names})

        if is_input:
            cls.to_contract = to_contract  # type: ignore[attr-defined]
            return strawberry.input(cls, description=contract.__doc__)
        cls.from_contract = classmethod(from_contract)  # type: ignore[attr-defined]
        _TYPES[contract] = strawberry.type(cls, description=contract.__doc__)
        return _TYPES[contract]

    return wrap


PaperSort = strawberry.enum(
    enum.Enum("PaperSort", {value.upper(): value for value in get_args(contracts.PaperSort)}),  # type: ignore[misc]
    description="Orders of the paper collection: most recently listed, by title, or by first sighting.",
)


@mirrors(contracts.PaperFilter, is_input=True)
class PaperFilterInput:
    pass


@mirrors(contracts.ListingRef)
class ListingRef:
    @strawberry.field(description="The listing itself.")
    async def listing(self, info: strawberry.Info[Context, None]) -> Listing:
        return await info.context.listings.load(self.id)  # type: ignore[attr-defined]


SearchMode = strawberry.enum(
    enum.Enum("SearchMode", {value.upper(): value for value in get_args(contracts.SearchMode)}),  # type: ignore[misc]
    description="How search ranks: full-text keywords, embedding similarity, or both fused by reciprocal rank.",
)

SIMILAR = "The papers nearest to this one by embedding (never itself), best first, each with its cosine similarity."
LISTINGS = "The listings this paper appeared in, newest first."


async def _paper_listings(root: Any, info: strawberry.Info[Context, None]) -> list[ListingRef]:
    return await info.context.paper_listings.load(root.id)


async def _paper_similar(root: Any, info: strawberry.Info[Context, None], first: int = 10) -> list[ScoredPaper]:
    return await _similar(info, root.id, first)


# Every kind of paper node links to its listings and its neighbours (Strawberry does not inherit
# resolvers from plain classes, so the two fields are declared on each type from one resolver).
@mirrors(contracts.Paper)
class Paper:
    listings: list[ListingRef] = strawberry.field(resolver=_paper_listings, description=LISTINGS)
    similar: list[ScoredPaper] = strawberry.field(resolver=_paper_similar, description=SIMILAR)


@mirrors(contracts.ScoredPaper)
class ScoredPaper:
    listings: list[ListingRef] = strawberry.field(resolver=_paper_listings, description=LISTINGS)
    similar: list[ScoredPaper] = strawberry.field(resolver=_paper_similar, description=SIMILAR)


@mirrors(contracts.ListingEntry)
class ListingEntry:
    paper: Paper


@strawberry.type(description="Where a page ends.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(description="Pass as `after` to get the next page.")


@strawberry.type
class Edge(Generic[T]):
    cursor: str | None = strawberry.field(
        description="The cursor of the page after this edge; only the last edge of a page that has a next page"
        " carries one (the same as pageInfo.endCursor)."
    )
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @classmethod
    def of(cls, items: Sequence[Any], next_cursor: str | None, **extra: Any) -> Any:
        nodes = [_convert(item) for item in items]
        edges = [Edge(node=node, cursor=next_cursor if i == len(nodes) - 1 else None) for i, node in enumerate(nodes)]
        return cls(edges=edges, page_info=PageInfo(has_next_page=next_cursor is not None, end_cursor=next_cursor),
                   **extra)  # fmt: skip


@strawberry.type(description="A page of papers.")
class PaperConnection(Connection[Paper]):
    filter: strawberry.Private[contracts.PaperFilter]

    @strawberry.field(description="How many papers match the filter (counted only when asked for).")
    async def total_count(self, info: strawberry.Info[Context, None]) -> int:
        return await _run(info, read_total_count, self.filter)


@strawberry.type(description="A page of search results, best first.")
class ScoredPaperConnection(Connection[ScoredPaper]):
    pass


@mirrors(contracts.Listing)
class Listing:
    @strawberry.field(description="The listing's entries in rank order.")
    async def entries(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[ListingEntry]:
        return await info.context.entries.load((self.id, after, _page_size(first)))  # type: ignore[attr-defined]


@mirrors(contracts.Stats)
class Stats:
    pass


@strawberry.type(description="A queued ingest job.")
class SubmitResult:
    job_id: str


# --- context and data loaders ----------------------------------------------------------------------


async def _run(info: strawberry.Info[Context, None], fn: Callable[..., Awaitable[_R]], *args: Any, **kwargs: Any) -> _R:
    """Run one query-layer call on a pooled connection; a bad cursor is the client's error."""
    return await _with_pool(info.context.pool, fn, *args, **kwargs)


async def _with_pool(pool: Any, fn: Callable[..., Awaitable[_R]], *args: Any, **kwargs: Any) -> _R:
    try:
        async with pooled(pool) as conn:
            return await fn(conn, *args, **kwargs)
    except InvalidCursor as exc:
        raise UserError(str(exc)) from None
    except UNSTORABLE_TEXT:
        raise UserError("the request contains a character that cannot be stored or searched (NUL)") from None
    except CONNECTION_LOST:
        raise UserError("the database is unavailable; retry shortly", "SERVICE_UNAVAILABLE", retryAfter=5) from None


async def _similarity(info: strawberry.Info[Context, None], fn: Callable[..., Awaitable[_R]], *args: Any,
                      **kwargs: Any) -> _R:  # fmt: skip
    """Call an api/similarity.py function with the app's query embeddings; its refusals are the client's."""
    try:
        return await _run(info, fn, info.context.queries, *args, **kwargs)
    except similarity.SearchInputError as exc:
        raise UserError(str(exc), "NOT_FOUND" if exc.status == 404 else "BAD_USER_INPUT") from None
    except similarity.EmbedderUnavailable as exc:
        raise UserError(str(exc), "SERVICE_UNAVAILABLE", retryAfter=exc.retry_after) from None
    except SpaceMismatch as exc:
        raise UserError(str(exc), "EMBEDDING_SPACE_MISMATCH") from None


async def _similar(info: strawberry.Info[Context, None], paper_id: str, first: int) -> list[ScoredPaper]:
    limit = _page_size(first)
    if info.context.similar_left <= 0:
        raise UserError(f"at most {MAX_SIMILAR_LOOKUPS} `similar` lookups per request")
    info.context.similar_left -= 1
    return _convert(await _similarity(info, similarity.similar_papers, paper_id, limit=limit))


class Context(BaseContext, kw_only=True):
    """Per request: the pool, the query embeddings, whether writes are allowed, and the request's DataLoaders."""

    pool: Any
    queries: Any  # api.similarity.QueryEmbeddings (app.state.queries)
    similar_left: int = MAX_SIMILAR_LOOKUPS  # `similar` lookups this request may still make
    write_refusal: str | None  # why writes are refused, None when the API key matched
    papers: Any  # DataLoader[str, Paper | None]
    paper_listings: Any  # DataLoader[str, list[ListingRef]]
    listings: Any  # DataLoader[str, Listing | None]
    entries: Any  # DataLoader[(listing id, after, limit), (entries, next cursor)]


# --- reads: one query-layer call each, answering for a batch -----------------------------------------
# The DataLoaders call them, and so do compiled queries (api/graphql_compiled.py): one implementation.


async def read_papers(conn: Any, ids: Sequence[str]) -> list[Paper | None]:
    return _convert(await queries.papers_by_ids(conn, ids))


async def read_paper_listings(conn: Any, ids: Sequence[str]) -> list[list[ListingRef]]:
    return _convert(await queries.listings_of_papers(conn, ids))


async def read_listings(conn: Any, ids: Sequence[str]) -> list[Listing | None]:
    return _convert(await queries.listings_by_ids(conn, ids))


async def read_entries(conn: Any, keys: Sequence[tuple[str, str | None, int]]) -> list[Connection[ListingEntry]]:
    """Pages of entries of several listings (raises InvalidCursor if any cursor is bad)."""
    pages = await queries.entries_pages(conn, [queries.EntriesRequest(*key) for key in keys])
    return [Connection.of(entries, next_cursor) for entries, next_cursor in pages]


async def read_total_count(conn: Any, flt: contracts.PaperFilter) -> int:
    return await queries.count_papers(conn, flt)


async def read_papers_page(
    conn: Any, filter: PaperFilterInput | None = None, sort: PaperSort = PaperSort.RECENT,  # type: ignore[valid-type]
    first: int = 20, after: str | None = None,
) -> PaperConnection:  # fmt: skip
    flt = filter.to_contract() if filter is not None else contracts.PaperFilter()  # type: ignore[attr-defined]
    papers, next_cursor = await queries.papers_page(conn, flt, sort=sort.value, after=after, limit=_page_size(first))
    return PaperConnection.of(papers, next_cursor, filter=flt)


async def read_listings_page(conn: Any, first: int = 20, after: str | None = None) -> Connection[Listing]:
    listings, next_cursor = await queries.listings_page(conn, after=after, limit=_page_size(first))
    return Connection.of(listings, next_cursor)


async def read_stats(conn: Any) -> Stats:
    return _convert(await queries.stats(conn))


def _loaders(pool: Any) -> dict[str, DataLoader]:
    def batch(read: Callable[[Any, list], Awaitable[list]]) -> DataLoader:
        return DataLoader(load_fn=partial(_with_pool, pool, read))

    async def entries(keys: list[tuple[str, str | None, int]]) -> list[Any]:
        try:
            return await _with_pool(pool, read_entries, keys)
        except UserError:
            # One bad cursor must not fail the other listings' pages: answer each on its own.
            return [await _one_entries_page(pool, key) for key in keys]

    return {
        "papers": batch(read_papers),
        "paper_listings": batch(read_paper_listings),
        "listings": batch(read_listings),
        "entries": DataLoader(load_fn=entries),
    }


async def _one_entries_page(pool: Any, key: tuple[str, str | None, int]) -> Any:
    try:
        [page] = await _with_pool(pool, read_entries, [key])
        return page
    except UserError as exc:
        return exc


def _write_refusal(settings: Settings, authorization: str | None) -> str | None:
    """Why this request may not write (the same rule as the REST guard), or None."""
    if not settings.api_key:
        return "writes are disabled: the server has no API key configured (PAPERS_API_KEY)"
    if not key_matches(authorization, settings.api_key):
        return "missing or wrong API key: send `Authorization: Bearer <key>`"
    return None


# --- operations ------------------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field(description="A paper by public id or arXiv id; null when unknown.")
    async def paper(self, info: strawberry.Info[Context, None], id: str) -> Paper | None:
        return await info.context.papers.load(id)

    @strawberry.field(description="Papers matching the filter, one page at a time.")
    async def papers(
        self, info: strawberry.Info[Context, None], filter: PaperFilterInput | None = None,
        sort: PaperSort = PaperSort.RECENT, first: int = 20, after: str | None = None,  # type: ignore[valid-type]
    ) -> PaperConnection:  # fmt: skip
        return await _run(info, read_papers_page, filter, sort, first, after)

    @strawberry.field(description="A listing by public id; null when unknown.")
    async def listing(self, info: strawberry.Info[Context, None], id: str) -> Listing | None:
        return await info.context.listings.load(id)

    @strawberry.field(description="Listings, newest first, one page at a time.")
    async def listings(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[Listing]:
        return await _run(info, read_listings_page, first, after)

    @strawberry.field(description="Collection totals.")
    async def stats(self, info: strawberry.Info[Context, None]) -> Stats:
        return await _run(info, read_stats)

    @strawberry.field(
        description="Papers for a query (keywords, a sentence or an abstract), best first, one page at a time;"
        " keyword and hybrid hits carry highlighted snippets. Semantic and hybrid modes need the embedding model."
    )
    async def search(
        self, info: strawberry.Info[Context, None], q: str, mode: SearchMode = SearchMode.HYBRID,  # type: ignore[valid-type]
        filter: PaperFilterInput | None = None, first: int = 20, after: str | None = None,
    ) -> ScoredPaperConnection:  # fmt: skip
        flt = filter.to_contract() if filter is not None else contracts.PaperFilter()  # type: ignore[attr-defined]
        limit = _page_size(first)
        papers, next_cursor = await _similarity(
            info, similarity.search_papers, q, mode=mode.value, flt=flt, after=after, limit=limit
        )
        return ScoredPaperConnection.of(papers, next_cursor)

    @strawberry.field(
        description="Papers like the `positive` ids and the `text`, unlike the `negative` ids (public or arXiv ids),"
        " best first, leaving out the examples."
    )
    async def recommend(
        self, info: strawberry.Info[Context, None], positive: list[str] = [], negative: list[str] = [],  # noqa: B006
        text: str | None = None, first: int = 10, filter: PaperFilterInput | None = None,
    ) -> list[ScoredPaper]:  # fmt: skip
        flt = filter.to_contract() if filter is not None else contracts.PaperFilter()  # type: ignore[attr-defined]
        request = contracts.RecommendRequest(
            positive=list(positive), negative=list(negative), text=text, limit=_page_size(first), filters=flt
        )
        return _convert(await _similarity(info, similarity.recommend, request))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Queue a listing (its text) for ingest; requires the API key. `format` is detected when omitted;"
        " `year` resolves date labels such as 'Mar 11'; `source` is the name the input is reported under."
    )
    async def submit_listing(
        self, info: strawberry.Info[Context, None], text: str, format: str | None = None, year: int | None = None,
        source: str = SUBMIT_SOURCE,
    ) -> SubmitResult:  # fmt: skip
        if info.context.write_refusal:
            raise UserError(info.context.write_refusal, "UNAUTHENTICATED")
        if not text.strip():
            raise UserError("`text` is empty")
        if format is not None and format not in FORMATS:
            raise UserError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
        if year is not None and not YEARS[0] <= year <= YEARS[1]:
            raise UserError(f"`year` must be between {YEARS[0]} and {YEARS[1]}, got {year}")
        if not source.strip() or len(source) > MAX_SOURCE:
            raise UserError(f"`source` must be 1 to {MAX_SOURCE} characters")
        job_id = await _run(info, jobs.enqueue, source, text.encode(), fmt=format, year=year)
        return SubmitResult(job_id=job_id)


# The guard rules are built once: QueryDepthLimiter and MaxAliasesLimiter would make new rule classes
# per request, and the validation cache keys on the rule classes, so it would never hit.
GUARD_RULES = [depth_rule(MAX_DEPTH, None), alias_rule(MAX_ALIASES)]


def make_schema(*, debug: bool = False) -> strawberry.Schema:
    """The schema with its guards; unexpected errors are masked unless debugging."""
    extensions: list[Any] = [  # factories: a fresh extension per request
        # Repeated documents skip parsing and validation (guards included: their verdict is cached with it).
        partial(ParserCache, maxsize=512),
        partial(ValidationCache, maxsize=512),
        partial(AddValidationRules, GUARD_RULES),
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
    ]
    if not debug:
        extensions.append(partial(MaskErrors, should_mask_error=should_mask_error))
    return strawberry.Schema(query=Query, mutation=Mutation, extensions=extensions)


schema = make_schema()


_ENCODER = msgspec.json.Encoder()


async def _sub_response() -> Response:
    return Response({}, background=BackgroundTasks([]))


def graphql_controller(settings: Settings) -> type:
    """The Litestar controller serving POST/GET /graphql (and GraphiQL in browsers).

    POSTed reads that api/graphql_compiled.py compiles are answered there; everything else, and any
    compiled run that fails, is executed by Strawberry; `settings.graphql_compiled` off always uses Strawberry.
    """
    from api.graphql_compiled import CompiledReads

    async def context_getter(request: ASGIConnection) -> Context:  # a Request, or a WebSocket
        pool = request.app.state.pool
        refusal = _write_refusal(settings, request.headers.get("authorization"))
        return Context(pool=pool, queries=request.app.state.queries, write_refusal=refusal, **_loaders(pool))

    schema_ = make_schema(debug=settings.debug)
    reads = CompiledReads(schema_, GUARD_RULES, MAX_TOKENS) if settings.graphql_compiled else None
    base = make_graphql_controller(schema_, path="/graphql", graphql_ide="graphiql", context_getter=context_getter)

    class GraphQLController(base):  # type: ignore[misc,valid-type]
        # The GraphQL contract is the SDL (schema.graphql, introspection), not OpenAPI.
        include_in_schema = False
        # Strawberry provides the sub-response from a sync function run in a worker thread: a thread
        # round trip on every request. Building an empty Response needs no thread.
        dependencies = {**base.dependencies, "response": Provide(_sub_response)}

        @post(status_code=200)
        async def handle_http_post(self, request: Request) -> Response:
            """A compiled read when the document is one; otherwise Strawberry's executor."""
            if reads is not None and request.content_type[0] == "application/json":
                answer = await reads.answer(request.app.state.pool, await request.body())
                if answer is not None:
                    return Response(answer, media_type=MediaType.JSON)
            self.temporal_response = sub_response = await _sub_response()
            context = await context_getter(request)
            context.request, context.response = request, sub_response
            return await self.execute_request(request, context, None)

        def encode_json(self, data: object) -> bytes:
            """Encode the result with msgspec (the stdlib encoder is several times slower)."""
            return _ENCODER.encode(data)

        async def execute_request(self, request: Any, context: Any, root_value: Any) -> Any:
            """Run the operation; a request GraphQL cannot read gets a problem body, not plain text."""
            try:
                return await self.run(request, context=context, root_value=root_value)
            except CrossWebHTTPException as exc:
                return problem(exc.status_code, HTTPStatus(exc.status_code).phrase, exc.reason)

    return GraphQLController
