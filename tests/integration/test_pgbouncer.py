"""Through a real PgBouncer in transaction mode: migrations, ingest, REST and GraphQL reads, similarity, the worker.

A transaction-mode pool hands each transaction to whichever server connection is free, so anything a client
leaves in its session (named prepared statements, SET, advisory locks) is found, or missed, by another client.
The pool here has 4 server connections for many clients, so a leak shows up as a failed request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from api.services.search import QueryEmbeddings, similar_papers
from ingest.embed import embed_pending
from ingest.pipeline import Source, ingest_source
from sql import db, jobs, search
from sql.migrate import pending
from tests import factories
from tests.embedders import HashEmbedder
from tests.pgbouncer import pgbouncer
from tests.servers import serving

POOLED = {"PAPERS_DB_POOLER": "pgbouncer"}
PID = "SELECT pg_backend_pid()"
KEY = "test-key-pgbouncer"


def _papers(cli: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *cli], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def _get(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, json.loads(answer.read())


async def test_search_sets_its_settings_per_transaction_through_the_pool(fresh_db):
    with pgbouncer(fresh_db) as (pooled, _):
        async with db.connection(fresh_db) as direct:
            for k in range(30):
                text = factories.page([factories.paper(k)], label=f"Mar {k % 28 + 1}")
                await ingest_source(direct, Source(f"p{k}.txt", text.encode()))
            await embed_pending(direct, HashEmbedder())
            [paper_id] = [r["public_id"] for r in await direct.fetch("SELECT public_id FROM papers LIMIT 1")]
            queries = QueryEmbeddings(HashEmbedder())
            expected = await similar_papers(direct, queries, paper_id, limit=20)
        db.transaction_pooled(pooled)
        pool = await db.create_pool(pooled, min_size=1, max_size=12)
        try:

            async def one(limit: int) -> list[str]:
                async with db.pooled(pool) as conn:
                    assert not db.keeps_session(conn)
                    return [p.id for p in await similar_papers(conn, queries, paper_id, limit=limit)]

            # More clients than server connections, each needing its HNSW settings in its own transaction.
            answers = await asyncio.gather(*(one(20 if k % 2 else 5) for k in range(40)))
            async with db.pooled(pool) as conn:
                # Nothing was SET for the session: whichever server connection this is has the default.
                assert await conn.fetchval("SHOW hnsw.ef_search") == "40"
        finally:
            await pool.close()
    assert {tuple(a) for a in answers} == {tuple(p.id for p in expected), tuple(p.id for p in expected[:5])}
    assert search.EF_SEARCH > 20  # the limit-20 answers took the session settings' path when direct


async def test_a_plain_client_breaks_where_the_documented_setup_does_not(fresh_db):
    """Why the set-up matters: asyncpg's defaults (named statements, cached per connection) through the same pool."""
    with pgbouncer(fresh_db) as (pooled, _):
        pool = await asyncpg.create_pool(pooled, min_size=8, max_size=8)
        try:
            queries = [f"SELECT {k}::int + $1" for k in range(20)]

            async def run(k: int) -> int:
                async with pool.acquire() as conn:
                    return int(await conn.fetchval(queries[k % len(queries)], k))

            async def rounds() -> None:
                for _ in range(5):
                    await asyncio.gather(*(run(k) for k in range(200)))

            with pytest.raises(asyncpg.PostgresError, match="prepared statement"):
                await rounds()
        finally:
            pool.terminate()


def test_migrate_ingest_serve_and_work_through_pgbouncer(empty_db, tmp_path):
    with pgbouncer(empty_db) as (pooled, session):
        env = {"DATABASE_URL": pooled, **POOLED}
        migrated = _papers(["migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        listing = tmp_path / "listing.txt"
        listing.write_text(factories.page([factories.paper(k) for k in range(20)]))
        ingested = _papers(["ingest", "--no-embed", str(listing)], env)
        assert ingested.returncode == 0, ingested.stderr

        refused = _papers(["worker", "--once"], env)
        assert refused.returncode == 2
        assert "DATABASE_SESSION_URL" in refused.stderr

        with serving(pooled, "serve", "--workers", "2", PAPERS_API_KEY=KEY, **POOLED) as (base, _, log):
            _reads_under_concurrency(base)
            job_ids = _submit(base, 12)
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "api.cli", "worker", "--once", "--poll", "0.1"],
                    env={**os.environ, **env, "DATABASE_SESSION_URL": session},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(2)
            ]
            assert [w.wait(timeout=120) for w in workers] == [0, 0]
            statuses = {_get(f"{base}/v1/jobs/{job}")[1]["status"] for job in job_ids}
            assert statuses == {"done"}, log.read_text()[-3000:]
            _, stats = _get(f"{base}/v1/stats")
            assert stats["listings"] == 13
        asyncio.run(_check_stored(empty_db, job_ids))


def _reads_under_concurrency(base: str) -> None:
    """REST and GraphQL reads from 24 threads at once, every one answered."""
    graphql = {"query": "{ papers(first: 5) { totalCount edges { node { id title listings { rank } } } } }"}
    calls = [
        *(lambda: _get(f"{base}/v1/papers?limit=10&count=true") for _ in range(60)),
        *(lambda: _get(f"{base}/v1/search?q=paper&mode=keyword&limit=5") for _ in range(60)),
        *(lambda: _get(f"{base}/graphql", graphql) for _ in range(60)),
    ]
    with concurrent.futures.ThreadPoolExecutor(24) as threads:
        answers = list(threads.map(lambda call: call(), calls))
    assert {status for status, _ in answers} == {200}
    totals = {body["data"]["papers"]["totalCount"] for _, body in answers[120:]}
    assert totals == {20}
    assert all(body["total"] == 20 for _, body in answers[:60])


def _submit(base: str, count: int) -> list[str]:
    ids = []
    for k in range(count):
        text = factories.page([factories.paper(100 + k)], label=f"Apr {k + 1}").encode()
        request = urllib.request.Request(
            f"{base}/v1/listings",
            data=text,
            headers={"content-type": "text/plain", "authorization": f"Bearer {KEY}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            ids.append(json.loads(answer.read())["job_id"])
    return ids


async def _check_stored(url: str, job_ids: list[str]) -> None:
    """Every job ran once, and no session advisory lock was left behind on any server connection."""
    async with db.connection(url) as conn:
        assert await pending(conn) == []
        for job_id in job_ids:
            job = await jobs.get(conn, job_id)
            assert job is not None
            assert (job.status, job.attempts) == ("done", 1)
        assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


async def test_the_shipped_config_pools_transactions_and_sessions(fresh_db):
    """deploy/pgbouncer/pgbouncer.ini as compose and Kubernetes run it (pointed at the test database): the API's
    alias takes asyncpg as configured, and the workers' alias gives each client a session of its own."""
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "pgbouncer" / "pgbouncer.ini"
    with pgbouncer(fresh_db, shipped=shipped) as (pooled, session):
        db.transaction_pooled(pooled)
        pool = await db.create_pool(pooled, min_size=2, max_size=8)
        try:
            counts = await asyncio.gather(*(_papers_count(pool) for _ in range(32)))
        finally:
            await pool.close()
        assert set(counts) == {0}
        # Transaction mode: a server is anybody's between transactions (one client's, then the next's); session
        # mode: each client keeps its own server for as long as it is connected.
        async with db.connection(pooled) as first, db.connection(pooled) as second:
            assert await first.fetchval(PID) == await second.fetchval(PID)
        async with db.connection(session) as first, db.connection(session) as second:
            assert db.keeps_session(first)
            assert await first.fetchval(PID) != await second.fetchval(PID)


async def _papers_count(pool: asyncpg.Pool) -> int:
    async with db.pooled(pool) as conn, conn.transaction():
        return int(await conn.fetchval("SELECT count(*) FROM papers"))
