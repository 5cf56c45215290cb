"""REST routes for search, similar papers and recommendations."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from api.rest import params
from api.rest.fields import SCORED_FIELDS, EitherAnswer, Fields, ScoredFieldsList, ScoredFieldsPage, select_fields
from api.rest.papers import Count
from api.services import catalog, search
from schema import limits
from schema.api import PaperFilter, RecommendRequest, ScoredPaper

HYBRID = params.SearchModes("hybrid")


def _queries(request: Request[Any, Any, Any]) -> search.QueryEmbeddings:
    return request.app.state.queries


def scored_list(found: list[ScoredPaper], fields: str | None) -> params.ScoredList | ScoredFieldsList:
    """The scored papers, whole or with only the fields asked for."""
    if fields:
        return ScoredFieldsList(select_fields(found, fields, SCORED_FIELDS))
    return params.ScoredList(found)


@params.route(
    get,
    "/v1/search",
    "searchPapers",
    "Keyword, semantic or hybrid search",
    "search",
    409,
    guards=[params.strict_booleans],
    operation_class=EitherAnswer,
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
        Parameter(
            description="hybrid (default) fuses keyword and semantic rankings by their min-max scaled scores"
            " (BM25 weighted 0.7)",
            examples=[Example(value="hybrid")],
        ),
    ] = HYBRID,
    listing: params.InListing = None,
    listed_from: params.ListedFrom = None,
    listed_to: params.ListedTo = None,
    arxiv: params.HasArxiv = None,
    limit: params.Limit = limits.DEFAULT_PAGE,
    cursor: params.SearchCursor = None,
    fields: Fields = None,
    count: Count = False,
) -> params.ScoredPage | ScoredFieldsPage:
    """Papers for a query, best first; keyword hits carry highlighted snippets."""
    flt = PaperFilter(listing=listing, listed_from=listed_from, listed_to=listed_to, arxiv=arxiv)
    page = await search.search_papers(
        db, _queries(request), q, catalog.page_request(limit, cursor), mode=mode.value, flt=flt
    )
    total = await search.count_search(db, q, mode=mode.value, flt=flt) if count else None
    if fields:
        return ScoredFieldsPage(
            select_fields(page.items, fields, SCORED_FIELDS), page.next_cursor, *params.reported(total)
        )
    return params.ScoredPage(page.items, page.next_cursor, *params.reported(total))


@params.route(
    get,
    "/v1/papers/{paper_id:str}/similar",
    "similarPapers",
    "More like this",
    "search",
    404,
    409,
    operation_class=EitherAnswer,
)
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
) -> params.ScoredList | ScoredFieldsList:
    """The nearest papers by embedding, never the paper itself, each with its cosine similarity."""
    flt = PaperFilter(listed_from=listed_from, listed_to=listed_to)
    found = await search.similar_papers(db, _queries(request), paper_id, flt=flt, limit=limit)
    return scored_list(found, fields)


@params.route(
    post,
    "/v1/recommendations",
    "recommendPapers",
    "Recommendations from examples",
    "search",
    404,
    409,
    status_code=200,
    operation_class=EitherAnswer,
)
async def recommend(
    request: Request[Any, Any, Any], db: params.Db, data: JSONBody[RecommendRequest], fields: Fields = None
) -> params.ScoredList | ScoredFieldsList:
    """Papers like the positive ids and the text, unlike the negative ids."""
    found = await search.recommend(db, _queries(request), data)
    return scored_list(found, fields)


ROUTES = [search_papers, similar_papers, recommend]
