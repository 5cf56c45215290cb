"""Liveness and readiness."""

from __future__ import annotations

import asyncpg

from schema.errors import UnavailableError
from sql.migrate import pending


async def check_ready(conn: asyncpg.Connection) -> None:
    """Raise UnavailableError unless the database answers and every migration is applied."""
    todo = await pending(conn)
    if todo:
        raise UnavailableError(f"migrations not applied: {', '.join(todo)}")
