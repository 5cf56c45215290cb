"""REST routes for search, similar papers and recommendations."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from api.rest import params
from api.services import catalog, search
from schema import limits
from schema.api import PaperFilter, RecommendRequest, SearchMode


def _queries(request: Request[Any, Any, Any]) -> search.QueryEmbeddings:
    return request.app.state.queries


@params.route(
    get,
    "/v1/search",
    "searchPapers",
    "Keyword, semantic or hybrid search",
    "search",
    409,
    guards=[params.strict_booleans],
)
async def search_papers(
    request: Request[Any, Any, Any],
    conn: params.Conn,
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
    listing: params.InListing = None,
    listed_from: params.ListedFrom = None,
    listed_to: params.ListedTo = None,
    arxiv: params.HasArxiv = None,
    limit: params.Limit = limits.DEFAULT_PAGE,
    cursor: params.SearchCursor = None,
) -> params.ScoredPage:
    """Papers for a query, best first; keyword hits carry highlighted snippets."""
    flt = PaperFilter(listing=listing, listed_from=listed_from, listed_to=listed_to, arxiv=arxiv)
    page = await search.search_papers(
        conn, _queries(request), q, catalog.page_request(limit, cursor), mode=mode, flt=flt
    )
    return params.ScoredPage(page.items, page.next_cursor)


@params.route(get, "/v1/papers/{paper_id:str}/similar", "similarPapers", "More like this", "search", 404, 409)
async def similar_papers(
    request: Request[Any, Any, Any],
    conn: params.Conn,
    paper_id: params.PaperKey,
    limit: Annotated[
        int, Parameter(ge=1, le=limits.MAX_PAGE, description="how many", examples=[Example(value=10)])
    ] = 10,
    listed_from: params.ListedFrom = None,
    listed_to: params.ListedTo = None,
) -> params.ScoredList:
    """The nearest papers by embedding, never the paper itself, each with its cosine similarity."""
    flt = PaperFilter(listed_from=listed_from, listed_to=listed_to)
    return params.ScoredList(await search.similar_papers(conn, _queries(request), paper_id, flt=flt, limit=limit))


@params.route(
    post, "/v1/recommendations", "recommendPapers", "Recommendations from examples", "search", 404, 409, status_code=200
)
async def recommend(
    request: Request[Any, Any, Any], conn: params.Conn, data: JSONBody[RecommendRequest]
) -> params.ScoredList:
    """Papers like the positive ids and the text, unlike the negative ids."""
    return params.ScoredList(await search.recommend(conn, _queries(request), data))


ROUTES = [search_papers, similar_papers, recommend]
