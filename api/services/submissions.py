"""Listing submissions: who may write, what a submission must look like, and following its job."""

from __future__ import annotations

import hmac

import asyncpg
import msgspec

from ingest.parsers.detect import detect_json
from ingest.text import decode
from schema import limits
from schema.api import JobStatusView
from schema.errors import InvalidInputError, NotFoundError, UnauthenticatedError
from schema.ingest import FORMATS
from sql import jobs

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
    json: bool = False  # declared as JSON by its sender: refused at once when it is not


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
    if submission.json and submission.format is None:
        _check_json(submission.payload)
    return submission


def _check_json(body: bytes) -> None:
    """Refuse what is neither one JSON document nor JSON Lines at submission time, as the CLI would.

    The same detection as ingest: a document over many lines is one document, never JSON Lines.
    """
    text = decode(body)
    if text.lstrip()[:1] not in ("[", "{"):
        raise InvalidInputError("declared as JSON, but the body is not a JSON array or object")
    detect_json(text)


async def submit(conn: asyncpg.Connection, submission: Submission) -> str:
    """Queue a checked submission for the workers; return the job id."""
    check(submission)
    return await jobs.enqueue(conn, submission.source, submission.payload, fmt=submission.format, year=submission.year)


async def job_status(conn: asyncpg.Connection, job_id: str) -> JobStatusView:
    """A job as clients see it; NotFoundError when unknown."""
    job = await jobs.get(conn, job_id)
    if job is None:
        raise NotFoundError(f"no job with id {job_id!r}")
    listing_id = (job.result or {}).get("listing_id") if job.status == "done" else None
    to_embed = await jobs.papers_to_embed(conn, listing_id) if listing_id else None
    return JobStatusView(
        job.public_id, job.status, job.attempts, job.last_error, job.result, job.created_at, job.finished_at, to_embed
    )
