"""REST routes over papers: the collection, one paper, many at once, a fuzzy title match."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from api.rest.fields import EitherAnswer, Fields, PaperFields, PaperFieldsPage, select_fields
from api.rest.params import (
    BatchRequest,
    Db,
    FacetFields,
    HasArxiv,
    InListing,
    Limit,
    ListedFrom,
    ListedTo,
    PaperKey,
    PaperOrder,
    PaperPage,
    PapersCursor,
    Query,
    reported,
    route,
    strict_booleans,
)
from api.services import browse, catalog
from schema import limits
from schema.api import FacetCount, Paper, PaperDetail, PaperFilter, TitleMatch

GroupBy = Annotated[
    FacetFields | None,
    Parameter(
        description="answer counts per value of this field (at most 200 groups, largest first) instead of a page:"
        " listing, listed_month / listed_year (of the paper's first listing), has_arxiv",
        examples=[Example(value="listed_month")],
    ),
]


def cached(request: Request[Any, Any, Any], data: Any) -> Response[Any]:
    """A single-resource response with an ETag; 304 when the client's If-None-Match matches.

    The tag is weak: the same JSON is sent plain, zstd, brotli or gzip (api/http/compression.py), and a strong
    tag names one byte sequence. If-None-Match compares weakly (RFC 9110 13.1.2), with or without `W/`.
    """
    body = msgspec.json.encode(data)
    opaque = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": "W/" + opaque, "Cache-Control": "no-cache"}
    match = request.headers.get("if-none-match", "")
    given = {tag.strip().removeprefix("W/") for tag in match.split(",")}
    if opaque in given or match.strip() == "*":
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


RECENT = PaperOrder("recent")
Count = Annotated[
    bool,
    Parameter(
        description=f"add `total`: how many items all pages hold (counted up to {limits.MAX_COUNTED:,}; `total_exact`"
        " is false past that)",
        examples=[Example(value=True)],
    ),
]


@route(get, "/v1/papers", "listPapers", "List papers", "papers", guards=[strict_booleans], operation_class=EitherAnswer)
async def list_papers(
    db: Db,
    q: Query = None,
    listing: InListing = None,
    listed_from: ListedFrom = None,
    listed_to: ListedTo = None,
    arxiv: HasArxiv = None,
    sort: Annotated[
        PaperOrder,
        Parameter(
            description="recent (most recently listed first, the default), title or first_seen; `-` reverses"
            " (`-title`: Z to A)",
            examples=[Example(value="title")],
        ),
    ] = RECENT,
    limit: Limit = limits.DEFAULT_PAGE,
    cursor: PapersCursor = None,
    fields: Fields = None,
    count: Count = False,
    group_by: GroupBy = None,
) -> PaperPage | PaperFieldsPage | list[FacetCount]:
    """Papers matching the filters, keyset-paginated: follow `next_cursor` until it is null.

    With `group_by`, instead: how many of them share each value of that field, `[{key, count}]`, largest first.
    """
    flt = PaperFilter(q=q, listing=listing, listed_from=listed_from, listed_to=listed_to, arxiv=arxiv)
    if group_by is not None:
        return await browse.facets(db, flt, group_by.value)
    page = await catalog.papers_page(db, flt, catalog.page_request(limit, cursor), sort=sort.value)
    total = await catalog.count_papers(db, flt) if count else None
    if fields:
        return PaperFieldsPage(select_fields(page.items, fields), page.next_cursor, *reported(total))
    return PaperPage(page.items, page.next_cursor, *reported(total))


@route(get, "/v1/papers/match", "matchPaperTitle", "Fuzzy title match", "papers", 404)
async def match_paper(
    db: Db,
    title: Annotated[
        str,
        Parameter(
            min_length=limits.TITLE_MATCH_CHARS[0],
            max_length=limits.TITLE_MATCH_CHARS[1],
            examples=[Example(value="Pointer Network")],
        ),
    ],
) -> TitleMatch:
    """The paper whose title is closest (trigram similarity), with its score; 404 when nothing is close."""
    return await catalog.match_title(db, title)


@route(
    post,
    "/v1/papers/batch",
    "batchGetPapers",
    "Fetch many papers",
    "papers",
    status_code=200,
    operation_class=EitherAnswer,
)
async def batch_papers(
    db: Db, data: JSONBody[BatchRequest], fields: Fields = None
) -> list[Paper | None] | list[PaperFields | None]:
    """Papers by public id or arXiv id, in the order asked, null for unknown ids."""
    return select_fields(await catalog.papers_by_ids(db, data.ids), fields)


@route(get, "/v1/papers/{paper_id:str}", "getPaper", "Get a paper", "papers", 404)
async def get_paper(request: Request[Any, Any, Any], db: Db, paper_id: PaperKey) -> Response[PaperDetail]:
    """One paper by public id or arXiv id, with the listings it appeared in."""
    return cached(request, await catalog.paper(db, paper_id))


ROUTES = [list_papers, match_paper, batch_papers, get_paper]
