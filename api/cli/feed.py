"""The `papers` subcommands that put papers in the database: ingest, pull, embed and the queue's worker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import msgspec

from ingest.batch import enqueue_paths, ingest_paths
from ingest.bulk import bulk_ingest
from ingest.embed import EmbedReport, embed_pending, reembed_all
from ingest.embedder import from_settings, space_of
from ingest.pull import Fetcher, PullResult, days, pull_all
from ingest.worker import Worker, install_signal_handlers
from schema.errors import InvalidInputError, UnavailableError
from schema.ingest import FieldMap, IngestError, IngestSummary
from schema.pull import PullTarget
from schema.settings import Settings
from sql import db

MAX_PULL_DAYS = 366


def format_error(error: IngestError) -> str:
    """`papers: FILE:LINE: message`, the line left out where none applies."""
    where = f"{error.source}:{error.line}" if error.line else error.source
    return f"papers: {where}: {error.message}"


def print_summary(summary: IngestSummary, as_json: bool) -> None:
    """Print an ingest's errors (one `papers: FILE:LINE: message` each) and its summary, as text or one JSON line."""
    for error in summary.errors:
        print(format_error(error), file=sys.stderr)
    if as_json:
        print(msgspec.json.encode(summary).decode())
        return
    print(
        f"listings: {summary.listings} new, {summary.listings_unchanged} unchanged; "
        f"entries: {summary.entries}; papers: {summary.papers_new} new, {summary.papers_updated} updated; "
        f"rejected: {summary.rejected}; embedded: {summary.embedded}"
        + (f" ({summary.embed_failed} failed, kept for retry)" if summary.embed_failed else "")
        + f"; errors: {len(summary.errors)}"
    )


async def ingest_inline(
    settings: Settings,
    paths: Sequence[str],
    *,
    fmt: str | None,
    year: int | None,
    embed: bool,
    fields: FieldMap | None = None,
    bulk: bool = False,
) -> IngestSummary:
    """Ingest paths in this process (with `bulk`, in one transaction) and embed the new papers unless told not to."""
    embedder = from_settings(settings.embedder) if embed else None
    async with db.connection(await db.migrated_url(settings)) as conn:
        if not bulk:
            return await ingest_paths(conn, paths, fmt=fmt, year=year, embedder=embedder, progress=True, fields=fields)
        summary = await bulk_ingest(conn, paths, fmt=fmt, year=year, progress=True, fields=fields)
        if embedder is not None:
            report = await embed_pending(conn, embedder, progress=True)
            summary.embedded, summary.embed_failed = report.embedded, report.failed
        return summary


def field_map(spec: str) -> FieldMap:
    """argparse type of --map: a ValueError becomes a usage error naming the option."""
    try:
        return FieldMap.parse(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest listing files, directories or stdin (or, with --queue, queue them for the workers)."""
    if args.queue and args.bulk:
        print("papers: --bulk loads inline; it cannot be combined with --queue", file=sys.stderr)
        return 2
    if args.queue:
        if args.map is not None:
            print(
                "papers: --map cannot be queued (a job keeps only --format and --year); ingest inline", file=sys.stderr
            )
            return 2

        async def enqueue() -> tuple[list[str], list[IngestError]]:
            async with db.connection(await db.migrated_url(settings)) as conn:
                return await enqueue_paths(conn, args.paths, fmt=args.format, year=args.year)

        job_ids, errors = asyncio.run(enqueue())
        print("\n".join(f"queued {job_id}" for job_id in job_ids))
        for error in errors:
            print(format_error(error), file=sys.stderr)
        return 1 if errors else 0
    summary = asyncio.run(
        ingest_inline(
            settings,
            args.paths,
            fmt=args.format,
            year=args.year,
            embed=not args.no_embed,
            fields=args.map,
            bulk=args.bulk,
        )
    )
    print_summary(summary, args.json)
    return 1 if summary.errors else 0


def _pull_targets(args: argparse.Namespace) -> list[PullTarget]:
    if args.site == "hf":
        if args.date and (args.start or args.end):
            raise InvalidInputError("give --date or --from/--to, not both")
        first, last = (args.date, args.date) if args.date else (args.start, args.end or args.start)
        if first is None:
            return [PullTarget("hf")]  # today
        if last < first or (last - first).days > MAX_PULL_DAYS:
            raise InvalidInputError(f"--from must not be after --to, and a range is at most {MAX_PULL_DAYS} days")
        return [PullTarget("hf", day) for day in days(first, last)]
    if bool(args.category) == bool(args.query):
        raise InvalidInputError("give --category CATEGORY or --query QUERY")
    if args.category:
        return [PullTarget.parse(f"arxiv:{args.category}")]
    return [PullTarget("arxiv", query=args.query, max_results=args.max_results)]


def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    """Pull listings from Hugging Face or arXiv and ingest them (then embed the new papers)."""
    targets = _pull_targets(args)
    embedder = None if args.no_embed else from_settings(settings.embedder)

    async def run() -> list[PullResult]:
        fetcher = Fetcher(settings.pull)
        try:
            async with db.connection(await db.migrated_url(settings)) as conn:
                results = await pull_all(conn, fetcher, targets)
                if embedder is not None:
                    await embed_pending(conn, embedder, progress=True)
                return results
        finally:
            await fetcher.aclose()

    results = asyncio.run(run())
    for result in results:
        print(result.describe(), file=sys.stderr if result.failed else sys.stdout)
    if args.json:
        print(msgspec.json.encode(results).decode())
    return 1 if any(r.failed for r in results) else 0


def cmd_embed(args: argparse.Namespace, settings: Settings) -> int:
    """Embed papers that lack a vector (with --all: switch to the configured model and re-embed everything)."""
    embedder = from_settings(settings.embedder)
    if embedder is None:
        raise UnavailableError("no embedder configured (PAPERS_EMBEDDER=none)")

    async def run() -> EmbedReport:
        async with db.connection(await db.migrated_url(settings)) as conn:
            action = reembed_all if args.all else embed_pending
            return await action(conn, embedder, progress=True)

    report = asyncio.run(run())
    failed = f"; {report.failed} failed" if report.failed else ""
    print(f"embedded {report.embedded} papers with {space_of(embedder)}{failed}")
    return 1 if report.failed else 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Process queued ingest jobs until SIGTERM (or, with --once, until the queue is empty)."""

    async def run() -> int:
        worker = Worker(
            db.session_url(settings, await db.migrated_url(settings)),
            poll_seconds=args.poll,
            embedder=from_settings(settings.embedder),
            pulls=settings.pull,
        )
        install_signal_handlers(worker)
        return await worker.run(once=args.once)

    done = asyncio.run(run())
    print(f"worker stopped after {done} job(s)", file=sys.stderr)
    return 0
