"""The Litestar application: lifespan (migrate, pool), REST, GraphQL, OpenAPI, problems, CORS."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import asyncpg
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.datastructures import State
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from api.config import Settings
from api.similarity import QueryEmbeddings
from ingest.embedder import Embedder
from ingest.embedder import from_env as embedder_from_env
from api.problems import EXCEPTION_HANDLERS
from sql import db


async def provide_conn(state: State) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection for the duration of a REST request."""
    async with db.pooled(state.pool) as conn:
        yield conn


_FROM_ENV = object()


def create_app(
    database_url: str | None = None, settings: Settings | None = None, embedder: Embedder | None | object = _FROM_ENV
) -> Litestar:
    """Build the app; without database_url the configured (or embedded) database is used and migrated."""
    from api import rest_similarity
    from api.graphql import graphql_controller
    from api.rest import ROUTES

    settings = settings or Settings.from_env()
    if embedder is _FROM_ENV:
        embedder = embedder_from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        url = database_url or await db.migrated_url()
        app.state.database_url = url
        app.state.pool = await db.create_pool(url)
        # Load the model in the background: keyword routes serve at once, semantic ones answer 503 until ready.
        loading = asyncio.create_task(asyncio.to_thread(embedder.load)) if hasattr(embedder, "load") else None
        try:
            yield
        finally:
            if loading is not None:
                loading.cancel()
            await app.state.pool.close()

    return Litestar(
        route_handlers=[*ROUTES, *rest_similarity.ROUTES, graphql_controller(settings)],
        lifespan=[lifespan],
        dependencies={"conn": Provide(provide_conn)},
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="papers-api",
            version="1.0.0",
            description="Research-paper listings: papers deduplicated across listings, listings with ranked entries.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        state=State({"settings": settings, "queries": QueryEmbeddings(embedder)}),  # type: ignore[arg-type]
        debug=settings.debug,
        signature_namespace={"Settings": Settings},
    )
