"""Liveness and readiness."""

from __future__ import annotations

import asyncpg

from api.services.search import MODEL_FAILED, QueryEmbeddings
from schema.api import Readiness
from schema.errors import UnavailableError
from sql.migrate import pending
from sql.routing import Source, on_primary, status


async def readiness(source: Source, queries: QueryEmbeddings) -> Readiness:
    """Ready (with every database's role, health and lag), or UnavailableError saying why not."""
    await check_ready(source, queries)
    return Readiness("ready", status(source))


@on_primary
async def check_ready(conn: asyncpg.Connection, queries: QueryEmbeddings) -> None:
    """Raise UnavailableError unless the primary answers, migrations are applied and the model (if any) is loaded.

    Replicas do not decide readiness: with none in rotation, reads go to the primary.
    """
    todo = await pending(conn)
    if todo:
        raise UnavailableError(f"migrations not applied: {', '.join(todo)}")
    if queries.failed:
        raise UnavailableError(MODEL_FAILED, retry_after=3600)
    if queries.loading:
        raise UnavailableError("the embedding model is still loading", retry_after=5)
