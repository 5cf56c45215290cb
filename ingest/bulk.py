"""Bulk load: many inputs in one transaction through the ordinary store, with index work done once at the end.

Every listing goes through `ingest_source` (the same parsers, normalizer and merge rules, each listing under a
savepoint so one bad input is reported and the others go on); only the per-row work of the secondary indexes and of
the keyword and title-word triggers is deferred (sql/bulk.py) and done once, set-based, before the commit. A crash
or a kill at any point rolls the whole load back; running it again stores everything (docs/design.md, "Bulk load").
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence

import asyncpg
from tqdm import tqdm

from ingest.batch import report_failure
from ingest.pipeline import ingest_source, read_sources
from schema.ingest import FieldMap, IngestError, IngestSummary, ListingResult
from sql import bulk
from sql.db import CONNECTION_LOST
from sql.store import existing_listing


async def bulk_ingest(
    conn: asyncpg.Connection,
    paths: Sequence[str],
    *,
    fmt: str | None = None,
    year: int | None = None,
    progress: bool = False,
    fields: FieldMap | None = None,
) -> IngestSummary:
    """Ingest every input under paths in one transaction, indexes built once at the end; errors are collected."""
    summary = IngestSummary()
    deferred: bulk.Deferred | None = None
    bar = tqdm(desc="bulk ingest", unit="input", disable=None if progress else True, file=sys.stderr)
    async with conn.transaction():
        for source in read_sources(list(paths)):  # read lazily: the inputs are never all in memory
            bar.update()
            if isinstance(source, IngestError):
                summary.errors.append(source)
                continue
            known = await existing_listing(conn, hashlib.sha256(source.raw).hexdigest())
            if known is not None:  # a rerun of stored inputs defers nothing and rebuilds nothing
                summary.add(
                    ListingResult(source.name, known, unchanged=True, listing_ids=[known], listings_unchanged=1)
                )
                continue
            if deferred is None:
                deferred = await bulk.defer(conn)
            try:
                async with conn.transaction():  # a savepoint: a failed input leaves the load usable
                    summary.add(await ingest_source(conn, source, fmt=fmt, year=year, fields=fields))
            except CONNECTION_LOST:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad input never stops the others; it is reported by name
                summary.errors.append(report_failure(source.name, exc))
        bar.close()
        if deferred is not None:
            await bulk.rebuild(conn, deferred)
    if deferred is not None:
        await conn.execute("ANALYZE papers, keyword_postings, keyword_terms, paper_title_words, listing_entries")
    return summary
