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

import msgspec

from api.cli.admin import boolean, cmd_db, cmd_export, cmd_hnsw, cmd_migrate, cmd_reindex, whole
from api.cli.feed import cmd_embed, cmd_ingest, cmd_pull, cmd_worker, field_map, ingest_inline, print_summary
from api.process import configure
from api.services import browse
from schema.errors import DomainError, UnavailableError
from schema.ingest import FORMATS
from schema.settings import Settings, SettingsError
from sql import db, queries
from sql.migrate import MigrationError

SEEDS = Path("../shared/seeds")
Command = Callable[[argparse.Namespace, Settings], int]


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
    summary = asyncio.run(ingest_inline(settings, paths, fmt=None, year=None, embed=True))
    print_summary(summary, as_json=False)
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
    p = command("hnsw", cmd_hnsw, "measure HNSW recall and store the ef_search it needs (rebuild: build it first)")
    p.add_argument("action", choices=["tune", "rebuild"])
    p.add_argument("--m", type=whole(2, 100), metavar="M", help="rebuild: graph degree (2-100)")
    p.add_argument("--ef-construction", type=whole(4, 1000), metavar="N", help="rebuild: build beam (4-1000)")
    p.add_argument("--memory", default="2GB", help="rebuild: maintenance_work_mem for the build (default 2GB)")

    p = command("ingest", cmd_ingest, "ingest listing files, directories or - for stdin")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=FORMATS, help="skip detection and parse as this format")
    p.add_argument("--year", type=int, help="year of the listings' date labels (`Mar 11`)")
    p.add_argument(
        "--map",
        type=field_map,
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
    p.add_argument("--max-results", type=whole(1, 2000), default=100, metavar="N", help="arxiv --query (1-2000)")
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
    p.add_argument("--arxiv", type=boolean, help="only papers with (true) or without (false) an arXiv id")
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
    except Exception as exc:
        known = db.as_domain_error(exc)  # what a database failure means (a deadlock, a lost server), as the API says it
        if known is None:
            raise
        print(f"papers: {known}", file=sys.stderr)
        return 1
