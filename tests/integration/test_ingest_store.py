"""Ingest into the real database: dedup, idempotency, atomicity, concurrency, rejects."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

import sql.store
from ingest.pipeline import Source, ingest_source, prepare
from ingest.store import store_listing
from sql import db
from tests import factories

SNAPSHOT = {
    "papers": "SELECT public_id, fingerprint, title, abstract, arxiv_id, first_listed, last_listed FROM papers",
    "listings": "SELECT public_id, source, kind, date_label, listed_on, content_sha256, entry_count FROM listings",
    "entries": "SELECT l.public_id, e.rank, p.public_id, e.title_variant, e.abstract_variant"
    " FROM listing_entries e JOIN listings l USING (listing_key) JOIN papers p USING (paper_key)",
    "rejects": "SELECT listing_key, line_start, line_end, reason, raw FROM ingest_rejects",
}


async def snapshot(conn) -> dict[str, list]:
    """Every stored row that ingest writes, in a comparable form."""
    return {name: sorted(map(tuple, await conn.fetch(query))) for name, query in SNAPSHOT.items()}


def src(name: str, text: str) -> Source:
    return Source(name, text.encode())


async def test_seeds_give_5_listings_598_entries_559_papers(conn, seeds):
    for path in sorted(seeds.iterdir()):
        result = await ingest_source(conn, Source(path.name, path.read_bytes()))
        assert result.error is None, result.error
        assert result.rejected == 0
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM listings) l, (SELECT count(*) FROM listing_entries) e,"
        " (SELECT count(*) FROM papers) p"
    )
    assert tuple(counts) == (5, 598, 559)
    labels = await conn.fetch("SELECT date_label, listed_on FROM listings ORDER BY source")
    assert [r["date_label"] for r in labels] == ["Mar 11", "Aug 1", "Jul 31", "May 9", None]
    assert all(r["listed_on"] is not None for r in labels[:4])


async def test_reingest_changes_nothing(conn, seeds):
    sources = [Source(p.name, p.read_bytes()) for p in sorted(seeds.iterdir())]
    for source in sources:
        await ingest_source(conn, source)
    before = await snapshot(conn)
    for source in sources:
        result = await ingest_source(conn, source)
        assert result.unchanged
        assert result.papers_new == 0
        # Bypass the fast path too: the store itself must be idempotent.
        assert (await store_listing(conn, prepare(source)[0])).unchanged
    assert await snapshot(conn) == before


async def test_same_paper_in_two_listings_is_one_paper_with_variant_kept(conn):
    title, short = factories.paper(1, words=40)
    _, long = factories.paper(1, words=80)
    first = factories.page([(title, short), factories.paper(2)], label="Mar 11")
    second = factories.page([(title.upper(), long), factories.paper(3)], label="Mar 12")
    r1 = await ingest_source(conn, src("a.txt", first), year=2024)
    r2 = await ingest_source(conn, src("b.txt", second), year=2024)
    assert (r1.papers_new, r2.papers_new, r2.papers_updated) == (2, 1, 1)
    paper = await conn.fetchrow("SELECT * FROM papers WHERE title = $1", title)
    assert paper["abstract"] == long  # the longer abstract is canonical
    assert (paper["first_listed"], paper["last_listed"]) == (dt.date(2024, 3, 11), dt.date(2024, 3, 12))
    variants = await conn.fetch(
        "SELECT l.source, e.title_variant, e.abstract_variant"
        " FROM listing_entries e JOIN listings l USING (listing_key)"
        " WHERE paper_key = $1 ORDER BY l.source",
        paper["paper_key"],
    )
    # The first listing printed the short abstract: it stays on that entry once the long one is canonical.
    assert [tuple(v) for v in variants] == [("a.txt", None, short), ("b.txt", title.upper(), None)]


async def test_canonical_abstract_does_not_depend_on_ingest_order(server_url, fresh_db, empty_db):
    from sql.migrate import migrate

    title, a = factories.paper(5, words=50)
    _, b = factories.paper(5, words=50, seed=1)
    listings = [factories.page([(title, a)], label="Mar 1"), factories.page([(title, b)], label="Mar 2")]
    results = []
    for url, order in ((fresh_db, listings), (empty_db, listings[::-1])):
        async with db.connection(url, vector=False) as c:
            await migrate(c)
            for i, text in enumerate(order):
                await ingest_source(c, src(f"{i}.txt", text), year=2024)
            results.append(await c.fetchrow("SELECT public_id, abstract FROM papers"))
    assert results[0] == results[1]


async def test_arxiv_id_attaches_and_json_abstract_wins(conn):
    title, abstract = factories.paper(7)
    await ingest_source(conn, src("page.txt", factories.page([(title, abstract), factories.paper(8)])))
    arxiv_abstract = abstract[:-1] + " (arXiv version)."
    result = await ingest_source(conn, src("hf.json", factories.hf_daily([(title, arxiv_abstract, "2403.01234v2")])))
    assert (result.papers_new, result.papers_updated) == (0, 1)
    row = await conn.fetchrow("SELECT arxiv_id, abstract FROM papers WHERE arxiv_id IS NOT NULL")
    assert tuple(row) == ("2403.01234", arxiv_abstract)
    # A later listing with a reworded title but the same arXiv id is the same paper.
    again = await ingest_source(
        conn,
        src(
            "b.jsonl", factories.jsonl([{"title": "A Renamed Version", "abstract": abstract, "arxiv_id": "2403.01234"}])
        ),
    )
    assert again.papers_new == 0
    assert await conn.fetchval("SELECT count(*) FROM papers") == 2


async def test_partly_parseable_input_keeps_rejects(conn):
    good1, good2 = factories.paper(1), factories.paper(2)
    text = factories.page([good1, good2]).replace(good2[0], "Orphan Title Without Abstract\n\n" + good2[0])
    result = await ingest_source(conn, src("partial.txt", text))
    assert (result.entries, result.rejected) == (2, 1)
    reject = await conn.fetchrow("SELECT line_start, line_end, reason, raw FROM ingest_rejects")
    assert reject["raw"] == "Orphan Title Without Abstract"
    assert "no abstract" in reject["reason"]
    assert text.split("\n")[reject["line_start"] - 1] == "Orphan Title Without Abstract"


async def test_not_a_listing_writes_nothing(conn):
    result = await ingest_source(conn, src("notes.md", "# Notes\n\nshort line\nanother line\n"))
    assert result.error is not None
    assert result.error.source == "notes.md"
    assert await conn.fetchval("SELECT count(*) FROM listings") == 0


async def test_failure_mid_listing_leaves_nothing_partial(conn, monkeypatch):
    text = factories.page([factories.paper(i) for i in range(5)])
    original = sql.store.copy_entries

    async def write_then_crash(*args, **kwargs):
        await original(*args, **kwargs)
        raise RuntimeError("injected crash after entries were written")

    monkeypatch.setattr(sql.store, "copy_entries", write_then_crash)
    with pytest.raises(RuntimeError, match="injected"):
        await ingest_source(conn, src("x.txt", text))
    empty: dict[str, list[Any]] = {"papers": [], "listings": [], "entries": [], "rejects": []}
    assert await snapshot(conn) == empty
    monkeypatch.setattr(sql.store, "copy_entries", original)
    assert (await ingest_source(conn, src("x.txt", text))).entries == 5


async def test_concurrent_ingests_of_one_file_give_one_listing(fresh_db):
    text = factories.page([factories.paper(i) for i in range(20)])
    (item,) = prepare(src("same.txt", text))
    conns = [await db.connect(fresh_db) for _ in range(4)]
    try:
        results = await asyncio.gather(*(store_listing(c, item) for c in conns))
        counts = await conns[0].fetchrow(
            "SELECT (SELECT count(*) FROM listings) l, (SELECT count(*) FROM listing_entries) e,"
            " (SELECT count(*) FROM papers) p"
        )
    finally:
        for c in conns:
            await c.close()
    assert sorted(r.unchanged for r in results) == [False, True, True, True]
    assert counts is not None
    assert tuple(counts) == (1, 20, 20)


async def test_concurrent_overlapping_listings_share_papers(fresh_db):
    shared = [factories.paper(i) for i in range(30)]
    texts = [factories.page([*shared, factories.paper(100 + k)], label=f"Mar {k + 1}") for k in range(4)]
    conns = [await db.connect(fresh_db) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(
                store_listing(c, prepare(src(f"{k}.txt", t))[0])
                for k, (c, t) in enumerate(zip(conns, texts, strict=True))
            )
        )
        papers = await conns[0].fetchval("SELECT count(*) FROM papers")
    finally:
        for c in conns:
            await c.close()
    assert papers == 34
    assert sum(r.papers_new for r in results) == 34


async def test_year_flag_and_source_dates(conn):
    page = factories.page([factories.paper(1)], label="Feb 29")
    await ingest_source(conn, src("leap.txt", page), year=2024)
    assert await conn.fetchval("SELECT listed_on FROM listings") == dt.date(2024, 2, 29)
    hf = factories.hf_daily([(*factories.paper(2), None)], day="2023-07-31")
    await ingest_source(conn, src("hf.json", hf))
    assert await conn.fetchval("SELECT listed_on FROM listings WHERE kind = 'hf_daily'") == dt.date(2023, 7, 31)
    bad = await ingest_source(conn, src("bad.txt", factories.page([factories.paper(3)], label="Feb 29")), year=2023)
    assert bad.error is not None
    assert "2023" in bad.error.message


async def test_nul_in_json_text_is_a_reject_not_a_crash(conn):
    rows = [
        {"title": "Fine Title", "abstract": factories.paper(1)[1]},
        {"title": "Bad\u0000Title", "abstract": factories.paper(2)[1]},
    ]
    result = await ingest_source(conn, src("nul.jsonl", factories.jsonl(rows)))
    assert (result.entries, result.rejected) == (1, 1)
    assert "NUL" in await conn.fetchval("SELECT reason FROM ingest_rejects")


async def test_items_over_several_days_give_one_listing_per_day(conn):
    rows = [
        {"title": factories.paper(i)[0], "abstract": factories.paper(i)[1], "listed_on": f"2024-03-{11 + i % 3:02d}"}
        for i in range(9)
    ] + [{"title": "", "abstract": "no title"}]
    text = factories.jsonl(rows)
    result = await ingest_source(conn, src("bulk.jsonl", text))
    assert (result.listings_new, result.entries, result.papers_new, result.rejected) == (3, 9, 9, 1)
    assert len(result.listing_ids) == 3
    stored = await conn.fetch(
        "SELECT listed_on, entry_count, reject_count, kind, convert_from(raw, 'UTF8') raw"
        " FROM listings ORDER BY listed_on"
    )
    assert [(r["listed_on"], r["entry_count"], r["reject_count"], r["kind"]) for r in stored] == [
        (dt.date(2024, 3, 11), 3, 0, "jsonl"),
        (dt.date(2024, 3, 12), 3, 0, "jsonl"),
        (dt.date(2024, 3, 13), 3, 1, "jsonl"),  # the unreadable last line goes with the item before it
    ]
    # Each listing keeps its own lines verbatim, and its spans count in them.
    day11 = [line for line in text.split("\n") if "2024-03-11" in line]
    assert stored[0]["raw"] == "\n".join(day11) + "\n"
    spans = await conn.fetch(
        "SELECT e.rank, e.line_start FROM listing_entries e JOIN listings l USING (listing_key)"
        " WHERE l.listed_on = '2024-03-11' ORDER BY rank"
    )
    assert [tuple(s) for s in spans] == [(1, 1), (2, 2), (3, 3)]
    before = await snapshot(conn)
    again = await ingest_source(conn, src("bulk-again.jsonl", text))
    assert (again.listings_new, again.listings_unchanged, again.unchanged) == (0, 3, True)
    assert await snapshot(conn) == before


async def test_pretty_printed_archive_day_ingests(conn):
    text = json.dumps(
        {
            "date": "2024-03-11",
            "papers": [
                {"paper_id": "2403.0000" + str(i), "title": t, "abstract": a, "upvotes": i}
                for i, (t, a) in enumerate(factories.paper(k) for k in range(3))
            ],
        },
        indent=2,
    )
    result = await ingest_source(conn, src("2024-03-11.json", text))
    assert result.error is None, result.error
    assert (result.listings_new, result.entries) == (1, 3)
    row = await conn.fetchrow("SELECT kind, listed_on, raw FROM listings")
    assert (row["kind"], row["listed_on"], bytes(row["raw"])) == ("json", dt.date(2024, 3, 11), text.encode())
