"""Bulk load: many inputs in one transaction through the ordinary store, with index work done once at the end.

Every listing goes through `ingest_source` (the same parsers, normalizer and merge rules, each listing under a
savepoint so one bad input is reported and the others go on); only the per-row work of the secondary indexes and of
the keyword and title-word triggers is deferred (sql/bulk.py) and done once, set-based, before the commit. A crash
or a kill at any point rolls the whole load back; running it again stores everything (docs/design.md, "Bulk load").
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Sequence

import asyncpg
from tqdm import tqdm

from ingest.batch import report_failure
from ingest.pipeline import ingest_source, read_sources
from schema.ingest import FieldMap, IngestError, IngestSummary, ListingResult
from sql import bulk
from sql.db import CONNECTION_LOST
from sql.store import existing_listing

log = logging.getLogger("papers.ingest")


class _Phases:
    """Logs how long each phase of a load took (`-v`); the benchmark reads the records' `bulk_phase` and `seconds`."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def done(self, phase: str) -> None:
        """Log the phase that just ended and start timing the next."""
        now = time.perf_counter()
        seconds, self.started = now - self.started, now
        log.info("bulk load: %s in %.1f s", phase, seconds, extra={"bulk_phase": phase, "seconds": seconds})


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
    phases = _Phases()
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
                phases, deferred = _Phases(), await bulk.defer(conn)
            try:
                async with conn.transaction():  # a savepoint: a failed input leaves the load usable
                    summary.add(await ingest_source(conn, source, fmt=fmt, year=year, fields=fields))
            except CONNECTION_LOST:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad input never stops the others; it is reported by name
                summary.errors.append(report_failure(source.name, exc))
        bar.close()
        if deferred is not None:
            await _rebuild(conn, deferred, phases)
    if deferred is not None:
        await conn.execute("ANALYZE papers, keyword_postings, keyword_terms, paper_title_words, listing_entries")
        phases.done("analyze")
    return summary


async def _rebuild(conn: asyncpg.Connection, deferred: bulk.Deferred, phases: _Phases) -> None:
    """The deferred work, phase by phase: the keyword index and title words, then the dropped indexes."""
    phases.done("store")
    await bulk.write_keyword_index(conn)
    phases.done("keyword index")
    await bulk.restore(conn, deferred)
    phases.done("indexes")
