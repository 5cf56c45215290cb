"""Command line: run the chosen sections against the seeds and write the report (see bench/quality/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import asyncpg

import bench.quality
from api.services.search import Budget, QueryEmbeddings
from bench.harness.postgres import TempPostgres, temp_postgres
from bench.harness.report import ROOT, now
from bench.harness.tools import log
from bench.quality.queries import build
from bench.quality.report import Phases, Run, Section, document, load_average
from bench.quality.seeds import Seeds
from bench.quality.seeds import load as load_seeds
from bench.quality.seeds import render as render_seeds
from sql.db import connection

DEFAULT_OUT = ROOT / "docs" / "similarity.md"
SECTIONS = ("search", "similar", "text", "index")
FULL = {
    "sample": 100,
    "runs": 3,
    "extra_512": True,
    "synthetic": 20000,
    "synthetic_queries": 200,
    "large": 100000,
    "random_draws": 20,
}
QUICK = {
    "sample": 20,
    "runs": 1,
    "extra_512": False,
    "synthetic": 5000,
    "synthetic_queries": 50,
    "large": 0,
    "random_draws": 5,
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options; --quick lowers the sizes that were not given explicitly."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description=bench.quality.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--seeds", type=Path, default=ROOT.parent / "shared" / "seeds", help="directory of seed listings (read only)")
    add("--out", type=Path, help="report to write (default docs/similarity.md; a partial run /tmp/similarity-quick.md)")
    add("--quick", action="store_true", help="fewer queries and runs, a small synthetic set, no large set")
    add("--only", help=f"comma-separated sections of {','.join(SECTIONS)} (a partial report)")
    add("--seed", type=int, default=20240311, help="random seed for queries and synthetic vectors")
    add("--sample", type=int, help=f"papers sampled for labelled queries ({FULL['sample']})")
    add("--runs", type=int, help=f"timed encode runs per text variant, median ({FULL['runs']})")
    add("--no-512", dest="extra_512", action="store_false", default=None, help="leave out the 512-token variant")
    add("--synthetic", type=int, help=f"vectors of the main synthetic HNSW sets ({FULL['synthetic']})")
    add("--synthetic-queries", type=int, help=f"held-out queries per synthetic set ({FULL['synthetic_queries']})")
    add(
        "--large",
        type=int,
        help=f"interpolated vectors for the code's HNSW build at scale, 0 to skip ({FULL['large']})",
    )
    add("--no-clustered", dest="clustered", action="store_false", help="skip the harness corpus set")
    add("--rare-share", type=float, default=0.05, help="max share of titles for a rare title keyword")
    add("--random-draws", type=int, help=f"random rankings per paper for the baseline ({FULL['random_draws']})")
    add("--quality-slack", type=float, default=0.02, help="nDCG@10 a cheaper text variant may lose")
    add("--maintenance-work-mem", default="512MB")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.sections = tuple(args.only.split(",")) if args.only else SECTIONS
    if set(args.sections) - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(set(args.sections) - set(SECTIONS)))}")
    args.partial = args.quick or args.sections != SECTIONS
    if args.out is None:  # a partial run never overwrites the report unless asked to
        args.out = Path(tempfile.gettempdir()) / "similarity-quick.md" if args.partial else DEFAULT_OUT
    return args


def quiet() -> None:
    """Keep the model offline and its libraries from printing progress bars and deprecation notes."""
    # Environment variables rather than transformers' logging API: bench then imports nothing undeclared.
    for name, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ):
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", category=FutureWarning)


async def _sections(
    conn: asyncpg.Connection, pg: TempPostgres, args: argparse.Namespace, seeds: Seeds, phases: Phases
) -> list[Section]:
    """Run the chosen sections in report order; each returns its conclusion and body."""
    from bench.quality import embedding_text, fusion, hybrid, index, index_report, search, similar

    embeddings = QueryEmbeddings(seeds.embedder, size=4096)  # holds every query of the run
    queries = build(seeds.papers, sample=args.sample, seed=args.seed)
    out = []
    if "search" in args.sections:
        found = await search.measure(conn, embeddings, queries, len(seeds.papers))
        out.append(Section(search.conclusion(found), search.render(found)))
        fusions = await hybrid.measure(conn, embeddings, queries)

        def ndcg(kind: str, mode: str) -> float:
            return found.scores(kind, mode).ndcg

        out.append(Section(hybrid.conclusion(fusions, ndcg), hybrid.render(fusions, ndcg)))
    if "similar" in args.sections:
        related = await similar.measure(
            conn, embeddings, seeds, rare_share=args.rare_share, draws=args.random_draws, seed=args.seed
        )
        out.append(Section(similar.conclusion(related), similar.render(related)))
        proxies = {
            similar.SAME_LISTING: similar.listing_gains(seeds.papers),
            similar.RARE_WORDS: similar.rare_word_gains(seeds.papers, related.rare),
        }
        fused = await fusion.measure(conn, embeddings, seeds, proxies)
        out.append(Section(fusion.conclusion(fused), fusion.render(fused)))
    phases.done("search and similar papers")
    if "text" in args.sections:
        gains = similar.rare_word_gains(seeds.papers, similar.rare_words(seeds.papers, args.rare_share))
        texts = embedding_text.measure(
            seeds, queries, gains, runs=args.runs, extra=args.extra_512, slack=args.quality_slack
        )
        out.append(Section(embedding_text.conclusion(texts), embedding_text.render(texts)))
        phases.done("text variants")
    if "index" in args.sections:
        sizes = index.Sizes(
            args.synthetic, args.large, args.synthetic_queries, args.clustered, args.maintenance_work_mem, args.seed
        )
        vectors = await embeddings.vectors(queries.texts(), Budget(texts=1_000_000_000))
        hnsw = await index.measure(conn, pg, seeds.vectors, vectors, sizes)
        out.append(Section(index_report.conclusion(hnsw), index_report.render(hnsw)))
        phases.done("HNSW")
    return out


async def evaluate(pg: TempPostgres, args: argparse.Namespace, command: str) -> str:
    """Load the seeds into a fresh database, run the sections, and return the report."""
    phases, started, load_start = Phases(), now(), load_average()
    async with connection(await pg.fresh_database()) as conn:
        seeds = await load_seeds(conn, args.seeds.resolve(), os.path.relpath(args.seeds, ROOT))
        server = await conn.fetchval("SHOW server_version")
        vector = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        phases.done("start, migrate, ingest, embed")
        sections = await _sections(conn, pg, args, seeds, phases)
    for section in sections:
        print(section.conclusion, flush=True)
    run = Run(command, started, load_start, server, vector, args.partial)
    return document(run, phases, render_seeds(seeds), sections)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation on a temporary server and write the report."""
    args = parse(argv)
    quiet()
    command = shlex.join([".venv/bin/python", "-m", "bench.quality", *(sys.argv[1:] if argv is None else argv)])
    log("quality", f"{now()}: {command}")
    with temp_postgres(prefix="papers-quality-") as pg:
        text = asyncio.run(evaluate(pg, args, command))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    log("quality", f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
