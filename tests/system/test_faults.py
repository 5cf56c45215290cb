"""Faults: a worker killed mid-ingest, PostgreSQL stopped and restarted under the API."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from sql import db, jobs
from sql.embedded import EmbeddedPostgres
from sql.migrate import migrate
from tests import factories, servers
from tests.apps import settings
from tests.integration.test_worker import stored_job


def big_listing(n: int, offset: int = 0) -> bytes:
    rows = [
        {"title": t, "abstract": a, "listed_on": "2024-05-09"}
        for t, a in (factories.paper(offset + i, words=40) for i in range(n))
    ]
    return factories.jsonl(rows).encode()


async def wait_for(predicate, timeout: float = 30.0, every: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError("condition not reached in time")


async def test_worker_killed_mid_ingest_leaves_all_or_nothing_and_retry_completes(conn, fresh_db):
    job_ids = [await jobs.enqueue(conn, f"bulk{k}.jsonl", big_listing(4000, k * 4000)) for k in range(2)]
    env = {**os.environ, "DATABASE_URL": fresh_db, "PAPERS_EMBEDDER": "none"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker", "--poll", "0.05"], env=env, stderr=subprocess.DEVNULL
    )

    async def ingesting():
        # the worker's ingest transaction is open: papers are being written but not yet committed
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle'"
            " AND xact_start IS NOT NULL AND query ILIKE '%papers%' AND pid <> pg_backend_pid()"
        )

    try:
        await wait_for(ingesting)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        worker.kill()
    listings = await conn.fetch(
        "SELECT source, entry_count, (SELECT count(*) FROM listing_entries e"
        " WHERE e.listing_key = l.listing_key) AS stored FROM listings l"
    )
    assert all(r["entry_count"] == r["stored"] == 4000 for r in listings), listings  # complete or absent
    assert len(listings) < 2  # the kill landed before the second listing was done
    statuses = [(await stored_job(conn, j)).status for j in job_ids]
    assert "running" in statuses or "queued" in statuses

    from ingest.worker import Worker

    await wait_for(lambda: asyncio.sleep(0.3, result=True))  # let the server notice the dead session
    assert await Worker(fresh_db, poll_seconds=0.05).run(once=True) >= 1
    done = [await stored_job(conn, j) for j in job_ids]
    assert [j.status for j in done] == ["done", "done"]
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM listings) l, (SELECT count(*) FROM listing_entries) e,"
        " (SELECT count(*) FROM papers) p, (SELECT count(DISTINCT fingerprint) FROM papers) f"
    )
    assert tuple(counts) == (2, 8000, 8000, 8000)


@pytest.fixture
def private_server(tmp_path):
    """A PostgreSQL of this test's own, which the test may stop and start."""
    server = EmbeddedPostgres(tmp_path)
    url = server.start()

    async def prepare() -> None:
        async with db.connection(url, vector=False) as c:
            await migrate(c)

    asyncio.run(prepare())
    yield server, url
    server.stop()


async def test_database_restart_gives_503_then_recovers_without_restarting_the_api(private_server):
    server, url = private_server
    async with AsyncTestClient(create_app(settings(), database_url=url)) as client:
        assert (await client.get("/v1/stats")).status_code == 200
        await asyncio.to_thread(server.stop)
        for path in ("/v1/stats", "/v1/papers", "/readyz"):
            response = await client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers.get("retry-after")
        assert (await client.get("/healthz")).status_code == 200  # liveness does not need the database
        await asyncio.to_thread(server.start)

        async def recovered():
            return (await client.get("/v1/stats")).status_code == 200

        await wait_for(recovered, timeout=30, every=0.2)
        assert (await client.get("/v1/papers")).status_code == 200


async def test_connections_cut_mid_query_give_503_never_500(conn, fresh_db):
    """Sessions killed while requests run (what a PostgreSQL shutdown does to a pool): only 200 or 503, then 200."""
    await conn.execute("INSERT INTO papers (public_id, fingerprint, title, abstract) VALUES ('pap_x', 'x', 'X', 'Y')")
    paths = ("/v1/papers?limit=5", "/v1/papers/pap_x", "/v1/stats")
    graphql = {"query": '{ paper(id: "pap_x") { title listings { id } } }'}
    statuses: list[int] = []
    gql_codes: list[str] = []
    stop = asyncio.Event()

    async def load(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            for path in paths:
                statuses.append((await client.get(path)).status_code)
            response = await client.post("/graphql", json=graphql)
            statuses.append(response.status_code)
            gql_codes.extend(e["extensions"]["code"] for e in response.json().get("errors") or [])

    async def cut() -> None:
        for _ in range(100):
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await asyncio.sleep(0.01)
        stop.set()

    with servers.serving(fresh_db) as (base, proc, _):
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await asyncio.gather(cut(), *(load(client) for _ in range(8)))
            assert 503 in statuses, "no request met a cut connection: the fault was not exercised"
            assert set(statuses) <= {200, 503}, sorted(set(statuses))
            assert set(gql_codes) <= {"SERVICE_UNAVAILABLE"}, set(gql_codes)
            for path in paths:  # recovered, same process
                assert (await client.get(path)).status_code == 200
        assert proc.poll() is None
