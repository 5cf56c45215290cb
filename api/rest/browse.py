"""REST routes for browsing: bulk export and title autocomplete (facets are `group_by` on /v1/papers)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get
from litestar.openapi import ResponseSpec
from litestar.response import Stream

from api.rest.params import Db, HasArxiv, InListing, ListedFrom, ListedTo, Query, query, route, strict_booleans
from api.rest.problems import documented
from api.services import browse
from schema import limits
from schema.api import ExportFormat, Paper, PaperFilter, Suggestion, doc


class Suggestions(msgspec.Struct, frozen=True):
    """Titles completing what was typed: those starting with it first, then those with a word like it."""

    items: Annotated[list[Suggestion], doc(f"at most {limits.MAX_SUGGESTIONS}", [])]


@get(
    "/v1/export",
    operation_id="exportPapers",
    summary="Export every matching paper",
    tags=["papers"],
    guards=[strict_booleans],
    responses={
        **documented(),
        # The stream's own type (JSON Lines or CSV) is the answer's; the route's would replace it.
        200: ResponseSpec(
            Paper,
            description="JSON Lines (one paper a line) or, with format=csv, CSV with a header line; streamed",
            media_type=browse.MEDIA_TYPES["jsonl"],
            generate_examples=False,
        ),
    },
)
async def export_papers(
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
    chunks = await browse.export(db, flt, format)
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
