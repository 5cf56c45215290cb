"""The `papers` command: it reads the settings once and wires the database, ingest, the worker and the server."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import msgspec

from api.process import configure
from api.services import browse
from ingest.batch import enqueue_paths, ingest_paths
from ingest.bulk import bulk_ingest
from ingest.embed import EmbedReport, embed_pending, reembed_all
from ingest.embedder import from_settings, space_of
from ingest.pull import Fetcher, PullResult, days, pull_all
from ingest.worker import Worker, install_signal_handlers
from schema.api import PaperFilter
from schema.errors import DomainError, InvalidInputError, UnavailableError
from schema.ingest import FORMATS, FieldMap, IngestError, IngestSummary
from schema.pull import PullTarget
from schema.settings import Settings, SettingsError
from sql import db, keyword, queries
from sql.embedded import EmbeddedPostgres, database_url
from sql.migrate import MigrationError, migrate

SEEDS = Path("../shared/seeds")
MAX_PULL_DAYS = 366
Command = Callable[[argparse.Namespace, Settings], int]


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    """Manage the embedded database: start, stop, status, url."""
    embedded = EmbeddedPostgres(settings.data_dir)
    if args.action == "start":
        print(embedded.start())
    elif args.action == "stop":
        print("stopped" if embedded.stop() else "not running")
    elif args.action == "status":
        url = embedded.url()
        print(f"running {url}" if url else "not running")
        return 0 if url else 3
    else:
        print(database_url(settings, start=False))
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Apply pending migrations."""

    async def run() -> list[str]:
        async with db.connection(await asyncio.to_thread(database_url, settings), vector=False) as conn:
            return await migrate(conn)

    applied = asyncio.run(run())
    print("\n".join(f"applied {name}" for name in applied) or "schema is up to date")
    return 0


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    """Write the BM25 keyword index again from the papers (it is kept in step by triggers; this repairs it)."""

    async def run() -> int:
        async with db.connection(await db.migrated_url(settings)) as conn:
            return await keyword.rebuild(conn)

    print(f"keyword index rebuilt: {asyncio.run(run())} papers")
    return 0


def format_error(error: IngestError) -> str:
    """`papers: FILE:LINE: message`, the line left out where none applies."""
    where = f"{error.source}:{error.line}" if error.line else error.source
    return f"papers: {where}: {error.message}"


def _print_summary(summary: IngestSummary, as_json: bool) -> None:
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


async def _ingest(
    settings: Settings,
    paths: Sequence[str],
    *,
    fmt: str | None,
    year: int | None,
    embed: bool,
    fields: FieldMap | None = None,
    bulk: bool = False,
) -> IngestSummary:
    embedder = from_settings(settings.embedder) if embed else None
    async with db.connection(await db.migrated_url(settings)) as conn:
        if not bulk:
            return await ingest_paths(conn, paths, fmt=fmt, year=year, embedder=embedder, progress=True, fields=fields)
        summary = await bulk_ingest(conn, paths, fmt=fmt, year=year, progress=True, fields=fields)
        if embedder is not None:
            report = await embed_pending(conn, embedder, progress=True)
            summary.embedded, summary.embed_failed = report.embedded, report.failed
        return summary


def _field_map(spec: str) -> FieldMap:
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
        _ingest(
            settings,
            args.paths,
            fmt=args.format,
            year=args.year,
            embed=not args.no_embed,
            fields=args.map,
            bulk=args.bulk,
        )
    )
    _print_summary(summary, args.json)
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


async def _stored_counts(settings: Settings) -> str:
    async with db.connection(await db.migrated_url(settings)) as conn:
        stats = await queries.stats(conn)
    counts = {name: value for name, value in msgspec.structs.asdict(stats).items() if isinstance(value, int)}
    return "stored: " + ", ".join(f"{value} {name}" for name, value in counts.items())  # the totals, not `databases`


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Start the embedded database, migrate, ingest the seeds (or the given paths), show what is stored, serve."""
    paths = args.paths or [str(SEEDS)]
    if not args.paths and not SEEDS.is_dir():
        raise UnavailableError(f"no paths given and {SEEDS} does not exist; run `papers demo PATH...`")
    summary = asyncio.run(_ingest(settings, paths, fmt=None, year=None, embed=True))
    _print_summary(summary, as_json=False)
    print(asyncio.run(_stored_counts(settings)), flush=True)
    if summary.errors:
        return 1
    if args.no_serve:
        return 0
    if settings.api_key is None:
        # The README's write tour needs a key: the demo makes one (kept in the data directory, so it stays the same
        # from run to run) and hands it to the server through its environment, as an operator would.
        os.environ["PAPERS_API_KEY"] = demo_key(settings.data_dir)
    print(f"API key  {os.environ['PAPERS_API_KEY']}  (writes: Authorization: Bearer <key>)", file=sys.stderr)
    # Listings submitted to the demo (POST /v1/listings, submitListing) are ingested by a worker of its own.
    worker = subprocess.Popen([sys.executable, "-m", "api.cli", "worker"])
    print(f"worker   pid {worker.pid} ingests submitted listings", file=sys.stderr)
    try:
        return cmd_serve(args, settings)
    finally:
        worker.send_signal(signal.SIGTERM)  # it finishes the job it is running, then exits
        worker.wait(timeout=60)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write every paper matching the filters as JSON Lines or CSV, batch by batch, to stdout or --output."""
    flt = PaperFilter(
        q=args.q, listing=args.listing, listed_from=args.listed_from, listed_to=args.listed_to, arxiv=args.arxiv
    )

    async def run(out: BinaryIO) -> None:
        pool = await db.create_pool(await db.migrated_url(settings), min_size=1, max_size=1)
        try:
            async for chunk in await browse.export(pool, flt, args.format):
                out.write(chunk)
        finally:
            await pool.close()

    try:
        if args.output:
            with open(args.output, "wb") as out:
                asyncio.run(run(out))
        else:
            asyncio.run(run(sys.stdout.buffer))
            sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error of the export
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
    return 0


def _boolean(value: str) -> bool:
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return value == "true"


def demo_key(data_dir: Path) -> str:
    """The demo's development API key: read from `data_dir/demo-api-key`, made there on first use."""
    path = data_dir / "demo-api-key"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "dev_" + secrets.token_urlsafe(24)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the REST and GraphQL API with granian (migrating first, so workers start on a current schema)."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    if args.workers > 1 and settings.rate_limit and settings.rate_limit_storage.split("+")[-1].startswith("memory"):
        raise SettingsError(
            f"PAPERS_RATE_LIMIT_STORAGE: {settings.rate_limit_storage} counts in each process, so with --workers "
            f"{args.workers} a client could make {args.workers} times PAPERS_RATE_LIMIT; give a store the processes "
            "share (redis://HOST:6379) or PAPERS_RATE_LIMIT=none"
        )
    asyncio.run(db.migrated_url(settings))
    base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    print(f"REST     {base}/v1/papers\nOpenAPI  {base}/schema\nGraphiQL {base}/graphql", file=sys.stderr)
    # granian stops gracefully on SIGTERM/SIGINT: in-flight requests finish, lifespans close the pools.
    server = Granian(
        "api.asgi:app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
    )
    server.serve()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="papers", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=func)
        return p

    command("db", cmd_db, "manage the embedded PostgreSQL").add_argument(
        "action", choices=["start", "stop", "status", "url"]
    )
    command("migrate", cmd_migrate, "apply pending SQL migrations")
    command("reindex", cmd_reindex, "rebuild the keyword (BM25) index from the papers")

    p = command("ingest", cmd_ingest, "ingest listing files, directories or - for stdin")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=FORMATS, help="skip detection and parse as this format")
    p.add_argument("--year", type=int, help="year of the listings' date labels (`Mar 11`)")
    p.add_argument(
        "--map",
        type=_field_map,
        metavar="NAME=PATH,...",
        help="where a JSON layout keeps its fields: items, title, abstract, arxiv_id, date (dotted paths)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON summary on the last line")
    p.add_argument("--queue", action="store_true", help="enqueue for `papers worker` instead of ingesting")
    p.add_argument("--no-embed", action="store_true", help="skip embedding new papers (`papers embed` does it later)")
    p.add_argument(
        "--bulk",
        action="store_true",
        help="load everything in one transaction, search indexes built once at the end (large loads; readers wait)",
    )

    p = command("pull", cmd_pull, "pull listings from Hugging Face or arXiv and ingest them")
    p.add_argument("site", choices=["hf", "arxiv"])
    p.add_argument("--date", type=dt.date.fromisoformat, help="hf: the day (default today, UTC)")
    p.add_argument("--from", dest="start", type=dt.date.fromisoformat, help="hf: first day of a range")
    p.add_argument("--to", dest="end", type=dt.date.fromisoformat, help="hf: last day of a range")
    p.add_argument("--category", help="arxiv: the daily RSS feed of this category (cs.LG)")
    p.add_argument("--query", help="arxiv: an API search query (cat:cs.LG AND ti:transformer)")
    p.add_argument("--max-results", type=int, default=100, choices=range(1, 2001), metavar="N", help="arxiv --query")
    p.add_argument("--json", action="store_true", help="print the results as one JSON array on the last line")
    p.add_argument("--no-embed", action="store_true", help="skip embedding new papers")

    p = command("embed", cmd_embed, "embed papers that lack a vector")
    p.add_argument("--all", action="store_true", help="switch to the configured model and re-embed every paper")

    p = command("worker", cmd_worker, "process queued ingest jobs")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls of an empty queue")

    p = command("export", cmd_export, "write every matching paper as JSON Lines or CSV")
    p.add_argument("--format", choices=browse.EXPORT_FORMATS, default="jsonl", help="jsonl (default) or csv")
    p.add_argument("--q", help="full-text keywords (web search syntax)")
    p.add_argument("--listing", help="only papers that appeared in this listing (public id)")
    p.add_argument("--listed-from", type=dt.date.fromisoformat, help="only papers listed on or after YYYY-MM-DD")
    p.add_argument("--listed-to", type=dt.date.fromisoformat, help="only papers listed on or before YYYY-MM-DD")
    p.add_argument("--arxiv", type=_boolean, help="only papers with (true) or without (false) an arXiv id")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")

    p = command("demo", cmd_demo, "embedded database + ingest of the seeds, then serve the API with a worker")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--no-serve", action="store_true", help="stop after ingesting")
    _serve_options(p)
    _serve_options(command("serve", cmd_serve, "serve the REST and GraphQL API"))
    return parser


def _serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `papers` console script."""
    args = build_parser().parse_args(argv)
    configure(verbose=args.verbose)
    try:
        settings = Settings.from_env(os.environ)
        return int(args.func(args, settings))
    except (SettingsError, DomainError, MigrationError) as exc:
        print(f"papers: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SettingsError) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
