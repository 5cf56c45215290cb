"""Relay totals and page flags: what `totalCount` and `hasPreviousPage` add to a page of papers.

    .venv/bin/python -m bench.run --only totals       # about 3 minutes

A temporary embedded PostgreSQL gets a synthetic corpus of PAPERS papers (no vectors). Each read runs
REPEATS times through the service layer on one connection, in this process; the figure is the median
wall time per call, next to the page of 20 papers it would be asked with. `totalCount` is a `count(*)`
under the page's filters that stops at MAX_COUNTED + 1 rows (exact up to MAX_COUNTED, else "at least"),
built only when the field is selected; the rows marked "(before)" count every match, as totals did
before the cap; a listing's entries use its stored entry count and cost nothing. `hasPreviousPage` on a
page read forward after a cursor is one index probe (`EXISTS` of a row at or before the cursor).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import corpus, report
from bench.harness.postgres import temp_postgres

TITLE = "Relay totals and page flags"
PAPERS = 100_000
REPEATS = 30
TARGETS = {"count_ms": report.Target(at_most=50.0), "probe_ms": report.Target(at_most=2.0)}


async def _median_ms(call: Callable[[], Awaitable[Any]]) -> float:
    await call()  # warm: plans and the buffer cache
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


async def _measure(url: str, listing: str) -> dict[str, float]:
    from api.services import catalog, search
    from schema.api import PaperFilter
    from sql.db import connection

    async with connection(url) as conn:
        first = catalog.page_request(20)
        page = await catalog.papers_page(conn, PaperFilter(), first)
        after = catalog.page_request(20, page.cursors[-1])
        q = PaperFilter(q="model")
        return {
            "page of 20 papers": await _median_ms(lambda: catalog.papers_page(conn, PaperFilter(), first)),
            "page of 20 after a cursor, with hasPreviousPage": await _median_ms(
                lambda: catalog.papers_page(conn, PaperFilter(), after)
            ),
            "page of 20, read backward (last: 20)": await _median_ms(
                lambda: catalog.papers_page(conn, PaperFilter(), catalog.page_request(last=20))
            ),
            "totalCount: every paper": await _median_ms(lambda: catalog.count_papers(conn, PaperFilter())),
            "totalCount: papers of one listing": await _median_ms(
                lambda: catalog.count_papers(conn, PaperFilter(listing=listing))
            ),
            "totalCount: papers matching a common word": await _median_ms(lambda: catalog.count_papers(conn, q)),
            "totalCount: papers matching a common word, every match counted (before)": await _median_ms(
                lambda: _every_match(conn, q)
            ),
            "search total: a common word (keyword mode)": await _median_ms(
                lambda: search.count_search(conn, "model", mode="keyword", flt=PaperFilter())
            ),
            "totalCount: listings": await _median_ms(lambda: catalog.count_listings(conn)),
        }


async def _every_match(conn: Any, flt: Any) -> int:
    """The filtered papers counted to the last one, as `totalCount` did before MAX_COUNTED."""
    from sql.fragments import Where, paper_filters

    where = Where()
    paper_filters(where, flt)
    return int(await conn.fetchval(f"SELECT count(*) FROM papers p WHERE {where.sql()}", *where.params))


def run(full: bool) -> dict[str, Any]:
    """Load the corpus, then time each read; see the module docstring."""
    with temp_postgres("papers-bench-totals-") as pg:
        url = asyncio.run(pg.fresh_database())
        loaded = asyncio.run(corpus.load(url, corpus.generate(PAPERS), vectors=False))
        figures = asyncio.run(_measure(url, loaded.listing_ids[0]))
    return {"papers": loaded.counts["papers"], "listings": loaded.counts["listings"], "repeats": REPEATS,
            "ms": figures}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    """The section's Markdown."""
    ms = result["ms"]
    count, probe = TARGETS["count_ms"], TARGETS["probe_ms"]
    extra = ms["page of 20 after a cursor, with hasPreviousPage"] - ms["page of 20 papers"]
    rows = [[name, value] for name, value in ms.items()]
    checks = [
        ["totalCount of every paper (ms)", ms["totalCount: every paper"], str(count),
         count.verdict(ms["totalCount: every paper"])],
        ["hasPreviousPage probe: page after a cursor minus first page (ms)", round(extra, 2), str(probe),
         probe.verdict(extra)],
    ]  # fmt: skip
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"{result['papers']:,} papers in {result['listings']:,} listings; each read {result['repeats']} times"
            " through the service layer on one connection, median wall time (client side, includes the round trip).",
            "",
            report.table(["read", "median ms"], rows),
            "",
            report.table(["check", "value", "target", "verdict"], checks, align="lrrl"),
        ]
    )
