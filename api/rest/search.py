"""REST routes for search, similar papers and recommendations."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from api.rest import params
from api.rest.papers import SCORED_FIELDS, Count, Fields, select_fields
from api.services import catalog, search
from schema import limits
from schema.api import PaperFilter, RecommendRequest

HYBRID = params.SearchModes("hybrid")


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
    db: params.Db,
    q: Annotated[
        str,
        Parameter(
            description="what to look for: keywords, a sentence or an abstract; any word may match (BM25, title words"
            ' count more), "quoted phrases" must match, -words must not',
            max_length=limits.MAX_QUERY_CHARS,
            examples=[Example(value="shorter chain of thought reasoning")],
        ),
    ],
    mode: Annotated[
        params.SearchModes,
        Parameter(description="hybrid (default) fuses keyword and semantic by RRF", examples=[Example(value="hybrid")]),
    ] = HYBRID,
    listing: params.InListing = None,
    listed_from: params.ListedFrom = None,
    listed_to: params.ListedTo = None,
    arxiv: params.HasArxiv = None,
    limit: params.Limit = limits.DEFAULT_PAGE,
    cursor: params.SearchCursor = None,
    fields: Fields = None,
    count: Count = False,
) -> params.ScoredPage:
    """Papers for a query, best first; keyword hits carry highlighted snippets."""
    flt = PaperFilter(listing=listing, listed_from=listed_from, listed_to=listed_to, arxiv=arxiv)
    page = await search.search_papers(
        db, _queries(request), q, catalog.page_request(limit, cursor), mode=mode.value, flt=flt
    )
    total = await search.count_search(db, q, mode=mode.value, flt=flt) if count else None
    return params.ScoredPage(select_fields(page.items, fields, SCORED_FIELDS), page.next_cursor, total)


@params.route(get, "/v1/papers/{paper_id:str}/similar", "similarPapers", "More like this", "search", 404, 409)
async def similar_papers(
    request: Request[Any, Any, Any],
    db: params.Db,
    paper_id: params.PaperKey,
    limit: Annotated[
        int, Parameter(ge=1, le=limits.MAX_PAGE, description="how many", examples=[Example(value=10)])
    ] = 10,
    listed_from: params.ListedFrom = None,
    listed_to: params.ListedTo = None,
    fields: Fields = None,
) -> params.ScoredList:
    """The nearest papers by embedding, never the paper itself, each with its cosine similarity."""
    flt = PaperFilter(listed_from=listed_from, listed_to=listed_to)
    found = await search.similar_papers(db, _queries(request), paper_id, flt=flt, limit=limit)
    return params.ScoredList(select_fields(found, fields, SCORED_FIELDS))


@params.route(
    post, "/v1/recommendations", "recommendPapers", "Recommendations from examples", "search", 404, 409, status_code=200
)
async def recommend(
    request: Request[Any, Any, Any], db: params.Db, data: JSONBody[RecommendRequest], fields: Fields = None
) -> params.ScoredList:
    """Papers like the positive ids and the text, unlike the negative ids."""
    found = await search.recommend(db, _queries(request), data)
    return params.ScoredList(select_fields(found, fields, SCORED_FIELDS))


ROUTES = [search_papers, similar_papers, recommend]
