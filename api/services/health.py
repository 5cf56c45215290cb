"""Liveness and readiness."""

from __future__ import annotations

import asyncpg

from api.services.search import QueryEmbeddings
from schema.errors import UnavailableError
from sql.migrate import pending


async def check_ready(conn: asyncpg.Connection, queries: QueryEmbeddings) -> None:
    """Raise UnavailableError unless the database answers, migrations are applied and the model (if any) is loaded."""
    todo = await pending(conn)
    if todo:
        raise UnavailableError(f"migrations not applied: {', '.join(todo)}")
    if queries.loading:
        raise UnavailableError("the embedding model is still loading", retry_after=5)
