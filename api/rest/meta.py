"""REST routes about the service itself: totals, liveness, readiness."""

from __future__ import annotations

from litestar import get

from api.rest.params import Conn, Health
from api.rest.problems import documented
from api.services import catalog, health
from schema.api import Stats


@get("/v1/stats", operation_id="getStats", responses=documented(), summary="Collection totals", tags=["meta"])
async def get_stats(conn: Conn) -> Stats:
    """Counts of papers, listings, entries, rejects, embedded papers and jobs."""
    return await catalog.stats(conn)


@get("/healthz", operation_id="liveness", responses=documented(), summary="Liveness", tags=["meta"])
async def healthz() -> Health:
    """The process is up."""
    return Health("ok")


@get("/readyz", operation_id="readiness", responses=documented(), summary="Readiness", tags=["meta"])
async def readyz(conn: Conn) -> Health:
    """The database is reachable and every migration is applied."""
    await health.check_ready(conn)
    return Health("ready")


ROUTES = [get_stats, healthz, readyz]
