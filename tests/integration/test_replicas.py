"""Read replicas against a real hot standby (tests/conftest.py `replicated`): routing, read-your-writes, lag,
a replica down, and the fallback to the primary.

Reads are shown to run on the standby by what they see: with its replay paused, a write made on the primary
is invisible to a read served there and visible to one served by the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from api.app import create_app
from ingest.worker import Worker
from schema.settings import ReplicaSettings
from sql.replicas import parse_lsn
from tests import factories
from tests.apps import settings
from tests.conftest import ReplicaDatabase
from tests.integration.test_rest import CORPUS, load

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "text/plain"}
TITLE, ABSTRACT = factories.paper(90)
PAGE = factories.page([(TITLE, ABSTRACT)], label="Mar 20")


@contextlib.asynccontextmanager
async def client_over(database: ReplicaDatabase, **replicas: Any) -> AsyncIterator[AsyncTestClient]:
    """The app over the primary with the standby as its replica, checked every 0.1 s."""
    options = {"urls": (database.standby,), "check_interval": 0.1, "max_lag": 60.0, "wait": 0.05, **replicas}
    app = create_app(settings(api_key=KEY, replicas=ReplicaSettings(**options)), database_url=database.primary)
    async with AsyncTestClient(app) as client:
        yield client


async def on(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def caught_up(database: ReplicaDatabase) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    target = await on(database.primary, "SELECT pg_current_wal_lsn()")
    await until(lambda: on(database.standby, "SELECT pg_last_wal_replay_lsn()"), lambda lsn: lsn >= target)


async def pause(database: ReplicaDatabase) -> None:
    """Pause the standby's replay (it keeps receiving WAL) and wait until it has stopped."""
    await on(database.standby, "SELECT pg_wal_replay_pause()")
    await until(lambda: on(database.standby, "SELECT pg_get_wal_replay_pause_state()"), lambda s: s == "paused")


async def until(read: Callable[[], Any], holds: Callable[[Any], bool], timeout: float = 20) -> Any:
    """Poll read() until holds(value); the value, or AssertionError with the last one after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if holds(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r} after {timeout} s"
        await asyncio.sleep(0.05)


async def databases(client: AsyncTestClient) -> list[dict[str, Any]]:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    return list(response.json()["databases"])


async def submit(client: AsyncTestClient) -> tuple[str, str]:
    """Submit the page; (job id, the Papers-LSN the answer carries). The client keeps no cookie."""
    response = await client.post("/v1/listings", content=PAGE, headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.cookies.get("papers_lsn") == response.headers["papers-lsn"]
    client.cookies.clear()
    return response.json()["job_id"], response.headers["papers-lsn"]


async def jobs_queued(client: AsyncTestClient, **headers: str) -> int:
    response = await client.get("/v1/stats", headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["jobs_queued"])


async def test_reads_go_to_the_replica_and_writes_to_the_primary(replica_db):
    await load(replica_db.primary, CORPUS)
    await caught_up(replica_db)
    async with client_over(replica_db) as client:
        shown = [(d["name"], d["role"], d["healthy"], d["state"]) for d in await databases(client)]
        assert shown == [("primary", "primary", True, "ok"), ("replica-1", "replica", True, "ok")]
        assert (await client.get("/v1/stats")).json()["papers"] == 16  # the standby has the corpus
        await pause(replica_db)
        job_id, token = await submit(client)
        # Served by the paused standby: the job written on the primary is not there yet.
        assert await jobs_queued(client) == 0
        graphql = await client.post("/graphql", json={"query": "{ stats { jobsQueued } }"})
        assert graphql.json() == {"data": {"stats": {"jobsQueued": 0}}}
        # With the token (header or cookie), the read waits a bounded time for the standby, then asks the primary.
        assert await jobs_queued(client, **{"Papers-LSN": token}) == 1
        client.cookies.set("papers_lsn", token)
        graphql = await client.post("/graphql", json={"query": "{ stats { jobsQueued } }"})
        assert graphql.json() == {"data": {"stats": {"jobsQueued": 1}}}
        client.cookies.clear()
        # A GraphQL write hands its position back the same way.
        mutation = "mutation($t: String!) { submitListing(text: $t, format: page) { jobId } }"
        written = await client.post(
            "/graphql",
            json={"query": mutation, "variables": {"t": PAGE}},
            headers={"Authorization": AUTH["Authorization"]},
        )
        assert written.json()["data"]["submitListing"]["jobId"]
        assert parse_lsn(written.headers["papers-lsn"]) >= parse_lsn(token)
        client.cookies.clear()
        assert await jobs_queued(client) == 0
        assert await jobs_queued(client, **{"Papers-LSN": written.headers["papers-lsn"]}) == 2
        # A job looked up by id is found even without the token: a miss on a replica is asked of the primary.
        job = await client.get(f"/v1/jobs/{job_id}")
        assert job.status_code == 200
        assert job.json()["status"] == "queued"
        assert job.headers["papers-lsn"]


async def test_a_paper_is_readable_right_after_its_listing_was_ingested(replica_db):
    async with client_over(replica_db) as client:
        await pause(replica_db)
        job_id, _ = await submit(client)
        assert await Worker(replica_db.primary).run(once=True) == 1
        # The job's status is read where the job is known and marks the position it was read at.
        job = await client.get(f"/v1/jobs/{job_id}")
        assert job.json()["status"] == "done"
        seen = job.headers["papers-lsn"]
        result = job.json()["result"]
        listing_id = result.get("listing_id") or result["listing_ids"][0]
        client.cookies.clear()
        # Without the token the paused standby answers, and it has not replayed the ingest.
        stale = await client.get("/v1/papers", params={"listing": listing_id})
        assert stale.json()["items"] == []
        # With it, the read sees the paper (the standby cannot catch up while paused: the primary answers).
        fresh = await client.get("/v1/papers", params={"listing": listing_id}, headers={"Papers-LSN": seen})
        [paper] = fresh.json()["items"]
        assert paper["title"] == TITLE
        # By id, a paper just ingested is found without any token, and so is its listing with its entries.
        assert (await client.get(f"/v1/papers/{paper['id']}")).json()["title"] == TITLE
        listing = await client.get(f"/v1/listings/{listing_id}")
        assert [e["paper"]["title"] for e in listing.json()["entries"]] == [TITLE]


async def test_a_lagging_replica_is_taken_out_then_put_back(replica_db):
    async with client_over(replica_db, max_lag=0.5) as client:
        await until(lambda: databases(client), lambda dbs: dbs[1]["healthy"])
        await pause(replica_db)
        await submit(client)  # the primary moves on; the standby does not follow
        [_, replica] = await until(lambda: databases(client), lambda dbs: dbs[1]["state"] == "lagging")
        assert not replica["healthy"]
        assert replica["lag_seconds"] > 0.5
        assert replica["lag_bytes"] > 0
        # No replica in rotation: reads fall back to the primary, which has the job.
        assert await jobs_queued(client) == 1
        await on(replica_db.standby, "SELECT pg_wal_replay_resume()")
        [_, replica] = await until(lambda: databases(client), lambda dbs: dbs[1]["healthy"])
        assert replica["state"] == "ok"
        assert replica["lag_seconds"] <= 0.5
        assert await jobs_queued(client) == 1  # back in rotation, caught up


async def test_reads_fall_back_to_the_primary_while_the_replica_is_down(replica_db):
    await load(replica_db.primary, CORPUS)
    await caught_up(replica_db)
    async with client_over(replica_db) as client:
        assert (await client.get("/v1/papers?limit=3")).status_code == 200  # a pooled connection to the standby
        replica_db.cluster.standby.stop("immediate")
        # The first read after the kill meets a dead connection on the standby and is answered by the primary.
        for _ in range(5):
            response = await client.get("/v1/papers?limit=3")
            assert response.status_code == 200
            assert len(response.json()["items"]) == 3
        [_, replica] = await until(lambda: databases(client), lambda dbs: dbs[1]["state"] == "unreachable")
        assert not replica["healthy"]
        assert replica["lag_seconds"] is None
        assert (await client.get("/v1/stats")).json()["papers"] == 16
        replica_db.cluster.standby.start()
        await until(lambda: databases(client), lambda dbs: dbs[1]["healthy"])
        assert (await client.get("/v1/stats")).json()["papers"] == 16


async def test_a_replica_url_that_names_a_primary_takes_no_reads(replica_db):
    database = ReplicaDatabase(replica_db.primary, replica_db.primary, replica_db.cluster)
    async with client_over(database) as client:
        [primary, replica] = await databases(client)
        assert primary["healthy"]
        assert (replica["healthy"], replica["state"]) == (False, "not_a_standby")
        assert (await client.get("/v1/stats")).status_code == 200


async def test_a_malformed_token_is_refused(replica_db):
    async with client_over(replica_db) as client:
        response = await client.get("/v1/stats", headers={"Papers-LSN": "yesterday"})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert "Papers-LSN" in response.json()["detail"]


async def test_a_statement_stopped_at_the_time_limit_on_the_replica_leaves_it_in_rotation(replica_db, monkeypatch):
    from sql import queries

    calls: list[str] = []

    async def slow(conn: asyncpg.Connection, paper_id: str) -> None:
        calls.append(await conn.fetchval("SELECT CASE WHEN pg_is_in_recovery() THEN 'replica' ELSE 'primary' END"))
        await conn.fetchval("SELECT pg_sleep(30)")

    await caught_up(replica_db)
    monkeypatch.setattr(queries, "paper_detail", slow)
    # Checks far apart: a replica taken out would stay out for the rest of the test.
    options = ReplicaSettings(urls=(replica_db.standby,), check_interval=30, max_lag=60.0, wait=0.05)
    app = create_app(settings(replicas=options, statement_timeout=0.3), database_url=replica_db.primary)
    async with AsyncTestClient(app) as client:
        await until(lambda: databases(client), lambda dbs: dbs[1]["healthy"])
        response = await client.get("/v1/papers/pap_aaaaaaaaaaaaaaaa")
        assert response.status_code == 503
        assert "time limit" in response.json()["detail"]
        assert calls == ["replica"]  # not run again on the primary: the query is the problem, not the replica
        [_, replica] = await databases(client)
        assert replica["healthy"]
        assert replica["state"] != "unreachable"
