"""REST routes about the service itself: totals, liveness, readiness."""

from __future__ import annotations

from litestar import get

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
async def readyz(conn: Conn) -> Health:
    """The database is reachable and every migration is applied."""
    await health.check_ready(conn)
    return Health("ready")


ROUTES = [get_stats, healthz, readyz]
