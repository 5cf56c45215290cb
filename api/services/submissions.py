"""Listing submissions: who may write, what a submission must look like, and following its job."""

from __future__ import annotations

import asyncio
import hmac

import asyncpg
import msgspec

from ingest.parsers import parse_listings
from ingest.parsers.detect import detect_json
from ingest.text import decode
from schema import limits
from schema.api import JobStatusView
from schema.errors import InvalidInputError, NotAListingError, NotFoundError, UnauthenticatedError
from schema.ingest import FORMATS
from sql import jobs
from sql.routing import Source, run

NO_KEY = "writes are disabled: the server has no API key configured (PAPERS_API_KEY)"
WRONG_KEY = "missing or wrong API key: send `Authorization: Bearer <key>`"


def write_refusal(api_key: str | None, authorization: str | None) -> UnauthenticatedError | None:
    """Why a request with this Authorization header may not write, or None when it may."""
    if not api_key:
        return UnauthenticatedError(NO_KEY)
    if not authorization or not authorization.startswith("Bearer "):
        return UnauthenticatedError(WRONG_KEY)
    if not hmac.compare_digest(authorization[len("Bearer ") :].encode(), api_key.encode()):
        return UnauthenticatedError(WRONG_KEY)
    return None


class Submission(msgspec.Struct, frozen=True):
    """A raw listing to queue, with how to read it."""

    payload: bytes
    source: str
    format: str | None = None
    year: int | None = None
    content_type: str | None = None  # as sent (REST); it names the format when `format` does not


# Media types that name a format; JSON names a family (one document or JSON Lines, told apart by
# detection); text/plain, XML and anything else leave the format to detection.
MEDIA_FORMATS = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/atom+xml": "atom",
    "application/rss+xml": "rss",
    "application/rdf+xml": "rss",
    "text/html": "html",
    "application/xhtml+xml": "html",
}


def format_for(content_type: str | None) -> str | None:
    """The format a Content-Type names, if any."""
    media = (content_type or "").split(";")[0].strip().lower()
    return MEDIA_FORMATS.get(media)


def check(submission: Submission) -> Submission:
    """Refuse a submission that could never be ingested, before it is queued."""
    if not submission.payload.strip():
        raise InvalidInputError("the listing is empty")
    if submission.format is not None and submission.format not in FORMATS:
        raise InvalidInputError(f"unknown format {submission.format!r}; expected one of {', '.join(FORMATS)}")
    low, high = limits.YEARS
    if submission.year is not None and not low <= submission.year <= high:
        raise InvalidInputError(f"year must be between {low} and {high}, got {submission.year}")
    if not submission.source.strip() or len(submission.source) > limits.MAX_SOURCE_CHARS:
        raise InvalidInputError(f"source must be 1 to {limits.MAX_SOURCE_CHARS} characters")
    fmt = submission.format or format_for(submission.content_type)
    return msgspec.structs.replace(submission, format=fmt)


def check_listing(submission: Submission) -> None:
    """Parse the submission as the worker will, refusing what is not a listing with the CLI's reason and line."""
    try:
        text = decode(submission.payload)
        media = (submission.content_type or "").split(";")[0].strip().lower()
        if submission.format is None and (media == "application/json" or media.endswith("+json")):
            if text.lstrip()[:1] not in ("[", "{"):
                raise NotAListingError("declared as JSON, but the body is not a JSON array or object", 1)
            detect_json(text)
        parse_listings(text, submission.format)
    except NotAListingError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise InvalidInputError(f"{where}{exc.message}", line=exc.line) from None


async def submit(source: Source, submission: Submission) -> str:
    """Check a submission, parse it as the worker will (off the event loop), queue it; return the job id.

    The job is written on the primary; the answer carries the position to read it back at (sql/routing.py).
    """
    submission = check(submission)
    await asyncio.to_thread(check_listing, submission)
    s = submission
    return await run(source, "write", jobs.enqueue, s.source, s.payload, fmt=s.format, year=s.year)


async def job_status(source: Source, job_id: str) -> JobStatusView:
    """A job as clients see it; NotFoundError when unknown.

    Read anywhere its id is known (a replica that has not replayed the submission asks the primary), and the
    answer marks the position it was read at: papers of a job seen done are then read no older than that.
    """
    return await run(source, "lookup", _job_status, job_id, mark=True)


async def _job_status(conn: asyncpg.Connection, job_id: str) -> JobStatusView:
    job = await jobs.get(conn, job_id)
    if job is None:
        raise NotFoundError(f"no job with id {job_id!r}")
    result = (job.result or {}) if job.status == "done" else {}
    # A file whose items carry several days became several listings: its papers are those of all of them.
    listing_ids = result.get("listing_ids") or ([result["listing_id"]] if result.get("listing_id") else [])
    to_embed = await jobs.papers_to_embed(conn, listing_ids) if listing_ids else None
    return JobStatusView(
        job.public_id, job.status, job.attempts, job.last_error, job.result, job.created_at, job.finished_at, to_embed
    )
