"""The Litestar controller serving /graphql (POST and GET, GraphiQL in browsers) over the schema."""

from __future__ import annotations

import json
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import msgspec
from cross_web import AsyncHTTPRequestAdapter
from cross_web import HTTPException as RequestNotReadable
from litestar import Request, Response, post
from litestar.connection import ASGIConnection
from litestar.di import Provide
from strawberry.http import GraphQLRequestData
from strawberry.litestar import make_graphql_controller

from api.graphql.context import Context
from api.graphql.pipeline import answer_known
from api.graphql.schema import make_schema
from api.http.consistency import freshness
from api.http.explorer import GRAPHIQL_HTML
from api.http.problem import TOO_DEEP, problem
from schema.settings import Settings
from sql.routing import Session

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


class _Body(msgspec.Struct):
    """A GraphQL-over-HTTP POST body (the names are the protocol's)."""

    query: str | None = None
    variables: dict[str, Any] | None = None
    operationName: str | None = None  # noqa: N815 - the protocol's name
    extensions: dict[str, Any] | None = None


_BODY = msgspec.json.Decoder(_Body)


def _plain_json_post(request: AsyncHTTPRequestAdapter) -> bool:
    """A POST of JSON that asks for a plain JSON answer (not a multipart or event stream)."""
    content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    accept = request.headers.get("accept", "")
    return (
        request.method == "POST"
        and content_type == "application/json"
        and "multipart/mixed" not in accept
        and "text/event-stream" not in accept
    )


async def _known_read_body(request: Request[Any, Any, Any]) -> _Body | None:
    """The body of a plain JSON POST without protocol extensions, else None (Strawberry's view reads it)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    accept = request.headers.get("accept", "")
    if content_type != "application/json" or "multipart/mixed" in accept or "text/event-stream" in accept:
        return None
    try:
        body = _BODY.decode(await request.body())
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return body if not body.extensions else None


async def _sub_response() -> Response[Any]:
    # Resolvers may set headers or cookies on it; the view copies them onto the real response.
    return Response(None)


def graphql_controller(settings: Settings) -> Any:
    """The controller class for these settings (debug shows unmasked errors; compiled reads on or off)."""

    async def context_getter(request: ASGIConnection[Any, Any, Any, Any]) -> Context:  # a Request or a WebSocket
        state = request.app.state
        authorization = request.headers.get("authorization")
        db = Session(state.databases, freshness(request.scope))
        return Context(db=db, queries=state.queries, api_key=settings.api_key, authorization=authorization)

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

        # GraphiQL from the vendored assets (Strawberry's page loads its scripts from a public CDN).
        graphql_ide_html = GRAPHIQL_HTML

        @post(status_code=200)
        async def handle_http_post(self, request: Request[Any, Any, Any]) -> Response[Any]:
            """Run a POSTed operation.

            Its context and sub-response are made here rather than injected: Litestar resolves several
            dependencies concurrently, in a task group of their own on every request.
            """
            self.temporal_response = sub_response = await _sub_response()
            context = await context_getter(request)
            context.request, context.response = request, sub_response
            body = await _known_read_body(request) if settings.graphql_compiled else None
            if body is not None and body.query is not None:
                result = await answer_known(
                    schema, context, body.query, body.variables, body.operationName, debug=settings.debug
                )
                if result is not None:
                    return self.create_response(await self.process_result(request, result), sub_response)
            return await self.execute_request(request, context, None)

        async def parse_http_body(
            self, request: AsyncHTTPRequestAdapter
        ) -> GraphQLRequestData | list[GraphQLRequestData]:
            """Read a plain JSON POST in one typed decode; anything else (or anything odd) the way Strawberry does."""
            if _plain_json_post(request):
                try:
                    body = _BODY.decode(await request.get_body())
                except RecursionError:
                    raise RequestNotReadable(400, TOO_DEEP) from None
                except (msgspec.DecodeError, msgspec.ValidationError):
                    pass  # a batch, a malformed body or a wrong type: Strawberry's view says exactly what is wrong
                else:
                    return GraphQLRequestData(body.query, body.variables, body.operationName, body.extensions)
            return await super().parse_http_body(request)

        def decode_json(self, data: str | bytes) -> object:
            """Decode with msgspec; malformed JSON raises the stdlib error Strawberry turns into a 400."""
            try:
                return _DECODER.decode(data)
            except RecursionError:
                raise RequestNotReadable(400, TOO_DEEP) from None
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # malformed, or not UTF-8
                raise json.JSONDecodeError(str(exc), data if isinstance(data, str) else "", 0) from None

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
