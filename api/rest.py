"""REST endpoints under /v1: papers, listings, jobs, stats, health."""

from __future__ import annotations  # noqa: I001

import datetime as dt
import hashlib
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Request, Response, get, post
from litestar.openapi.spec import Example
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter, PathParameter

from api.auth import require_api_key
from api.problems import Problem, documented
from ingest.parsers import FORMATS
from schema.api import (
    MAX_PAGE, doc, PAPER_FIELDS, JobStatusView, Listing, ListingEntry, Paper, PaperDetail, PaperFilter, PaperSort, Stats,
    TitleMatch,
)  # fmt: skip
from sql import jobs, queries
from sql.migrate import pending

MAX_BATCH = 500
Conn = NamedDependency[asyncpg.Connection]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}", examples=[Example(value=20)])]
Cursor = Annotated[str | None, Parameter(description="opaque `next_cursor` of the previous page",
                                          examples=[Example(value="WyJwYXBlcnM6cmVjZW50IiwiMjAyNC0wOC0wMSIsMTg0XQ")])]
PaperKey = Annotated[str, PathParameter(description="public id or arXiv id",
                                        examples=[Example(value="pap_z77nqhjb6zugfnc4"), Example(value="2403.01234")])]
ListingKey = Annotated[str, PathParameter(description="listing public id", examples=[Example(value="lst_vjq5i63cxesyipki")])]
JobKey = Annotated[str, PathParameter(description="job id from POST /v1/listings",
                                      examples=[Example(value="job_3f9c2a7b1d4e5f60a1b2")])]


NextCursor = doc(str | None, "cursor of the next page; null on the last page", "WyJwYXBlcnM6cmVjZW50IiwiMjAyNC0wOC0wMSIsMTg0XQ")


class Page(msgspec.Struct, frozen=True):
    """A page of a collection and the cursor of the next one (null on the last page)."""

    items: doc(list[Any], "the page's items (papers, or only the fields asked for)", [{"id": "pap_z77nqhjb6zugfnc4", "title": "One Epoch Is All You Need"}])
    next_cursor: NextCursor


class ListingDetail(msgspec.Struct, frozen=True):
    """A listing with one page of its entries in rank order."""

    listing: Listing
    entries: list[ListingEntry]
    next_cursor: NextCursor


class BatchRequest(msgspec.Struct, frozen=True):
    """Up to 500 paper ids (public ids or arXiv ids)."""

    ids: doc(list[str], "public ids or arXiv ids, at most 500", ["pap_z77nqhjb6zugfnc4", "2403.01234"])


class Health(msgspec.Struct, frozen=True):
    """Liveness or readiness."""

    status: doc(str, "ok (liveness) or ready (readiness)", "ok")


class JobAccepted(msgspec.Struct, frozen=True):
    """A submitted listing was queued."""

    job_id: doc(str, "id of the queued ingest job", "job_3f9c2a7b1d4e5f60a1b2")
    status_url: doc(str, "where to follow the job", "/v1/jobs/job_3f9c2a7b1d4e5f60a1b2")


def cached(request: Request, data: Any) -> Response:
    """A single-resource response with an ETag; 304 when the client's If-None-Match matches."""
    body = msgspec.json.encode(data)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    match = request.headers.get("if-none-match", "")
    if etag in {tag.strip() for tag in match.split(",")} or match.strip() == "*":
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _select_fields(items: list[Paper], fields: str | None) -> list[Any]:
    if not fields:
        return items
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = sorted(set(wanted) - PAPER_FIELDS)
    if unknown:
        raise Problem(400, f"unknown fields: {', '.join(unknown)}; known: {', '.join(sorted(PAPER_FIELDS))}")
    return [{name: getattr(item, name) for name in wanted} for item in items]


@get("/v1/papers", operation_id="listPapers", responses=documented(), summary="List papers", tags=["papers"])
async def list_papers(
    conn: Conn,
    q: Annotated[str | None, Parameter(description="full-text keywords (web search syntax)", max_length=500,
                                       examples=[Example(value="chain of thought")])] = None,
    listing: Annotated[str | None, Parameter(description="only papers in this listing (public id)",
                                             examples=[Example(value="lst_vjq5i63cxesyipki")])] = None,
    listed_from: Annotated[dt.date | None, Parameter(description="listed on or after this date",
                                                      examples=[Example(value="2024-03-01")])] = None,
    listed_to: Annotated[dt.date | None, Parameter(description="listed on or before this date",
                                                    examples=[Example(value="2024-03-31")])] = None,
    arxiv: Annotated[bool | None, Parameter(description="has (true) or lacks (false) an arXiv id",
                                            examples=[Example(value=True)])] = None,
    sort: Annotated[PaperSort, Parameter(description="most recently listed first (default), title, first_seen",
                                         examples=[Example(value="title")])] = "recent",
    limit: Limit = 20,
    cursor: Cursor = None,
    fields: Annotated[str | None, Parameter(description="comma-separated fields to return",
                                            examples=[Example(value="id,title")])] = None,
) -> Page:
    """Papers matching the filters, keyset-paginated: follow `next_cursor` until it is null."""
    flt = PaperFilter(q=q, listing=listing, listed_from=listed_from, listed_to=listed_to, arxiv=arxiv)
    items, next_cursor = await queries.papers_page(conn, flt, sort=sort, after=cursor, limit=limit)
    return Page(_select_fields(items, fields), next_cursor)


@get("/v1/papers/match", operation_id="matchPaperTitle", responses=documented(404), summary="Fuzzy title match", tags=["papers"])
async def match_paper(
    conn: Conn,
    title: Annotated[str, Parameter(min_length=3, max_length=500, examples=[Example(value="Pointer Network")])],
) -> TitleMatch:
    """The paper whose title is closest (trigram similarity), with its score; 404 when nothing is close."""
    found = await queries.match_title(conn, title)
    if found is None:
        raise Problem(404, f"no paper title is close to {title!r}")
    return found


@post("/v1/papers/batch", operation_id="batchGetPapers", responses=documented(), summary="Fetch many papers", tags=["papers"], status_code=200)
async def batch_papers(conn: Conn, data: JSONBody[BatchRequest]) -> list[Paper | None]:
    """Papers by public id or arXiv id, in the order asked, null for unknown ids."""
    if len(data.ids) > MAX_BATCH:
        raise Problem(400, f"at most {MAX_BATCH} ids per batch, got {len(data.ids)}")
    return await queries.papers_by_ids(conn, data.ids)


@get("/v1/papers/{paper_id:str}", operation_id="getPaper", responses=documented(404), summary="Get a paper", tags=["papers"])
async def get_paper(request: Request, conn: Conn, paper_id: PaperKey) -> Response[PaperDetail]:
    """One paper by public id or arXiv id, with the listings it appeared in."""
    paper = await queries.paper_detail(conn, paper_id)
    if paper is None:
        raise Problem(404, f"no paper with id {paper_id!r}")
    return cached(request, paper)


@get("/v1/listings", operation_id="listListings", responses=documented(), summary="List listings", tags=["listings"])
async def list_listings(conn: Conn, limit: Limit = 20, cursor: Cursor = None) -> Page:
    """Listings, newest date first, keyset-paginated."""
    items, next_cursor = await queries.listings_page(conn, after=cursor, limit=limit)
    return Page(items, next_cursor)


@get("/v1/listings/{listing_id:str}", operation_id="getListing", responses=documented(404), summary="Get a listing", tags=["listings"])
async def get_listing(
    request: Request, conn: Conn, listing_id: ListingKey, limit: Limit = 50, cursor: Cursor = None
) -> Response[ListingDetail]:
    """A listing and one page of its entries in rank order."""
    [listing] = await queries.listings_by_ids(conn, [listing_id])
    if listing is None:
        raise Problem(404, f"no listing with id {listing_id!r}")
    entries, next_cursor = await queries.entries_page(conn, listing_id, after=cursor, limit=limit)
    return cached(request, ListingDetail(listing, entries, next_cursor))


@post(
    "/v1/listings", operation_id="submitListing", responses=documented(401, 413), summary="Submit a raw listing", tags=["listings"],
    status_code=202, guards=[require_api_key],
)  # fmt: skip
async def submit_listing(
    request: Request,
    conn: Conn,
    format: Annotated[Literal[FORMATS] | None, Parameter(description="skip detection",
                                                         examples=[Example(value="page")])] = None,  # type: ignore[valid-type]
    year: Annotated[int | None, Parameter(ge=1990, le=2100, description="year of the date label",
                                          examples=[Example(value=2024)])] = None,
    source: Annotated[str, Parameter(max_length=200, description="name to report the input under",
                                      examples=[Example(value="daily-2024-03-11.txt")])] = "api",
) -> JobAccepted:
    """Queue a listing (text/plain page, daily-papers JSON or JSON Lines) for the worker; needs the API key."""
    body = await request.body()
    if not body.strip():
        raise Problem(400, "the request body is empty")
    if "json" in (request.content_type[0] or "") and format is None:
        _check_json(body)
    job_id = await jobs.enqueue(conn, source, body, fmt=format, year=year)
    return JobAccepted(job_id, f"/v1/jobs/{job_id}")


def _check_json(body: bytes) -> None:
    """Refuse malformed JSON at submission time instead of failing later in the worker."""
    lines = body.splitlines()
    try:
        if body.lstrip().startswith(b"["):
            msgspec.json.decode(body)
        else:
            for line in filter(bytes.strip, lines):
                msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"malformed JSON: {exc}") from None


@get("/v1/jobs/{job_id:str}", operation_id="getJob", responses=documented(404), summary="Get an ingest job", tags=["listings"])
async def get_job(request: Request, conn: Conn, job_id: JobKey) -> Response[JobStatusView]:
    """The status of a submitted listing's ingest job, and its result when done."""
    job = await jobs.get(conn, job_id)
    if job is None:
        raise Problem(404, f"no job with id {job_id!r}")
    view = JobStatusView(job.public_id, job.status, job.attempts, job.last_error, job.result, job.created_at,
                         job.finished_at)  # fmt: skip
    return cached(request, view)


@get("/v1/stats", operation_id="getStats", responses=documented(), summary="Collection totals", tags=["meta"])
async def get_stats(conn: Conn) -> Stats:
    """Counts of papers, listings, entries, rejects, embedded papers and jobs."""
    return await queries.stats(conn)


@get("/healthz", operation_id="liveness", responses=documented(), summary="Liveness", tags=["meta"])
async def healthz() -> Health:
    """The process is up."""
    return Health("ok")


@get("/readyz", operation_id="readiness", responses=documented(), summary="Readiness", tags=["meta"])
async def readyz(conn: Conn) -> Health:
    """The database is reachable and every migration is applied."""
    todo = await pending(conn)
    if todo:
        raise Problem(503, f"migrations not applied: {', '.join(todo)}")
    return Health("ready")


ROUTES = [list_papers, match_paper, batch_papers, get_paper, list_listings, get_listing, submit_listing, get_job,
          get_stats, healthz, readyz]  # fmt: skip
