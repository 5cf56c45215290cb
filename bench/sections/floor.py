"""Bulk ingest floor: the CPU each step of a bulk load costs a paper, alone, and the papers/s it allows at best.

    .venv/bin/python -m bench.run --only floor       # about 2 minutes

PAPERS papers of real vocabulary (the search section's recombined seed text) go into a temporary embedded
PostgreSQL through the bulk path. Then each step a bulk load makes PostgreSQL do for a paper runs again alone, as
one statement on one connection with parallel workers off, and the figure is that backend's CPU (from /proc)
divided by the papers: the parser, the searchable text, storing the text, writing, counting and indexing the keyword
postings, the title words. A step's ceiling is the papers/s the machine's cores would reach if that step were the
only work and split perfectly across them. The same texts are also indexed by the search section's Tantivy index
(English stemmer, positions, 2 threads; the dev extra's `tantivy`): what tokenizing outside PostgreSQL would cost.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
from importlib.metadata import version
from typing import Any

import psutil

from bench.harness import report
from bench.harness.corpus import Corpus
from bench.harness.postgres import temp_postgres
from bench.harness.tools import log
from bench.harness.vocabulary import real_vocabulary
from sql.bulk import POSTINGS, TITLE_WORDS

TITLE = "Bulk ingest floor"
PAPERS = 30_000
CORES = os.cpu_count() or 1
TEXT = "public_id, fingerprint, title, abstract, abstract_from_arxiv, arxiv_id, first_listed, last_listed"
# The searchable text as the papers table computes it, and the postings index as the migrations define it, read from
# the catalog so that this section measures what the schema does.
_SEARCH = """SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
    JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    WHERE d.adrelid = 'papers'::regclass AND a.attname = 'search'"""
_POSTINGS_INDEX = "SELECT pg_get_indexdef('keyword_postings_idx'::regclass)"


def _steps_sql(search: str, postings_index: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(label, statements) of each step: each writes a fresh `t`, or indexes `kp` (a copy of the postings)."""
    return (
        (
            "PostgreSQL's parser alone (ts_parse)",
            ("SELECT count(*) FROM src, ts_parse('default', title || ' ' || abstract)",),
        ),
        ("searchable text (to_tsvector, as papers.search)", (f"SELECT sum(length({search})) FROM src",)),
        (
            "storing the text, no index",
            ("CREATE TABLE t (LIKE src)", f"INSERT INTO t SELECT {TEXT} FROM src"),
        ),
        (
            "storing the text with papers.search computed",
            (
                f"CREATE TABLE t (LIKE src, search tsvector GENERATED ALWAYS AS ({search}) STORED)",
                f"INSERT INTO t ({TEXT}) SELECT {TEXT} FROM src",
            ),
        ),
        ("keyword postings computed", (f"SELECT count(*) FROM ({POSTINGS}) s",)),
        ("keyword postings written", ("CREATE TABLE t (LIKE keyword_postings)", f"INSERT INTO t {POSTINGS}")),
        (
            "keyword postings indexed",
            (f"CREATE INDEX kp_idx ON kp{postings_index[postings_index.index(' USING ') :]}",),
        ),
        ("title words written", ("CREATE TABLE t (LIKE paper_title_words)", f"INSERT INTO t {TITLE_WORDS}")),
    )


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def _steps(url: str) -> dict[str, float]:
    """Each step's backend CPU per paper, µs (the best of 3)."""
    from sql.db import connection

    out = {}
    async with connection(url, vector=False) as conn:
        backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
        await conn.execute(f"CREATE TABLE src AS SELECT {TEXT} FROM papers")
        await conn.execute("CREATE TABLE kp AS SELECT * FROM keyword_postings")
        await conn.execute("SET max_parallel_workers_per_gather = 0; SET max_parallel_maintenance_workers = 0")
        await conn.execute("SET maintenance_work_mem = '1GB'")
        steps = _steps_sql(await conn.fetchval(_SEARCH), await conn.fetchval(_POSTINGS_INDEX))
        for label, statements in steps:
            best = float("inf")
            for _ in range(3):
                await conn.execute("DROP TABLE IF EXISTS t; DROP INDEX IF EXISTS kp_idx")
                before = _cpu(backend)
                for statement in statements:
                    await conn.execute(statement)
                best = min(best, _cpu(backend) - before)
            out[label] = round(best / PAPERS * 1e6, 1)
            log("floor", f"{label}: {out[label]} µs/paper")
    return out


def _tantivy(corpus: Corpus) -> dict[str, Any]:
    """Indexing the texts with the search section's Tantivy index: papers/s and CPU µs/paper (best of 3)."""
    from bench.sections.search import _tantivy as build

    rows = [{"paper_key": key, "title": p.title, "abstract": p.abstract} for key, p in enumerate(corpus.papers)]
    best = (float("inf"), float("inf"))
    for _ in range(3):
        with tempfile.TemporaryDirectory() as directory:
            before = resource.getrusage(resource.RUSAGE_SELF)
            _, seconds = build(rows, directory)
            after = resource.getrusage(resource.RUSAGE_SELF)
        best = min(best, (seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
    return {
        "papers_per_s": round(len(rows) / best[0]),
        "cpu_us": round(best[1] / len(rows) * 1e6, 1),
        "version": version("tantivy"),
    }


def run(full: bool) -> dict[str, Any]:
    """Bulk-load the corpus, then time each step alone; Tantivy on the same texts beside it."""
    from bench.sections.million import _ingest, _write

    corpus = real_vocabulary(PAPERS)
    with temp_postgres() as pg:
        url = asyncio.run(pg.fresh_database())
        bulk = asyncio.run(_ingest(url, _write(corpus, pg.workdir / "listings"), bulk=True))
        steps = asyncio.run(_steps(url))
    return {
        "papers": PAPERS,
        "cores": CORES,
        "bulk": bulk,
        "steps": steps,
        "tantivy": _tantivy(corpus),
    }


def _million_target() -> float:
    """The million section's bulk target, papers/s."""
    from bench.sections.million import TARGETS

    target = TARGETS["bulk_papers_per_s"].at_least
    assert target is not None
    return target


def _ceiling(us: float, cores: int) -> float:
    return cores * 1e6 / us if us else float("inf")


def render(result: dict[str, Any]) -> str:
    """The section of docs/benchmarks.md."""
    n, cores, bulk = result["papers"], result["cores"], result["bulk"]
    rows = [(label, us, _ceiling(us, 1), _ceiling(us, cores)) for label, us in result["steps"].items()]
    parser, search = list(result["steps"].values())[:2]
    target = _million_target()
    tv = result["tantivy"]
    return "\n\n".join(
        [
            f"## {TITLE}",
            f"{n:,} papers of real vocabulary, bulk-loaded as the million section does"
            f" (`bench/sections/floor.py`): {bulk['papers_per_s']:,} papers/s (phases, s: "
            + ", ".join(f"{k} {v}" for k, v in bulk["phases"].items())
            + "). Then each step alone, one statement on one connection, parallel workers off; CPU of that"
            " PostgreSQL backend per paper, best of 3:",
            report.table(
                ("step", "CPU µs/paper", "ceiling papers/s, 1 core", f"ceiling papers/s, {cores} cores"),
                rows,
                align="lrrr",
            ),
            f"The target ({target:,.0f} papers/s on {cores} cores) leaves {cores * 1e6 / target:,.0f} µs of CPU a paper"
            f" for everything. Computing the searchable text with PostgreSQL's English configuration takes {search} µs"
            f" ({parser} µs of it in the parser), so a design that keeps it cannot reach the target here: at most"
            f" {_ceiling(search, cores):,.0f} papers/s with nothing else done. Tantivy {tv['version']} indexing"
            f" the same titles and abstracts (the search section's index: English stemmer, 2 threads):"
            f" {tv['papers_per_s']:,} papers/s, {tv['cpu_us']} µs of CPU a paper, with nothing stored in PostgreSQL.",
        ]
    )


if __name__ == "__main__":
    print(render(run(False)))
