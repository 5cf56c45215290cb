"""REST routes for browsing: bulk export and title autocomplete (facets are `group_by` on /v1/papers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.response import Stream

from api.http.observe import is_head
from api.rest.params import Db, HasArxiv, InListing, ListedFrom, ListedTo, Query, query, route, strict_booleans
from api.services import browse
from schema import limits
from schema.api import ExportFormat, PaperFilter, Suggestion, doc


class Suggestions(msgspec.Struct, frozen=True):
    """Titles completing what was typed: those starting with it first, then those with a word like it."""

    items: Annotated[list[Suggestion], doc(f"at most {limits.MAX_SUGGESTIONS}", [])]


@dataclass
class ExportOperation(Operation):
    """The export's 200 in both its media types: a ResponseSpec names one, and the stream's own replaces it."""

    def __post_init__(self) -> None:
        self.responses = {**(self.responses or {}), "200": EXPORTED}


# Schemathesis and generated clients read no JSON Lines; the line's schema is still the paper's.
EXPORTED = OpenAPIResponse(
    description="every matching paper, streamed: JSON Lines (one paper a line, the default) or, with format=csv,"
    " CSV with a header line; HEAD answers the headers GET would without reading a paper",
    headers={
        "Content-Disposition": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING), description='attachment; filename="papers.jsonl" (or .csv)'
        )
    },
    content={
        browse.MEDIA_TYPES["jsonl"]: OpenAPIMediaType(schema=Reference("#/components/schemas/Paper")),
        browse.MEDIA_TYPES["csv"]: OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.STRING,
                description=f"UTF-8 CSV (RFC 4180) with the header line {','.join(browse.CSV_COLUMNS)}; an empty"
                " field is null",
            ),
            example=browse.csv_header().decode(),
        ),
    },
)


@route(
    get,
    "/v1/export",
    "exportPapers",
    "Export every matching paper",
    "papers",
    guards=[strict_booleans],
    operation_class=ExportOperation,
)
async def export_papers(
    request: Request[Any, Any, Any],
    db: Db,
    q: Query = None,
    listing: InListing = None,
    listed_from: ListedFrom = None,
    listed_to: ListedTo = None,
    arxiv: HasArxiv = None,
    format: Annotated[ExportFormat, query("jsonl (one JSON paper a line) or csv", "csv")] = "jsonl",
) -> Stream:
    """Every paper matching the filters, streamed in batches with constant server memory."""
    flt = PaperFilter(q=q, listing=listing, listed_from=listed_from, listed_to=listed_to, arxiv=arxiv)
    chunks = await browse.export(db, flt, format, rows=not is_head(request.scope))
    disposition = f'attachment; filename="papers.{format}"'
    return Stream(chunks, media_type=browse.MEDIA_TYPES[format], headers={"Content-Disposition": disposition})


@route(get, "/v1/autocomplete", "autocompleteTitles", "Title suggestions", "papers")
async def autocomplete(
    db: Db,
    q: Annotated[
        str,
        query(
            "the start of a title, or a fragment of one",
            "chain of tho",
            min_length=limits.AUTOCOMPLETE_CHARS[0],
            max_length=limits.AUTOCOMPLETE_CHARS[1],
        ),
    ],
    limit: Annotated[
        int, query(f"suggestions, at most {limits.MAX_SUGGESTIONS}", 5, ge=1, le=limits.MAX_SUGGESTIONS)
    ] = limits.MAX_SUGGESTIONS,
) -> Suggestions:
    """Up to 10 titles: those that start with `q` (case-insensitive), then those with a word close to it."""
    return Suggestions(await browse.autocomplete(db, q, limit))


ROUTES = [export_papers, autocomplete]
