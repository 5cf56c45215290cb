"""Worker kill -9 under load: two `papers worker` processes drain a queue while busy ones are SIGKILLed."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from sql import jobs
from tests.system.harness import Listing, child_env, corpus, start, stop

pytestmark = pytest.mark.slow

PAPERS = 4000  # 80 overlapping listings of up to 100 papers: the two workers race on shared papers
WORKERS = 2
KILLS = 5
DRAIN_TIMEOUT_S = 300.0


@pytest.fixture
async def queued(conn: asyncpg.Connection) -> list[Listing]:
    listings = corpus(PAPERS)
    for name, raw in listings:
        await jobs.enqueue(conn, name, raw)
    return listings


async def busy_worker(conn: asyncpg.Connection, live: list[subprocess.Popen]) -> subprocess.Popen | None:
    """A live worker that is running a job right now, or None once the queue is empty."""
    by_name = {f"{socket.gethostname()}:{p.pid}": p for p in live if p.poll() is None}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        name = await conn.fetchval(
            "SELECT worker FROM ingest_jobs WHERE status = 'running' AND worker = ANY($1::text[])"
            " ORDER BY random() LIMIT 1",
            list(by_name),
        )
        if name is not None:
            return by_name[name]
        if not await conn.fetchval("SELECT count(*) FROM ingest_jobs WHERE status IN ('queued', 'running')"):
            return None
        await asyncio.sleep(0.005)
    return None


async def wait_drained(conn: asyncpg.Connection) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while await conn.fetchval("SELECT count(*) FROM ingest_jobs WHERE status IN ('queued', 'running')"):
        assert time.monotonic() < deadline, f"the queue did not drain in {DRAIN_TIMEOUT_S:.0f} s"
        await asyncio.sleep(0.1)


async def test_workers_killed_under_load_leave_every_listing_complete_and_stored_once(
    conn: asyncpg.Connection, fresh_db: str, queued: list[Listing], tmp_path: Path
) -> None:
    rng = random.Random(7)
    env = child_env(DATABASE_URL=fresh_db, PAPERS_EMBEDDER="none")
    numbers = itertools.count(1)

    def spawn() -> subprocess.Popen:
        args = [sys.executable, "-m", "api.cli", "worker", "--poll", "0.05"]
        return start(args, tmp_path / f"worker{next(numbers)}.log", env=env)

    live = [spawn() for _ in range(WORKERS)]
    everyone = list(live)
    try:
        for kill in range(KILLS):
            await asyncio.sleep(rng.uniform(0.1, 0.5))
            victim = await busy_worker(conn, live)
            assert victim is not None, f"the queue drained before kill {kill + 1}: the corpus is too small"
            await asyncio.sleep(rng.uniform(0.0, 0.03))  # a random moment inside the job (jobs take ~100 ms)
            victim.kill()  # SIGKILL: no handler, no cleanup, the session just ends
            await asyncio.to_thread(victim.wait, 10)
            live.remove(victim)
            live.append(spawn())
            everyone.append(live[-1])
        await wait_drained(conn)
        exits = [await asyncio.to_thread(stop, worker) for worker in live]
    finally:
        for worker in everyone:
            stop(worker, grace=1.0)
    assert exits == [0] * WORKERS, "a worker did not stop cleanly on SIGTERM"
    await assert_all_stored_once(conn, queued)


async def assert_all_stored_once(conn: asyncpg.Connection, queued: list[Listing]) -> None:
    incomplete = await conn.fetch(
        """SELECT l.public_id, l.entry_count, count(e.rank) AS stored FROM listings l
           LEFT JOIN listing_entries e ON e.listing_key = l.listing_key
           GROUP BY l.listing_key HAVING l.entry_count <> count(e.rank)"""
    )
    assert incomplete == [], "listings whose entry_count differs from their stored entries"
    entries = sum(raw.count(b"\n") for _, raw in queued)
    totals = await conn.fetch("SELECT (SELECT count(*) FROM listings), (SELECT count(*) FROM listing_entries)")
    assert [tuple(r) for r in totals] == [(len(queued), entries)]
    papers = await conn.fetch("SELECT count(*), count(DISTINCT fingerprint), count(DISTINCT lower(title)) FROM papers")
    assert [tuple(r) for r in papers] == [(PAPERS, PAPERS, PAPERS)], "papers duplicated (or lost)"
    statuses = {r["status"]: r["n"] for r in await conn.fetch("SELECT status, count(*) n FROM ingest_jobs GROUP BY 1")}
    assert statuses == {"done": len(queued)}
    jobs_rows = await conn.fetch(
        """SELECT j.public_id, j.result->>'listing_id' AS said,
                  array(SELECT l.public_id FROM listings l WHERE l.content_sha256 = encode(sha256(j.payload), 'hex'))
                    AS stored
           FROM ingest_jobs j"""
    )
    assert [r for r in jobs_rows if r["stored"] != [r["said"]]] == [], "jobs not matching exactly one listing"
    retried = await conn.fetchval("SELECT count(*) FROM ingest_jobs WHERE attempts > 1")
    print(f"{len(queued)} jobs, {KILLS} kills, {retried} jobs retried; {PAPERS} papers, {entries} entries")
    assert retried >= 1, "no kill interrupted a job: the fault was not exercised"
