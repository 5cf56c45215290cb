"""The API's connection pool hands connections out first come, first served."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg

from sql import db


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
