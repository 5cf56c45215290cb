"""The `papers` command line: database, migrations, ingest, worker, serve and demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import msgspec
from tqdm import tqdm

from ingest.parsers import FORMATS
from ingest.pipeline import Source, ingest_source, read_sources
from schema.ingest import IngestError, IngestSummary
from sql import db
from ingest.embedder import EmbeddingError
from sql.embeddings import SpaceMismatch
from sql.migrate import MigrationError

SEEDS = Path("../shared/seeds")


def cmd_db(args: argparse.Namespace) -> int:
    """Manage the embedded database: start, stop, status, url."""
    embedded = db.EmbeddedPostgres()
    if args.action == "start":
        print(embedded.start())
    elif args.action == "stop":
        print("stopped" if embedded.stop() else "not running")
    elif args.action == "status":
        url = embedded.url()
        print(f"running {url}" if url else "not running")
        return 0 if url else 3
    else:
        print(db.database_url(start=False))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations."""
    from sql.migrate import migrate

    async def run() -> list[str]:
        url = await asyncio.to_thread(db.database_url)
        async with db.connection(url, vector=False) as conn:
            return await migrate(conn)

    applied = asyncio.run(run())
    print("\n".join(f"applied {name}" for name in applied) or "schema is up to date")
    return 0


def _format_error(error: IngestError) -> str:
    where = f"{error.source}:{error.line}" if error.line else error.source
    return f"papers: {where}: {error.message}"


async def ingest_paths(
    paths: Sequence[str], *, fmt: str | None, year: int | None, queue: bool = False, embed: bool = True
) -> IngestSummary | list[str]:
    """Ingest (or with queue, enqueue) every input under paths, then embed new papers; return the summary or job ids."""
    from ingest.embed import embed_pending
    from ingest.embedder import from_env
    from sql import jobs

    url = await db.migrated_url()
    summary, job_ids = IngestSummary(), []
    async with db.connection(url) as conn:
        for source in tqdm(list(read_sources(list(paths))), desc="ingest", unit="listing", disable=None, file=sys.stderr):
            if isinstance(source, IngestError):
                summary.errors.append(source)
            elif queue:
                job_ids.append(await jobs.enqueue(conn, source.name, source.raw, fmt=fmt, year=year))
            else:
                summary.add(await ingest_source(conn, source, fmt=fmt, year=year))
        embedder = from_env() if embed and not queue else None
        if embedder is not None:
            report = await embed_pending(conn, embedder, progress=True)
            summary.embedded, summary.embed_failed = report.embedded, report.failed
    return job_ids if queue else summary


def _print_summary(summary: IngestSummary, as_json: bool) -> None:
    for error in summary.errors:
        print(_format_error(error), file=sys.stderr)
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


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest listing files, directories or stdin."""
    outcome = asyncio.run(
        ingest_paths(args.paths, fmt=args.format, year=args.year, queue=args.queue, embed=not args.no_embed)
    )
    if isinstance(outcome, list):
        print("\n".join(f"queued {job_id}" for job_id in outcome))
        return 0
    _print_summary(outcome, args.json)
    return 1 if outcome.errors else 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed papers that lack a vector (with --all: switch to the configured model and re-embed everything)."""
    from ingest.embed import embed_pending, reembed_all
    from ingest.embedder import from_env

    embedder = from_env()
    if embedder is None:
        raise db.DatabaseError("no embedder configured (PAPERS_EMBEDDER=none)")

    async def run():
        async with db.connection(await db.migrated_url()) as conn:
            action = reembed_all if args.all else embed_pending
            return await action(conn, embedder, progress=True)

    report = asyncio.run(run())
    print(f"embedded {report.embedded} papers with {embedder.model}" + (f"; {report.failed} failed" if report.failed else ""))
    return 1 if report.failed else 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Process queued ingest jobs until SIGTERM (or, with --once, until the queue is empty)."""
    from ingest.embedder import from_env
    from ingest.worker import Worker, install_signal_handlers

    async def run() -> int:
        worker = Worker(await db.migrated_url(), poll_seconds=args.poll, embedder=from_env())
        install_signal_handlers(worker)
        return await worker.run(once=args.once)

    done = asyncio.run(run())
    print(f"worker stopped after {done} job(s)", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the embedded database, migrate, ingest the seeds (or the given paths), show what is stored, serve."""
    paths = args.paths or [str(SEEDS)]
    if not args.paths and not SEEDS.is_dir():
        raise db.DatabaseError(f"no paths given and {SEEDS} does not exist; run `papers demo PATH...`")
    summary = asyncio.run(ingest_paths(paths, fmt=None, year=None))
    _print_summary(summary, as_json=False)  # type: ignore[arg-type]
    print(asyncio.run(_stored_counts()), flush=True)
    if summary.errors:  # type: ignore[union-attr]
        return 1
    if args.no_serve:
        return 0
    # Listings submitted to the demo (POST /v1/listings, submitListing) are ingested by a worker of its own.
    worker = subprocess.Popen([sys.executable, "-m", "ingest.cli", "worker"])
    print(f"worker   pid {worker.pid} ingests submitted listings", file=sys.stderr)
    try:
        return cmd_serve(args)
    finally:
        worker.send_signal(signal.SIGTERM)  # it finishes the job it is running, then exits
        worker.wait(timeout=60)


async def _stored_counts() -> str:
    from sql.queries import stats as collection_stats

    async with db.connection(await db.migrated_url()) as conn:
        stats = await collection_stats(conn)
    return "stored: " + ", ".join(f"{value} {name}" for name, value in msgspec.structs.asdict(stats).items())


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the REST and GraphQL API with granian (migrating first, so workers start on a current schema)."""
    from granian import Granian
    from granian.constants import Interfaces

    asyncio.run(db.migrated_url())
    base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    print(f"REST     {base}/v1/papers\nOpenAPI  {base}/schema\nGraphiQL {base}/graphql", file=sys.stderr)
    # granian stops gracefully on SIGTERM/SIGINT: in-flight requests finish, lifespans close the pools.
    Granian("api.asgi:app", address=args.host, port=args.port, interface=Interfaces.ASGI, workers=args.workers).serve()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="papers", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="manage the embedded PostgreSQL")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("migrate", help="apply pending SQL migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("ingest", help="ingest listing files, directories or - for stdin")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=FORMATS, help="skip detection and parse as this format")
    p.add_argument("--year", type=int, help="year of the listings' date labels (`Mar 11`)")
    p.add_argument("--json", action="store_true", help="print one JSON summary on the last line")
    p.add_argument("--queue", action="store_true", help="enqueue for `papers worker` instead of ingesting")
    p.add_argument("--no-embed", action="store_true", help="skip embedding new papers (`papers embed` does it later)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("embed", help="embed papers that lack a vector")
    p.add_argument("--all", action="store_true", help="switch to the configured model and re-embed every paper")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("worker", help="process queued ingest jobs")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls of an empty queue")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("demo", help="embedded database + ingest of the seeds, then serve the API with a worker")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--no-serve", action="store_true", help="stop after ingesting")
    _serve_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve the REST and GraphQL API")
    _serve_options(p)
    p.set_defaults(func=cmd_serve)
    return parser


def _serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `papers` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except (db.DatabaseError, MigrationError, EmbeddingError, SpaceMismatch) as exc:
        print(f"papers: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
