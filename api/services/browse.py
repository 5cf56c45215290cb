"""Browsing the collection: facet counts, bulk export and title autocomplete, with their bounds."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import get_args

import asyncpg
import msgspec

from api.services.catalog import check_filter
from schema import limits
from schema.api import FACET_FIELDS, ExportFormat, FacetCount, FacetField, Paper, PaperFilter, Suggestion
from schema.errors import InvalidInputError
from sql import browse
from sql.routing import Source, reads, run

EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
# Litestar adds `; charset=utf-8` to a text/ type itself (given here too, it was sent twice).
MEDIA_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv"}
CSV_COLUMNS = Paper.__struct_fields__
_ENCODER = msgspec.json.Encoder()


def facet_field(by: str) -> FacetField:
    """`by` as a facet field, or InvalidInputError naming the known ones."""
    if by not in FACET_FIELDS:
        raise InvalidInputError(f"cannot group by {by!r}; known: {', '.join(FACET_FIELDS)}")
    return by


@reads
async def facets(conn: asyncpg.Connection, flt: PaperFilter, by: str) -> list[FacetCount]:
    """Counts of the papers matching the filter per value of `by`, largest first (at most MAX_FACET_GROUPS)."""
    return await browse.facets(conn, check_filter(flt), facet_field(by), limit=limits.MAX_FACET_GROUPS)


def export_format(name: str) -> ExportFormat:
    """`name` as an export format, or InvalidInputError naming the known ones."""
    if name not in EXPORT_FORMATS:
        raise InvalidInputError(f"unknown export format {name!r}; known: {', '.join(EXPORT_FORMATS)}")
    return name  # type: ignore[return-value]  # checked against EXPORT_FORMATS just above


def _csv_row(paper: Paper) -> list[object]:
    """The paper's values as its JSON has them (the same timestamp and date text), null as an empty field."""
    values = msgspec.to_builtins(paper)
    return ["" if values[name] is None else values[name] for name in CSV_COLUMNS]


def encode_batch(papers: Sequence[Paper], fmt: ExportFormat) -> bytes:
    """One batch of exported papers as JSON Lines or CSV rows (the CSV header is `csv_header()`)."""
    if fmt == "jsonl":
        return b"".join(_ENCODER.encode(p) + b"\n" for p in papers)
    out = io.StringIO(newline="")
    csv.writer(out).writerows(_csv_row(p) for p in papers)
    return out.getvalue().encode()


def csv_header() -> bytes:
    """The CSV header line: the paper fields in contract order."""
    out = io.StringIO(newline="")
    csv.writer(out).writerow(CSV_COLUMNS)
    return out.getvalue().encode()


async def export(source: Source, flt: PaperFilter, fmt: str, *, rows: bool = True) -> AsyncIterator[bytes]:
    """Every paper matching the filter, encoded, one batch of EXPORT_BATCH papers per chunk.

    Each batch borrows a connection only while its statement runs, and the next is read only when the
    consumer asks for it: memory stays at one batch, a slow reader slows the export and holds no connection.
    The format and filter are checked, and the first batch read, before the stream starts: a request the
    database refuses (a NUL in a filter, the database gone) fails before any byte is sent, as a 4xx or 503.

    Without `rows` (HEAD) the same checks run and the database gets the same statement with LIMIT 0, which
    it refuses alike but answers without reading a paper; the chunks are then none.
    """
    chosen, flt = export_format(fmt), check_filter(flt)
    first = await run(source, "read", browse.papers_after, flt, 0, limits.EXPORT_BATCH if rows else 0)
    return _chunks(source, flt, chosen, first) if rows else _none()


async def _none() -> AsyncIterator[bytes]:
    nothing: tuple[bytes, ...] = ()
    for chunk in nothing:  # an async iterator of no chunks
        yield chunk


async def _chunks(
    source: Source, flt: PaperFilter, fmt: ExportFormat, first: tuple[list[Paper], int | None]
) -> AsyncIterator[bytes]:
    if fmt == "csv":
        yield csv_header()
    papers, last = first
    while True:
        if papers:
            yield encode_batch(papers, fmt)
        if len(papers) < limits.EXPORT_BATCH or last is None:  # a short batch was the last
            return
        papers, last = await run(source, "read", browse.papers_after, flt, last, limits.EXPORT_BATCH)


@reads
async def autocomplete(conn: asyncpg.Connection, text: str, limit: int = limits.MAX_SUGGESTIONS) -> list[Suggestion]:
    """Up to `limit` (at most MAX_SUGGESTIONS) titles that start with the text, then titles with a word like it."""
    low, high = limits.AUTOCOMPLETE_CHARS
    typed = " ".join(text.split())
    if not low <= len(typed) <= high:
        raise InvalidInputError(f"q must be {low} to {high} characters (spaces collapsed)")
    if not 1 <= limit <= limits.MAX_SUGGESTIONS:
        raise InvalidInputError(f"limit must be between 1 and {limits.MAX_SUGGESTIONS}, got {limit}")
    return await browse.suggest(conn, typed, limit)
