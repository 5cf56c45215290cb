"""The API's connection pool hands connections out first come, first served."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from schema.errors import QueryTimeoutError
from sql import db, queries
from tests.apps import settings
from tests.integration.test_rest import assert_problem


async def _who_gets_the_freed_connection(pool: asyncpg.Pool, borrow: Callable[[asyncpg.Pool], Any]) -> list[str]:
    """One borrower waits for the only connection; a newer one asks for it just as it is freed."""
    order: list[str] = []

    async def borrower(name: str, yields: int) -> None:
        for _ in range(yields):
            await asyncio.sleep(0)
        async with borrow(pool):
            order.append(name)

    holder = borrow(pool)
    await holder.__aenter__()
    waiting = asyncio.create_task(borrower("waiting", 0))
    for _ in range(20):  # the waiter reaches the queue
        await asyncio.sleep(0)
    assert not waiting.done()
    newer = asyncio.create_task(borrower("newer", 1))  # asks while the release is under way
    await holder.__aexit__(None, None, None)
    await asyncio.gather(waiting, newer)
    return order


@contextlib.asynccontextmanager
async def _plain(pool: asyncpg.Pool) -> Any:
    async with pool.acquire() as conn:
        yield conn


async def test_asyncpg_alone_lets_a_newer_borrower_take_a_freed_connection(fresh_db):
    # Why sql.db gates its pools: if asyncpg's pool becomes fair, this fails and the gate can go.
    async def keep_session(conn: asyncpg.Connection) -> None:
        pass  # as sql.db's pools: no reset round trip on release

    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=1, reset=keep_session)
    try:
        assert await _who_gets_the_freed_connection(pool, _plain) == ["newer", "waiting"]
    finally:
        await pool.close()


async def test_a_waiting_request_gets_the_freed_connection_before_a_newer_one(fresh_db):
    pool = await db.create_pool(fresh_db, min_size=1, max_size=1)
    try:
        assert await _who_gets_the_freed_connection(pool, db.pooled) == ["waiting", "newer"]
    finally:
        await pool.close()


async def test_a_statement_past_its_time_limit_is_stopped_on_the_server(fresh_db):
    pool = await db.create_pool(fresh_db, min_size=1, max_size=1, statement_timeout=0.2)
    try:
        async with db.pooled(pool) as conn:
            with pytest.raises(TimeoutError) as raised:
                await conn.fetchval("SELECT pg_sleep(30)")
            assert isinstance(db.as_domain_error(raised.value), QueryTimeoutError)
            # The connection is usable at once, and PostgreSQL no longer runs the statement.
            running = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'"
            assert await conn.fetchval(running) == 0
    finally:
        await pool.close()


async def test_a_request_whose_statement_runs_too_long_gets_a_problem_not_a_wait(fresh_db, monkeypatch):
    async def slow(conn: asyncpg.Connection, paper_id: str) -> None:
        await conn.fetchval("SELECT pg_sleep(30)")

    monkeypatch.setattr(queries, "paper_detail", slow)
    async with AsyncTestClient(create_app(settings(statement_timeout=0.3), database_url=fresh_db)) as client:
        started = time.monotonic()
        response = await client.get("/v1/papers/pap_aaaaaaaaaaaaaaaa")
        assert time.monotonic() - started < 10
        problem = assert_problem(response, 503)
        assert "time limit" in problem["detail"]
        assert response.headers["retry-after"]
        assert (await client.get("/healthz")).status_code == 200
