"""REST routes about the service itself: totals, liveness, readiness."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from api.rest.params import Conn, Health, route
from api.services import catalog, health
from schema.api import Stats


@route(get, "/v1/stats", "getStats", "Collection totals", "meta")
async def get_stats(conn: Conn) -> Stats:
    """Counts of papers, listings, entries, rejects, embedded papers and jobs."""
    return await catalog.stats(conn)


@route(get, "/healthz", "liveness", "Liveness", "meta")
async def healthz() -> Health:
    """The process is up."""
    return Health("ok")


@route(get, "/readyz", "readiness", "Readiness", "meta")
async def readyz(request: Request[Any, Any, Any], conn: Conn) -> Health:
    """Ready: the database is reachable, every migration is applied and the embedding model (if any) is loaded."""
    await health.check_ready(conn, request.app.state.queries)
    return Health("ready")


ROUTES = [get_stats, healthz, readyz]
