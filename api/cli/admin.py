"""The `papers` subcommands that look after the database: the embedded server, migrations, the keyword index, export."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import BinaryIO

from api.services import browse
from schema import limits
from schema.api import PaperFilter
from schema.settings import Settings
from sql import db, hnsw, keyword
from sql.embedded import EmbeddedPostgres, database_url
from sql.migrate import migrate


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


def cmd_hnsw(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild the HNSW index for the collection's size, and/or measure and store the ef_search it needs."""

    async def run() -> int:
        url = await db.migrated_url(settings)
        # A rebuild holds a session lock and runs CREATE INDEX CONCURRENTLY: a session of its own, not a pooled one.
        async with db.connection(db.session_url(settings, url) if args.action == "rebuild" else url) as conn:
            if args.action == "rebuild":
                papers = await hnsw.embedded_papers(conn)
                chosen = hnsw.build_for(papers)
                build = hnsw.Build(args.m or chosen.m, args.ef_construction or chosen.ef_construction)
                hnsw.check(build)
                if not papers:
                    raise hnsw.NoIndexError(hnsw.NO_VECTORS)
                seconds = await hnsw.rebuild(conn, build, memory=args.memory)
                shape = f"m={build.m} ef_construction={build.ef_construction}"
                print(f"built HNSW {shape} for {papers} papers in {seconds:.1f} s")
            tuning = await hnsw.tune(conn)
        return _report(tuning)

    return asyncio.run(run())


def _report(tuning: hnsw.Tuning) -> int:
    build = tuning.build
    print(f"recall@{hnsw.K} over {tuning.papers} papers (m={build.m}, ef_construction={build.ef_construction}):")
    for step in tuning.steps:
        print(
            f"  ef_search {step.ef_search:>4}: recall {step.recall:.3f} (worst query {step.worst:.2f}), "
            f"p50 {step.p50_ms:.2f} ms"
        )
    if tuning.ef_search is None:
        print(
            f"no ef_search reached {limits.HNSW_RECALL}; nothing stored. `papers hnsw rebuild --m 32 "
            "--ef-construction 200` builds a denser graph",
            file=sys.stderr,
        )
        return 1
    print(f"stored ef_search {tuning.ef_search}: every API process started from now on uses it")
    return 0


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


def whole(low: int, high: int) -> Callable[[str], int]:
    """argparse type of a whole number from low to high."""

    def parse(value: str) -> int:
        if not value.strip().lstrip("-").isdigit() or not low <= int(value) <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {value!r}")
        return int(value)

    return parse


def boolean(value: str) -> bool:
    """argparse type of a true/false option."""
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return value == "true"
