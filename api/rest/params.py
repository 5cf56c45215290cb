"""The REST parameters and response envelopes the routes share, each declared once with its documentation."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Parameter, PathParameter

from schema import limits
from schema.api import Listing, ListingEntry, ScoredPaper, doc

Conn = NamedDependency[asyncpg.Connection]
Limit = Annotated[
    int,
    Parameter(
        ge=1, le=limits.MAX_PAGE, description=f"page size, at most {limits.MAX_PAGE}", examples=[Example(value=20)]
    ),
]
Cursor = Annotated[
    str | None,
    Parameter(
        description="opaque `next_cursor` of the previous page",
        examples=[Example(value="WyJwYXBlcnM6cmVjZW50IiwiMjAyNC0wOC0wMSIsMTg0XQ")],
    ),
]
PaperKey = Annotated[
    str,
    PathParameter(
        description="public id or arXiv id",
        examples=[Example(value="pap_z77nqhjb6zugfnc4"), Example(value="2403.01234")],
    ),
]
ListingKey = Annotated[
    str, PathParameter(description="listing public id", examples=[Example(value="lst_vjq5i63cxesyipki")])
]
JobKey = Annotated[
    str,
    PathParameter(description="job id from POST /v1/listings", examples=[Example(value="job_3f9c2a7b1d4e5f60a1b2")]),
]
Query = Annotated[
    str | None,
    Parameter(
        description="full-text keywords (web search syntax: quotes, or, -)",
        max_length=limits.MAX_QUERY_CHARS,
        examples=[Example(value="chain of thought")],
    ),
]
InListing = Annotated[
    str | None,
    Parameter(
        description="only papers that appeared in this listing (public id)",
        examples=[Example(value="lst_vjq5i63cxesyipki")],
    ),
]
ListedFrom = Annotated[
    dt.date | None,
    Parameter(description="only papers listed on or after this date", examples=[Example(value="2024-03-01")]),
]
ListedTo = Annotated[
    dt.date | None,
    Parameter(description="only papers listed on or before this date", examples=[Example(value="2024-03-31")]),
]
HasArxiv = Annotated[
    bool | None,
    Parameter(description="only papers with (true) or without (false) an arXiv id", examples=[Example(value=True)]),
]
NextCursor = Annotated[
    str | None, doc("cursor of the next page; null on the last page", "WyJwYXBlcnM6cmVjZW50IiwiMjAyNC0wOC0wMSIsMTg0XQ")
]


class Page(msgspec.Struct, frozen=True):
    """A page of a collection and the cursor of the next one (null on the last page)."""

    items: Annotated[
        list[Any],
        doc(
            "the page's items (papers, or only the fields asked for)",
            [{"id": "pap_z77nqhjb6zugfnc4", "title": "One Epoch Is All You Need"}],
        ),
    ]
    next_cursor: NextCursor


class ScoredPage(msgspec.Struct, frozen=True):
    """A page of scored papers and the cursor of the next page."""

    items: list[ScoredPaper]
    next_cursor: NextCursor


class ScoredList(msgspec.Struct, frozen=True):
    """Scored papers, best first."""

    items: Annotated[list[ScoredPaper], doc("best first", [])]


class ListingDetail(msgspec.Struct, frozen=True):
    """A listing with one page of its entries in rank order."""

    listing: Listing
    entries: list[ListingEntry]
    next_cursor: NextCursor


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
