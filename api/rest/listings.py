"""REST routes over listings: the collection, one listing with its entries, submissions and their jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import Parameter

from api.rest.papers import Count, cached
from api.rest.params import (
    Db,
    EntriesCursor,
    JobAccepted,
    JobKey,
    Limit,
    ListingDetail,
    ListingKey,
    ListingPage,
    ListingsCursor,
    reported,
    route,
    strict_booleans,
)
from api.services import catalog, submissions
from schema import limits
from schema.api import JobStatusView
from schema.ingest import ListingFormat

EXAMPLE_ABSTRACT = (
    "We study how many passes over the data a language model needs. Training for a single epoch on a corpus"
    " that is large enough matches several epochs on a smaller one, at the same compute, across every model"
    " size we tried; the result suggests collecting more data rather than repeating it."
)
EXAMPLE_PAGE = f"Daily Papers\n\nMar 11\n\nOne Epoch Is All You Need\n\n{EXAMPLE_ABSTRACT}\n"
EXAMPLE_HF_DAILY = [
    {
        "publishedAt": "2024-03-11T09:30:00.000Z",
        "paper": {"id": "2306.00001", "title": "One Epoch Is All You Need", "summary": EXAMPLE_ABSTRACT},
    }
]
_HF_ITEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["paper"],
    properties={
        "publishedAt": Schema(type=OpenAPIType.STRING, description="the day the paper was listed (ISO 8601)"),
        "paper": Schema(
            type=OpenAPIType.OBJECT,
            required=["title", "summary"],
            properties={
                "id": Schema(type=OpenAPIType.STRING, description="arXiv id"),
                "title": Schema(type=OpenAPIType.STRING),
                "summary": Schema(type=OpenAPIType.STRING, description="the abstract"),
            },
        ),
    },
)


@dataclass
class SubmitOperation(Operation):
    """The submission's operation with its body described: the handler reads the body raw, so Litestar cannot."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="the listing: a scraped page or JSON Lines as text, or the daily-papers JSON array",
            content={
                "text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING), example=EXAMPLE_PAGE),
                "application/json": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.ARRAY, items=_HF_ITEM), example=EXAMPLE_HF_DAILY
                ),
            },
        )


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: 401 unless `Authorization: Bearer <PAPERS_API_KEY>`."""
    refusal = submissions.write_refusal(connection.app.state.settings.api_key, connection.headers.get("authorization"))
    if refusal is not None:
        raise refusal


@route(get, "/v1/listings", "listListings", "List listings", "listings", guards=[strict_booleans])
async def list_listings(
    db: Db, limit: Limit = limits.DEFAULT_PAGE, cursor: ListingsCursor = None, count: Count = False
) -> ListingPage:
    """Listings, newest date first, keyset-paginated."""
    page = await catalog.listings_page(db, catalog.page_request(limit, cursor))
    return ListingPage(page.items, page.next_cursor, *reported(await catalog.count_listings(db) if count else None))


@route(get, "/v1/listings/{listing_id:str}", "getListing", "Get a listing", "listings", 404)
async def get_listing(
    request: Request[Any, Any, Any],
    db: Db,
    listing_id: ListingKey,
    limit: Limit = limits.DEFAULT_ENTRIES_PAGE,
    cursor: EntriesCursor = None,
) -> Response[ListingDetail]:
    """A listing and one page of its entries in rank order."""
    listing = await catalog.listing(db, listing_id)
    page = await catalog.entries_page(db, listing_id, catalog.page_request(limit, cursor))
    return cached(request, ListingDetail(listing, page.items, page.next_cursor))


@route(
    post,
    "/v1/listings",
    "submitListing",
    "Submit a raw listing",
    "listings",
    401,
    413,
    status_code=202,
    guards=[require_api_key],
    security=[{"bearer": []}],
    operation_class=SubmitOperation,
)
async def submit_listing(
    request: Request[Any, Any, Any],
    db: Db,
    format: Annotated[
        ListingFormat | None,
        Parameter(description="the input's format (detected when absent)", examples=[Example(value="page")]),
    ] = None,
    year: Annotated[
        int | None,
        Parameter(
            ge=limits.YEARS[0], le=limits.YEARS[1], description="year of the date label", examples=[Example(value=2024)]
        ),
    ] = None,
    source: Annotated[
        str,
        Parameter(
            max_length=limits.MAX_SOURCE_CHARS,
            description="name to report the input under",
            examples=[Example(value="daily-2024-03-11.txt")],
        ),
    ] = "api",
) -> JobAccepted:
    """Queue a listing in any format (chosen by `format`, else the Content-Type, else detection); needs the API key.

    It is parsed before it is queued: what is not a listing is refused with the reason and line the CLI gives.
    """
    content_type = request.headers.get("content-type")
    kind = None if format is None else format.value
    submission = submissions.Submission(await request.body(), source, kind, year, content_type)
    job_id = await submissions.submit(db, submission)
    return JobAccepted(job_id, f"/v1/jobs/{job_id}")


@route(get, "/v1/jobs/{job_id:str}", "getJob", "Get an ingest job", "listings", 404)
async def get_job(request: Request[Any, Any, Any], db: Db, job_id: JobKey) -> Response[JobStatusView]:
    """The status of a submitted listing's ingest job, and its result when done."""
    return cached(request, await submissions.job_status(db, job_id))


ROUTES = [list_listings, get_listing, submit_listing, get_job]
