"""REST endpoints for search, similar papers and recommendations."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Request, get, post
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from api import similarity
from api.problems import documented
from api.rest import Conn, Cursor, Limit, NextCursor, PaperKey
from schema.api import PaperFilter, RecommendRequest, ScoredPaper, SearchMode, doc

Day = Annotated[dt.date | None, Parameter(description="listed on or after / on or before", examples=[Example(value="2024-03-11")])]


class ScoredPage(msgspec.Struct, frozen=True):
    """A page of scored papers and the cursor of the next page."""

    items: list[ScoredPaper]
    next_cursor: NextCursor


class ScoredList(msgspec.Struct, frozen=True):
    """Scored papers, best first."""

    items: doc(list[ScoredPaper], "best first", [])


def _queries(request: Request) -> similarity.QueryEmbeddings:
    return request.app.state.queries


@get("/v1/search", operation_id="searchPapers", responses=documented(), summary="Keyword, semantic or hybrid search", tags=["search"])
async def search_papers(
    request: Request,
    conn: Conn,
    q: Annotated[str, Parameter(description="what to look for: keywords, a sentence or an abstract",
                                examples=[Example(value="shorter chain of thought reasoning")])],
    mode: Annotated[SearchMode, Parameter(description="hybrid (default) fuses keyword and semantic by RRF",
                                          examples=[Example(value="hybrid")])] = "hybrid",
    listing: Annotated[str | None, Parameter(description="only papers in this listing",
                                             examples=[Example(value="lst_vjq5i63cxesyipki")])] = None,
    listed_from: Day = None,
    listed_to: Day = None,
    arxiv: Annotated[bool | None, Parameter(description="has or lacks an arXiv id", examples=[Example(value=True)])] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ScoredPage:
    """Papers for a query, best first; keyword hits carry highlighted snippets."""
    flt = PaperFilter(listing=listing, listed_from=listed_from, listed_to=listed_to, arxiv=arxiv)
    items, next_cursor = await similarity.search_papers(
        conn, _queries(request), q, mode=mode, flt=flt, after=cursor, limit=limit
    )
    return ScoredPage(items, next_cursor)


@get("/v1/papers/{paper_id:str}/similar", operation_id="similarPapers", responses=documented(404), summary="More like this", tags=["search"])
async def similar_papers(
    request: Request, conn: Conn, paper_id: PaperKey, limit: Annotated[int, Parameter(
        ge=1, le=100, description="how many", examples=[Example(value=10)])] = 10,
    listed_from: Day = None, listed_to: Day = None,
) -> ScoredList:
    """The nearest papers by embedding, never the paper itself, each with its cosine similarity."""
    flt = PaperFilter(listed_from=listed_from, listed_to=listed_to)
    return ScoredList(await similarity.similar_papers(conn, _queries(request), paper_id, flt=flt, limit=limit))


@post("/v1/recommendations", operation_id="recommendPapers", responses=documented(404), summary="Recommendations from examples",
      tags=["search"], status_code=200)  # fmt: skip
async def recommend(request: Request, conn: Conn, data: JSONBody[RecommendRequest]) -> ScoredList:
    """Papers like the positive ids and the text, unlike the negative ids."""
    return ScoredList(await similarity.recommend(conn, _queries(request), data))


ROUTES = [search_papers, similar_papers, recommend]
