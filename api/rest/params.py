"""The REST parameters and response envelopes the routes share, each declared once with its documentation."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any, get_args

import msgspec
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Example
from litestar.params import Parameter, PathParameter

from api.rest.problems import documented
from api.services import search
from schema import limits, paging
from schema.api import (
    FacetField,
    Listing,
    ListingEntry,
    Paper,
    PaperFilter,
    PaperSort,
    ScoredPaper,
    SearchMode,
    doc,
)
from schema.errors import InvalidInputError
from sql import cursor
from sql.queries import entries_kind
from sql.routing import Session

Db = NamedDependency[Session]


def _choices(name: str, values: Any, *, reversible: bool = False) -> Any:
    """A string enum of a contract Literal's values (and each reversed, `-value`), named once for OpenAPI."""
    names = list(get_args(values))
    members = [(v, v) for v in names] + ([(f"-{v}", f"-{v}") for v in names] if reversible else [])
    return enum.StrEnum(name, members)


PaperOrder = _choices("PaperOrder", PaperSort, reversible=True)
SearchModes = _choices("SearchMode", SearchMode)
FacetFields = _choices("FacetField", FacetField)


def query(description: str, example: Any, **constraints: Any) -> Any:
    """A query parameter's documentation (and constraints), with one example."""
    return Parameter(description=description, examples=[Example(value=example)], **constraints)


def path(description: str, *examples: Any) -> Any:
    """A path parameter's documentation, with its examples."""
    return PathParameter(description=description, examples=[Example(value=e) for e in examples])


def route(method: Any, url: str, operation_id: str, summary: str, tag: str, *errors: int, **options: Any) -> Any:
    """A route decorator (`get`, `post`) with its OpenAPI name, summary, tag and problem responses; a query
    parameter the route does not take is refused (400, naming it)."""
    guards = [known_parameters, *options.pop("guards", [])]
    return method(
        url,
        operation_id=operation_id,
        summary=summary,
        tags=[tag],
        responses=documented(*errors),
        guards=guards,
        **options,
    )


_TAKEN: dict[Any, frozenset[str]] = {}


async def known_parameters(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: 400 naming the query parameters the route does not take, instead of ignoring a misspelt filter.

    (A typo such as `listed_form=` would otherwise return the unfiltered collection as if it were the answer.)
    """
    # By the handler's function: Litestar hands each guard call a copy of the handler.
    taken = _TAKEN.get(handler.fn)
    if taken is None:
        taken = _TAKEN[handler.fn] = frozenset(handler.parsed_fn_signature.parameters)
    unknown = sorted(set(connection.query_params) - taken)
    if unknown:
        raise InvalidInputError(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)};"
            f" this endpoint takes: {', '.join(sorted(taken - _NOT_QUERY)) or 'none'}"
        )


_NOT_QUERY = frozenset({"request", "db", "data", "paper_id", "listing_id", "job_id"})


# Each collection's example cursor is one its own endpoint accepts (a cursor of another query is refused).
EXAMPLE_LISTING = "lst_vjq5i63cxesyipki"
EXAMPLE_QUERY = "shorter chain of thought reasoning"
PAPERS_CURSOR = cursor.encode("papers:recent", ["2024-08-01", 184])
LISTINGS_CURSOR = cursor.encode("listings", ["2024-03-11", 3])
ENTRIES_CURSOR = cursor.encode(entries_kind(EXAMPLE_LISTING), [50])
SEARCH_CURSOR = cursor.encode(search.cursor_kind(EXAMPLE_QUERY, "hybrid", PaperFilter()), [20])


def cursor_param(example: str) -> Any:
    """A `cursor` query parameter with an example its endpoint accepts."""
    return Annotated[str | None, query("opaque `next_cursor` of the previous page", example)]


Limit = Annotated[int, query(f"page size, at most {limits.MAX_PAGE}", 20, ge=1, le=limits.MAX_PAGE)]
PapersCursor = cursor_param(PAPERS_CURSOR)
ListingsCursor = cursor_param(LISTINGS_CURSOR)
EntriesCursor = cursor_param(ENTRIES_CURSOR)
SearchCursor = cursor_param(SEARCH_CURSOR)
PaperKey = Annotated[str, path("public id or arXiv id", "pap_z77nqhjb6zugfnc4", "2403.01234")]
ListingKey = Annotated[str, path("listing public id", EXAMPLE_LISTING)]
JobKey = Annotated[str, path("job id from POST /v1/listings", "job_3f9c2a7b1d4e5f60a1b2")]
Query = Annotated[
    str | None,
    query(
        "full-text keywords (web search syntax: quotes, or, -)", "chain of thought", max_length=limits.MAX_QUERY_CHARS
    ),
]
InListing = Annotated[
    str | None, query("only papers that appeared in this listing (public id)", "lst_vjq5i63cxesyipki")
]
ListedFrom = Annotated[dt.date | None, query("only papers listed on or after this date", "2024-03-01")]
ListedTo = Annotated[dt.date | None, query("only papers listed on or before this date", "2024-03-31")]
HasArxiv = Annotated[bool | None, query("only papers with (true) or without (false) an arXiv id", True)]
NextCursor = Annotated[str | None, doc("cursor of the next page; null on the last page", PAPERS_CURSOR)]


Total = Annotated[
    int | None,
    doc(f"how many items all pages hold together, counted up to {limits.MAX_COUNTED:,} (only with count=true)", 559),
]
TotalExact = Annotated[
    bool | None,
    doc(f"false when more than {limits.MAX_COUNTED:,} items match: `total` then means at least that many", True),
]


def reported(total: paging.Total | None) -> tuple[int | None, bool | None]:
    """`total` and `total_exact` of a page: both absent unless counted."""
    return (None, None) if total is None else (total.value, total.exact)


class PaperPage(msgspec.Struct, frozen=True, omit_defaults=True):
    """A page of papers and the cursor of the next one (null on the last page)."""

    items: Annotated[list[Paper], doc("the page's papers", [])]
    next_cursor: NextCursor
    total: Total = None
    total_exact: TotalExact = None


class ListingPage(msgspec.Struct, frozen=True, omit_defaults=True):
    """A page of listings and the cursor of the next one (null on the last page)."""

    items: list[Listing]
    next_cursor: Annotated[str | None, doc("cursor of the next page; null on the last page", LISTINGS_CURSOR)]
    total: Total = None
    total_exact: TotalExact = None


class ScoredPage(msgspec.Struct, frozen=True, omit_defaults=True):
    """A page of scored papers and the cursor of the next page."""

    items: Annotated[list[ScoredPaper], doc("best first", [])]
    next_cursor: Annotated[str | None, doc("cursor of the next page; null on the last page", SEARCH_CURSOR)]
    total: Total = None
    total_exact: TotalExact = None


class ScoredList(msgspec.Struct, frozen=True):
    """Scored papers, best first."""

    items: Annotated[list[ScoredPaper], doc("best first", [])]


class ListingDetail(msgspec.Struct, frozen=True):
    """A listing with one page of its entries in rank order."""

    listing: Listing
    entries: list[ListingEntry]
    next_cursor: Annotated[str | None, doc("cursor of the next page of entries; null on the last page", ENTRIES_CURSOR)]


class BatchRequest(msgspec.Struct, frozen=True):
    """Up to 500 paper ids (public ids or arXiv ids)."""

    ids: Annotated[
        list[str], doc(f"public ids or arXiv ids, at most {limits.MAX_BATCH}", ["pap_z77nqhjb6zugfnc4", "2403.01234"])
    ]


class Health(msgspec.Struct, frozen=True):
    """Liveness or readiness."""

    status: Annotated[str, doc("ok (liveness) or ready (readiness)", "ok")]


class JobAccepted(msgspec.Struct, frozen=True):
    """A submitted listing was queued."""

    job_id: Annotated[str, doc("id of the queued ingest job", "job_3f9c2a7b1d4e5f60a1b2")]
    status_url: Annotated[str, doc("where to follow the job", "/v1/jobs/job_3f9c2a7b1d4e5f60a1b2")]


BOOLEAN_PARAMETERS = ("arxiv", "count")


async def strict_booleans(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a boolean query parameter is `true` or `false` (Litestar alone would also read 1, 0, TRUE ...).

    Async and only on the routes that take one: Litestar runs a sync guard in a worker thread, and copies the
    handler for every guard call, on every request the guard covers.
    """
    for name in BOOLEAN_PARAMETERS:
        value = connection.query_params.get(name)
        if value is not None and value not in ("true", "false"):
            raise InvalidInputError(f"`{name}` must be true or false, got {value!r}")
