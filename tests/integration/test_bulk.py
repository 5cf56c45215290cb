"""Bulk load (`papers ingest --bulk`): the same database as the normal path, idempotent, all or nothing when killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from ingest.batch import ingest_paths
from ingest.bulk import bulk_ingest
from schema.errors import CONFLICTED, UnavailableError
from sql import db
from sql.bulk import POSTINGS, defer, restore
from tests import factories
from tests.integration.test_keyword import assert_in_step
from tests.system.test_faults import wait_for

# Everything a load writes, by public ids (keys and timestamps differ between two databases by construction).
SNAPSHOT = {
    "papers": """SELECT public_id, fingerprint, title, abstract, abstract_from_arxiv, arxiv_id, first_listed,
                        last_listed, embedding IS NULL AS unembedded, search::text FROM papers ORDER BY public_id""",
    "listings": """SELECT public_id, source, kind, date_label, listed_on, heading, content_sha256, raw, entry_count,
                          reject_count FROM listings ORDER BY public_id""",
    "entries": """SELECT l.public_id, e.rank, p.public_id, e.title_variant, e.abstract_variant, e.listed_on,
                         e.line_start, e.line_end
                  FROM listing_entries e JOIN listings l USING (listing_key) JOIN papers p USING (paper_key)
                  ORDER BY 1, 2""",
    "rejects": """SELECT l.public_id, r.line_start, r.line_end, r.reason, r.raw
                  FROM ingest_rejects r JOIN listings l USING (listing_key) ORDER BY 1, 2""",
    "postings": """SELECT k.term, k.impact, p.public_id FROM keyword_postings k JOIN papers p USING (paper_key)
                   ORDER BY 1, 3""",
    "terms": "SELECT term, df FROM keyword_terms WHERE df <> 0 ORDER BY term",
    "title_words": """SELECT w.word, p.public_id FROM paper_title_words w JOIN papers p USING (paper_key)
                      ORDER BY 1, 2""",
    "indexes": """SELECT indexname, regexp_replace(indexdef, 'public\\.', '', 'g') FROM pg_indexes
                  WHERE schemaname = 'public' ORDER BY 1""",
    "triggers": "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
    # a load drops the foreign keys of the tables it writes and adds them again (sql/bulk.py)
    "constraints": """SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid), convalidated
                      FROM pg_constraint WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2""",
}


async def snapshot(url: str) -> dict[str, list[tuple]]:
    """The contents of a database that a load may write, as sorted rows."""
    async with db.connection(url) as conn:
        await assert_in_step(conn)
        return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in SNAPSHOT.items()}


def listings(root: Path) -> list[str]:
    """Inputs that exercise every merge rule: repeats across listings, a longer abstract, an arXiv id, a reject."""
    papers = [factories.paper(i) for i in range(30)]
    longer = (papers[3][0], papers[3][1] + " A longer abstract replaces the first one as the canonical text.")
    files = {
        "a.txt": factories.page(papers[:12], label="Mar 11"),
        "b.txt": factories.page([*papers[8:20], longer], label="Mar 12"),
        "c.json": factories.hf_daily(
            [(t, a, f"2403.{i:05d}") for i, (t, a) in enumerate(papers[15:25])], day="2024-03-13"
        ),
        "d.jsonl": factories.jsonl(
            [{"title": t, "abstract": a, "listed_on": "2024-03-14"} for t, a in papers[20:30]]
            + [{"title": "", "abstract": "an item with no title is rejected with its reason"}]
        ),
        "e.jsonl": factories.jsonl([{"title": papers[0][0], "abstract": papers[0][1], "listed_on": "2024-03-10"}]),
    }
    for name, text in files.items():
        (root / name).write_text(text)
    return [str(root / name) for name in files]


@pytest.fixture
def second_db(server_url: str):
    """Another migrated database, for the normal path beside the bulk one."""
    from tests.conftest import _TEMPLATE, _scratch_database

    yield from _scratch_database(server_url, _TEMPLATE)


async def test_bulk_load_writes_what_the_normal_path_writes_and_a_rerun_changes_nothing(fresh_db, second_db, tmp_path):
    paths = listings(tmp_path)
    async with db.connection(second_db) as conn:
        normal = await ingest_paths(conn, paths, year=2024)
    async with db.connection(fresh_db) as conn:
        bulk = await bulk_ingest(conn, paths, year=2024)
    assert bulk == normal
    assert (bulk.listings, bulk.rejected, bulk.errors) == (5, 1, [])
    assert bulk.papers_updated >= 1
    loaded = await snapshot(fresh_db)
    assert loaded == await snapshot(second_db)
    assert any(abstract for *_, abstract, _, _, _ in loaded["entries"])  # a replaced abstract stayed a variant

    async with db.connection(fresh_db) as conn:
        again = await bulk_ingest(conn, paths, year=2024)
    assert (again.listings, again.listings_unchanged, again.papers_new) == (0, 5, 0)
    assert await snapshot(fresh_db) == loaded


async def test_bulk_load_onto_stored_papers_and_a_bad_input_reports_and_continues(fresh_db, second_db, tmp_path):
    paths = listings(tmp_path)
    bad = tmp_path / "z.txt"
    bad.write_text("not a listing at all\n")
    for url, bulk in ((second_db, False), (fresh_db, True)):
        async with db.connection(url) as conn:
            await ingest_paths(conn, paths[:2], year=2024)  # the first two the normal way, then the rest
            load = bulk_ingest if bulk else ingest_paths
            summary = await load(conn, [*paths[2:], str(bad)], year=2024)
            assert (summary.listings, [e.source for e in summary.errors]) == (3, [str(bad)])
    assert await snapshot(fresh_db) == await snapshot(second_db)


async def test_bulk_load_killed_mid_load_leaves_nothing_and_a_rerun_converges(fresh_db, second_db, tmp_path):
    paths = listings(tmp_path)
    fifo = tmp_path / "stalled.jsonl"
    os.mkfifo(fifo)
    env = {**os.environ, "DATABASE_URL": fresh_db, "PAPERS_EMBEDDER": "none"}
    loader = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "ingest", "--bulk", "--year", "2024", *paths, str(fifo)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Opening the FIFO returns once the loader opens it: every other input is then stored, uncommitted.
        writer = await asyncio.wait_for(asyncio.to_thread(open, fifo, "wb"), 60)
        async with db.connection(fresh_db) as probe:  # the load holds its lock: it is under way, not finished
            held = """SELECT count(*) FROM pg_locks WHERE relation = 'papers'::regclass AND granted
                        AND mode = 'AccessExclusiveLock' AND pid <> pg_backend_pid()
                        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
            assert await probe.fetchval(held) == 1
        loader.send_signal(signal.SIGKILL)
        loader.wait(30)
        writer.close()
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.wait()
    async with db.connection(fresh_db) as conn:
        # The server ends the dead client's backend and rolls its transaction back.
        gone = """SELECT count(*) = 0 FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()"""
        await wait_for(lambda: conn.fetchval(gone))
        assert await conn.fetchval("SELECT count(*) FROM listings") == 0
        assert await conn.fetchval("SELECT count(*) FROM papers") == 0
    # As a migrated database nothing was loaded into: every index, every trigger.
    assert await snapshot(fresh_db) == await snapshot(second_db)

    rerun = subprocess.run(
        [sys.executable, "-m", "api.cli", "ingest", "--bulk", "--year", "2024", *paths],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    async with db.connection(second_db) as conn:
        await ingest_paths(conn, paths, year=2024)
    assert await snapshot(fresh_db) == await snapshot(second_db)


async def test_writing_postings_reads_each_papers_tsvector_once(fresh_db, tmp_path):
    # Migration 006's keyword_impacts took length(doc) once per stem; inlined, each call fetched the paper's
    # tsvector from the TOAST table again (95 a paper: 2.4x the bulk load's postings time, docs/design.md).
    async with db.connection(fresh_db) as conn:
        await bulk_ingest(conn, listings(tmp_path), year=2024)
        papers = await conn.fetchval("SELECT count(*) FROM papers")
        postings = await conn.fetchval("SELECT count(*) FROM keyword_postings")
        plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) {POSTINGS}"))
    nodes = list(_plan_nodes(plan[0]["Plan"]))
    # The node that computes the length (a passed-on value is shown in parentheses) runs once a paper.
    computing = [n for n in nodes if "length(p.search)" in n.get("Output", [])]
    assert len(computing) == 1, [n.get("Output") for n in nodes]
    assert computing[0]["Actual Rows"] * computing[0]["Actual Loops"] == papers < postings


def _plan_nodes(node: dict):
    """A plan node and every node under it."""
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


async def test_a_load_checks_foreign_keys_once_at_the_end(fresh_db):
    # Checked per row, the title words' foreign key cost a lookup in papers for each of 11 million rows at a
    # million papers; adding it back checks them in one join, and refuses a load that broke it.
    keys = """SELECT conname FROM pg_constraint WHERE contype = 'f'
              AND conrelid = 'paper_title_words'::regclass AND convalidated"""
    async with db.connection(fresh_db) as conn:
        before = await conn.fetch(keys)
        assert before
        load = conn.transaction()
        await load.start()
        deferred = await defer(conn)
        assert await conn.fetch(keys) == []
        assert set(deferred.foreign_keys) == {r["conname"] for r in before}
        await conn.execute("INSERT INTO paper_title_words (word, paper_key) VALUES ('orphan', -1)")
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await restore(conn, deferred)
        await load.rollback()
        assert await conn.fetch(keys) == before  # rolled back whole
        async with conn.transaction():
            await restore(conn, await defer(conn))
        assert await conn.fetch(keys) == before


async def _deadlock_with_a_reader(url: str, *, loader_loses: bool):
    """A reader holds keyword_terms and then reads papers while a load, holding papers, waits for keyword_terms.

    PostgreSQL fails the side whose deadlock_timeout passes first. Returns the load's `Deferred` and what the
    reader's read of papers raised (None when it was answered).
    """
    async with db.connection(url) as reader, db.connection(url) as loader, db.connection(url) as probe:
        await loader.execute(f"SET deadlock_timeout = '{'50ms' if loader_loses else '10s'}'")
        await reader.execute(f"SET deadlock_timeout = '{'10s' if loader_loses else '50ms'}'")
        load, read = loader.transaction(), reader.transaction()
        await load.start()
        await read.start()
        await reader.fetchval("SELECT count(*) FROM keyword_terms")  # as a search's idf lookup does first
        deferring = asyncio.create_task(defer(loader))
        waiting = "SELECT count(*) > 0 FROM pg_locks WHERE pid = $1 AND NOT granted"
        await wait_for(lambda: probe.fetchval(waiting, loader.get_server_pid()))
        failure = None
        try:
            await reader.fetchval("SELECT count(*) FROM papers")
        except asyncpg.DeadlockDetectedError as exc:
            failure = exc
        await read.rollback()
        deferred = await asyncio.wait_for(deferring, 30)
        await load.rollback()
        return deferred, failure


async def test_a_load_that_deadlocks_with_a_reader_while_locking_tries_again(fresh_db):
    deferred, failure = await _deadlock_with_a_reader(fresh_db, loader_loses=True)
    assert failure is None  # the load gave its locks back, so the reader was answered
    assert "paper_title_words_paper_key_fkey" in deferred.foreign_keys  # and the load went on, once the reader ended


async def test_a_reader_that_loses_a_deadlock_to_a_load_is_told_to_retry(fresh_db):
    _, failure = await _deadlock_with_a_reader(fresh_db, loader_loses=False)
    assert failure is not None
    answer = db.as_domain_error(failure)
    assert isinstance(answer, UnavailableError)
    assert (answer.status, str(answer)) == (503, CONFLICTED)
