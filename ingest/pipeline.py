"""One input from bytes to stored listing: read, decode, parse, resolve its date, store."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import asyncpg

from ingest import dates
from ingest.parsers import parse_listings
from ingest.store import store_listing
from ingest.text import decode
from schema.errors import NotAListingError
from schema.ingest import FieldMap, IngestError, ListingInput, ListingResult
from sql.store import existing_listing


class Source(NamedTuple):
    """One raw input and the name it is reported under."""

    name: str
    raw: bytes


class InputError(ValueError):
    """An input that is not a listing; carries the report to print."""

    def __init__(self, error: IngestError) -> None:
        super().__init__(error.message)
        self.error = error


def read_sources(paths: list[str]) -> Iterator[Source | IngestError]:
    """Yield every input named by paths: files, directories (their files, sorted) or `-` for stdin."""
    for path in paths:
        if path == "-":
            yield Source("<stdin>", sys.stdin.buffer.read())
            continue
        target = Path(path)
        if target.is_dir():
            files = sorted(p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                yield IngestError(path, "directory holds no files")
            for file in files:
                yield _read(file)
        else:
            yield _read(target)


def _read(path: Path) -> Source | IngestError:
    try:
        return Source(str(path), path.read_bytes())
    except OSError as exc:
        return IngestError(str(path), exc.strerror or str(exc))


def prepare(
    source: Source,
    *,
    fmt: str | None = None,
    year: int | None = None,
    today: dt.date | None = None,
    fields: FieldMap | None = None,
) -> list[ListingInput]:
    """Decode and parse one input into its listings (one per listing day) with resolved dates.

    Raise InputError naming the file and line.
    """
    try:
        parts = parse_listings(decode(source.raw), fmt, fields or FieldMap())
    except NotAListingError as exc:
        raise InputError(IngestError(source.name, str(exc), exc.line)) from None
    items = []
    for parsed in parts:
        listed_on = dates.resolve(parsed.date_label, year=year, source_date=parsed.listed_on, today=today)
        if parsed.date_label and listed_on is None and year is not None:
            raise InputError(IngestError(source.name, f"date label {parsed.date_label!r} is not a day of {year}"))
        raw = source.raw if parsed.raw is None else parsed.raw.encode()
        items.append(ListingInput(source.name, raw, parsed, listed_on))
    return items


def combine(source: str, results: list[ListingResult]) -> ListingResult:
    """One input's result from its listings' results: counts added up, every listing id kept."""
    if len(results) == 1:
        return results[0]
    return ListingResult(
        source,
        results[0].listing_id,
        unchanged=all(r.unchanged for r in results),
        entries=sum(r.entries for r in results),
        papers_new=sum(r.papers_new for r in results),
        papers_updated=sum(r.papers_updated for r in results),
        rejected=sum(r.rejected for r in results),
        listing_ids=[i for r in results for i in r.listing_ids],
        listings_new=sum(r.listings_new for r in results),
        listings_unchanged=sum(r.listings_unchanged for r in results),
    )


async def ingest_source(
    conn: asyncpg.Connection,
    source: Source,
    *,
    fmt: str | None = None,
    year: int | None = None,
    fields: FieldMap | None = None,
) -> ListingResult:
    """Ingest one input; content already stored is reported unchanged without being parsed again.

    An input whose items carry several listing days gives one listing per day, each stored in its
    own transaction: a crash between two leaves whole listings, and ingesting again adds the rest.
    """
    sha256 = hashlib.sha256(source.raw).hexdigest()
    known = await existing_listing(conn, sha256)
    if known is not None:
        return ListingResult(source.name, known, unchanged=True, listing_ids=[known], listings_unchanged=1)
    try:
        items = prepare(source, fmt=fmt, year=year, fields=fields)
    except InputError as exc:
        return ListingResult(source.name, error=exc.error)
    return combine(source.name, [await store_listing(conn, item) for item in items])
