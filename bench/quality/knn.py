"""Nearest neighbours by cosine distance in PostgreSQL: exact (a sequential scan) or through an index, timed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np

# The product keeps no exact search: a benchmark that needs the truth turns index scans off for one query.
EXACT = ("enable_indexscan = off",)


def nearest_sql(table: str = "papers", key: str = "public_id", column: str = "embedding", limit: int = 10) -> str:
    """The k-nearest-neighbour query on a vector column, the vector as $1."""
    return f"SELECT {key} FROM {table} WHERE {column} IS NOT NULL ORDER BY {column} <=> $1 LIMIT {limit}"


async def nearest(
    conn: asyncpg.Connection, sql: str, vector: np.ndarray, settings: Sequence[str] = EXACT
) -> tuple[list[Any], float]:
    """The keys a nearest-neighbour query returns under `SET LOCAL` settings (default: exact), and its seconds."""
    started = time.perf_counter()
    async with conn.transaction():
        for setting in settings:
            await conn.execute(f"SET LOCAL {setting}")
        rows = await conn.fetch(sql, vector)
    return [r[0] for r in rows], time.perf_counter() - started


async def plan(conn: asyncpg.Connection, sql: str, vector: np.ndarray, settings: Sequence[str] = ()) -> str:
    """The scan node PostgreSQL plans for a query under `SET LOCAL` settings, e.g. `Seq Scan on papers`."""
    async with conn.transaction():
        for setting in settings:
            await conn.execute(f"SET LOCAL {setting}")
        lines = [r[0] for r in await conn.fetch("EXPLAIN " + sql, vector)]
    return next((line.strip(" ->") for line in lines if "Scan" in line), lines[0]).split("  (")[0]


def recall(found: Sequence[Any], truth: Sequence[Any]) -> float:
    """|found ∩ truth| / |truth|: the share of the true nearest neighbours a search returned."""
    return len(set(found) & set(truth)) / len(truth) if truth else 1.0
