"""Many inputs at once: every file of the paths given ingested (or queued), then the new papers embedded."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import asyncpg
from tqdm import tqdm

from ingest.embed import embed_pending
from ingest.embedder import Embedder
from ingest.pipeline import ingest_source, read_sources
from schema.ingest import FieldMap, IngestError, IngestSummary
from sql import jobs
from sql.db import CONNECTION_LOST, as_domain_error

log = logging.getLogger("papers.ingest")


async def ingest_paths(
    conn: asyncpg.Connection,
    paths: Sequence[str],
    *,
    fmt: str | None = None,
    year: int | None = None,
    embedder: Embedder | None = None,
    progress: bool = False,
    fields: FieldMap | None = None,
) -> IngestSummary:
    """Ingest every input under paths, then embed the new and changed papers; errors are collected, not raised."""
    summary = IngestSummary()
    sources = list(read_sources(list(paths)))
    for source in tqdm(sources, desc="ingest", unit="listing", disable=None if progress else True, file=sys.stderr):
        if isinstance(source, IngestError):
            summary.errors.append(source)
            continue
        try:
            summary.add(await ingest_source(conn, source, fmt=fmt, year=year, fields=fields))
        except CONNECTION_LOST:
            raise  # nothing after it could be stored either
        except Exception as exc:  # noqa: BLE001 - one bad input never stops the others; it is reported by name
            summary.errors.append(report_failure(source.name, exc))
    if embedder is not None:
        report = await embed_pending(conn, embedder, progress=progress)
        summary.embedded, summary.embed_failed = report.embedded, report.failed
    return summary


def report_failure(source: str, exc: Exception) -> IngestError:
    """What to tell the user about an input that failed: a client error's message, else that it is a bug."""
    known = as_domain_error(exc)
    if known is not None:
        return IngestError(source, known.message, known.line)
    log.info("ingesting %s failed", source, exc_info=exc)
    return IngestError(source, f"could not be ingested ({type(exc).__name__}); run with -v for the details")


async def enqueue_paths(
    conn: asyncpg.Connection, paths: Sequence[str], *, fmt: str | None = None, year: int | None = None
) -> tuple[list[str], list[IngestError]]:
    """Queue every input under paths as a job for `papers worker`; return the job ids and unreadable paths."""
    job_ids: list[str] = []
    errors: list[IngestError] = []
    for source in read_sources(list(paths)):
        if isinstance(source, IngestError):
            errors.append(source)
        else:
            job_ids.append(await jobs.enqueue(conn, source.name, source.raw, fmt=fmt, year=year))
    return job_ids, errors
