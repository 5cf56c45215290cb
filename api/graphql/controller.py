"""The Litestar controller serving /graphql (POST and GET, GraphiQL in browsers) over the schema."""

from __future__ import annotations

from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import msgspec
from cross_web import HTTPException as RequestNotReadable
from litestar import Request, Response
from litestar.background_tasks import BackgroundTasks
from litestar.connection import ASGIConnection
from litestar.di import Provide
from strawberry.litestar import make_graphql_controller

from api.graphql.context import Context
from api.graphql.schema import make_schema
from api.http.problem import problem
from api.services.submissions import write_refusal
from schema.settings import Settings

_ENCODER = msgspec.json.Encoder()


async def _sub_response() -> Response[Any]:
    return Response({}, background=BackgroundTasks([]))


def graphql_controller(settings: Settings) -> type:
    """The controller class for these settings (debug shows unmasked errors; compiled reads on or off)."""

    async def context_getter(request: ASGIConnection[Any, Any, Any, Any]) -> Context:  # a Request or a WebSocket
        state = request.app.state
        refusal = write_refusal(settings.api_key, request.headers.get("authorization"))
        return Context(pool=state.pool, queries=state.queries, write_refusal=refusal)

    schema = make_schema(debug=settings.debug, compiled=settings.graphql_compiled)
    base = make_graphql_controller(schema, path="/graphql", graphql_ide="graphiql", context_getter=context_getter)

    # Strawberry builds the base class per schema at run time; mypy cannot check a class whose base is a value.
    class GraphQLController(base):  # type: ignore[misc,valid-type]
        # The GraphQL contract is the SDL (schema.graphql, introspection), not OpenAPI.
        include_in_schema = False
        # Strawberry provides the sub-response from a sync function run in a worker thread: a thread
        # round trip on every request. Building an empty Response needs no thread.
        # Read-only: the class attribute is the default every instance shares (Litestar copies it per router).
        dependencies = MappingProxyType({**base.dependencies, "response": Provide(_sub_response)})

        def encode_json(self, data: object) -> bytes:
            """Encode the result with msgspec (faster than the stdlib; passes compiled JSON through as is)."""
            return _ENCODER.encode(data)

        async def execute_request(self, request: Request[Any, Any, Any], context: Any, root_value: Any) -> Any:
            """Run the operation; a request GraphQL cannot read gets a problem body, not plain text."""
            try:
                return await self.run(request, context=context, root_value=root_value)
            except RequestNotReadable as exc:
                return problem(exc.status_code, exc.reason or HTTPStatus(exc.status_code).phrase)

    return GraphQLController
