"""The Litestar application: lifespan (migrate, pool, model loading), REST, GraphQL, OpenAPI, problems, CORS."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any, cast

from granian.utils.proxies import wrap_asgi_with_proxy_headers
from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from api.graphql.controller import graphql_controller
from api.http.compression import COMPRESSION
from api.http.consistency import consistent, freshness
from api.http.explorer import EXPLORER_ASSETS, OfflineSwaggerUI
from api.http.observe import observe
from api.http.ratelimit import RateLimits, rate_limited
from api.rest import ROUTES
from api.rest.problems import EXCEPTION_HANDLERS
from api.services.search import QueryEmbeddings
from ingest.embedder import Embedder, LocalEmbedder, OnnxEmbedder, from_settings
from schema.settings import Settings
from sql import db, hnsw, search
from sql.replicas import Databases
from sql.routing import Session

log = logging.getLogger("papers.api")

BEARER = SecurityScheme(type="http", scheme="bearer", description="PAPERS_API_KEY, for writes")


def provide_db(request: Request[Any, Any, Any]) -> Session:
    """The REST request's way to the databases: each service call borrows a connection where it should run."""
    return Session(request.app.state.databases, freshness(request.scope))


_CONFIGURED: Any = object()


def _report_load(loading: asyncio.Task[Any]) -> None:
    """Log a model that failed to load: its requests keep answering 503, and the log says why."""
    if not loading.cancelled() and loading.exception() is not None:
        log.error("the embedding model failed to load", exc_info=loading.exception())


def _freeze_heap(loading: asyncio.Task[Any] | None) -> None:
    """Move what start-up made (modules, the model once loaded) out of the collector's reach.

    Those objects live as long as the process; left in the oldest generation, every full collection walks
    the model's hundreds of thousands of them, pausing the event loop ~300 ms (p99 of a paper read went
    from ~300 ms to ~30 ms under load once frozen).
    """
    gc.freeze()
    if loading is not None:
        loading.add_done_callback(lambda _: gc.freeze())


class PapersApp(Litestar):
    """The Litestar app with ASGI middleware around all of it, routing included.

    Litestar runs its own middleware after routing, so it never sees a 404, a 405 or a HEAD request;
    the request id, the access log, HEAD and rate limits must wrap the router itself.
    """

    def __init__(self, outer: Callable[[ASGIApp, Mapping[str, Collection[str]]], ASGIApp], **options: Any) -> None:
        super().__init__(**options)
        # Each path's methods, by its template: what OPTIONS answers in `Allow` (api/http/observe.py).
        methods = {route.path_format: frozenset(route.methods) for route in self.routes if isinstance(route, HTTPRoute)}
        self._outer = outer(super().__call__, methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        """Every ASGI event, through the outer middleware first."""
        await self._outer(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    database_url: str | None = None,
    embedder: Embedder | None = _CONFIGURED,
    freeze_heap: bool = False,
) -> Litestar:
    """Build the app; without database_url the configured (or embedded) database is used and migrated.

    `embedder` defaults to the one the settings name; tests pass their own. A server process (one app for
    its whole life) sets `freeze_heap`.
    """
    chosen: Embedder | None = from_settings(settings.embedder) if embedder is _CONFIGURED else embedder

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        url = database_url or await db.migrated_url(settings)
        async with db.connection(url) as conn:
            ef = await hnsw.process_ef_search(conn, settings.ef_search)
        search.use_ef_search(ef.ef_search)  # before the pools open: each session sets it once
        log.info("HNSW ef_search %d (%s)", ef.ef_search, ef.source)
        if ef.advice:
            log.warning(ef.advice)
        databases = Databases(
            url,
            settings.replicas,
            pool_min=settings.pool_min,
            pool_max=settings.pool_max,
            statement_timeout=settings.statement_timeout,
        )
        await databases.open()
        app.state.databases, app.state.pool = databases, databases.primary.pool
        # Load the model in the background: keyword routes serve at once, semantic ones answer 503 until ready.
        loading: asyncio.Task[Any] | None = None
        if isinstance(chosen, LocalEmbedder | OnnxEmbedder):
            loading = asyncio.create_task(asyncio.to_thread(chosen.load))
            loading.add_done_callback(_report_load)
        if freeze_heap:
            _freeze_heap(loading)
        try:
            yield
        finally:
            if loading is not None:
                loading.cancel()
            await databases.close()

    limits = RateLimits(settings) if settings.rate_limit else None

    # Outermost first: the client's address as a trusted load balancer gives it, then every request gets its id and
    # access-log line, then is counted against the limits (per client: behind a proxy, not all as the proxy's), then
    # its read-your-writes token is read (and a newer one handed back).
    cookie_s = settings.replicas.max_lag + settings.replicas.check_interval

    def outer(app: ASGIApp, methods: Mapping[str, Collection[str]]) -> ASGIApp:
        inner = consistent(app, cookie_s)
        inner = observe(rate_limited(inner, limits) if limits else inner, methods)
        if settings.trusted_proxies:
            return cast(ASGIApp, wrap_asgi_with_proxy_headers(inner, list(settings.trusted_proxies)))
        return inner

    controller = graphql_controller(settings)
    return PapersApp(
        outer,
        route_handlers=[*ROUTES, controller, EXPLORER_ASSETS],
        lifespan=[lifespan],
        dependencies={"db": Provide(provide_db, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=(
            CORSConfig(allow_origins=list(settings.cors_origins), expose_headers=["Papers-LSN"])
            if settings.cors_origins
            else None
        ),
        request_max_body_size=settings.max_body_bytes,
        compression_config=COMPRESSION,
        openapi_config=OpenAPIConfig(
            title="papers-api",
            version="1.0.0",
            description="Research-paper listings: papers deduplicated across listings, listings with ranked entries.",
            path="/schema",
            components=Components(security_schemes={"bearer": BEARER}),
            render_plugins=[OfflineSwaggerUI(path=["/", "/swagger"])],
        ),
        state=State({"settings": settings, "queries": QueryEmbeddings(chosen), "graphql_schema": controller.schema}),
        debug=settings.debug,
        # Logging is the process's (api.process.configure): Litestar's default config would replace the root
        # handlers with its own queue thread and format, dropping the request ids.
        logging_config=None,
    )
