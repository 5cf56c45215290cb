"""REST routes for search, similar papers and recommendations."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from api.rest.params import (
    Conn,
    Cursor,
    HasArxiv,
    InListing,
    Limit,
    ListedFrom,
    ListedTo,
    PaperKey,
    ScoredList,
    ScoredPage,
)
from api.rest.problems import documented
from api.services import search
from schema import limits
from schema.api import PaperFilter, RecommendRequest, SearchMode


def _queries(request: Request[Any, Any, Any]) -> search.QueryEmbeddings:
    return request.app.state.queries


@get(
    "/v1/search",
    operation_id="searchPapers",
    responses=documented(409),
    summary="Keyword, semantic or hybrid search",
    tags=["search"],
)
async def search_papers(
    request: Request[Any, Any, Any],
    conn: Conn,
    q: Annotated[
        str,
        Parameter(
            description="what to look for: keywords, a sentence or an abstract",
            max_length=limits.MAX_QUERY_CHARS,
            examples=[Example(value="shorter chain of thought reasoning")],
        ),
    ],
    mode: Annotated[
        SearchMode,
        Parameter(description="hybrid (default) fuses keyword and semantic by RRF", examples=[Example(value="hybrid")]),
    ] = "hybrid",
    listing: InListing = None,
    listed_from: ListedFrom = None,
    listed_to: ListedTo = None,
    arxiv: HasArxiv = None,
    limit: Limit = limits.DEFAULT_PAGE,
    cursor: Cursor = None,
) -> ScoredPage:
    """Papers for a query, best first; keyword hits carry highlighted snippets."""
    flt = PaperFilter(listing=listing, listed_from=listed_from, listed_to=listed_to, arxiv=arxiv)
    items, next_cursor = await search.search_papers(
        conn, _queries(request), q, mode=mode, flt=flt, after=cursor, limit=limit
    )
    return ScoredPage(items, next_cursor)


@get(
    "/v1/papers/{paper_id:str}/similar",
    operation_id="similarPapers",
    responses=documented(404, 409),
    summary="More like this",
    tags=["search"],
)
async def similar_papers(
    request: Request[Any, Any, Any],
    conn: Conn,
    paper_id: PaperKey,
    limit: Annotated[
        int, Parameter(ge=1, le=limits.MAX_PAGE, description="how many", examples=[Example(value=10)])
    ] = 10,
    listed_from: ListedFrom = None,
    listed_to: ListedTo = None,
) -> ScoredList:
    """The nearest papers by embedding, never the paper itself, each with its cosine similarity."""
    flt = PaperFilter(listed_from=listed_from, listed_to=listed_to)
    return ScoredList(await search.similar_papers(conn, _queries(request), paper_id, flt=flt, limit=limit))


@post(
    "/v1/recommendations",
    operation_id="recommendPapers",
    responses=documented(404, 409),
    summary="Recommendations from examples",
    tags=["search"],
    status_code=200,
)
async def recommend(request: Request[Any, Any, Any], conn: Conn, data: JSONBody[RecommendRequest]) -> ScoredList:
    """Papers like the positive ids and the text, unlike the negative ids."""
    return ScoredList(await search.recommend(conn, _queries(request), data))


ROUTES = [search_papers, similar_papers, recommend]
