"""REST routes about the service itself: totals, liveness, readiness."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from api.rest.params import Db, Health, route
from api.services import catalog, health
from schema.api import Readiness, Stats


@route(get, "/v1/stats", "getStats", "Collection totals", "meta")
async def get_stats(db: Db) -> Stats:
    """Counts of papers, listings, entries, rejects, embedded papers and jobs."""
    return await catalog.stats(db)


@route(get, "/healthz", "liveness", "Liveness", "meta")
async def healthz() -> Health:
    """The process is up."""
    return Health("ok")


@route(get, "/readyz", "readiness", "Readiness", "meta")
async def readyz(request: Request[Any, Any, Any], db: Db) -> Readiness:
    """Ready: the primary is reachable, every migration is applied and the embedding model (if any) is loaded;
    with each database's role, health and lag."""
    return await health.readiness(db, request.app.state.queries)


ROUTES = [get_stats, healthz, readyz]
