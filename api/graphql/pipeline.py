"""The schema's one extension: document checks, compiled reads and the domain-error mapping, in Strawberry's pipeline.

One extension rather than three: Strawberry looks up and enters every hook of every extension on every
request, and that bookkeeping cost more than the checks themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension

from api.graphql import compiled, documents
from api.graphql.cost import check_cost
from api.graphql.errors import map_errors
from schema.errors import QueryTooCostlyError


class Pipeline(SchemaExtension):
    """Per operation: limits and the document cache, then compiled reads (when on), then errors mapped and masked."""

    def __init__(self, *, debug: bool = False, compiled_reads: bool = True) -> None:
        self.debug = debug
        self.compiled_reads = compiled_reads
        self.hit: documents.Checked | None = None

    def on_operation(self) -> Iterator[None]:
        documents.set_limits(self.execution_context)
        yield
        map_errors(self.execution_context.result, debug=self.debug)

    def on_parse(self) -> Iterator[None]:
        self.hit = documents.serve_parsed(self.execution_context)
        yield

    def on_validate(self) -> Iterator[None]:
        documents.serve_validated(self.execution_context, self.hit)
        yield
        documents.keep_checked(self.execution_context, self.hit)

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        if execution.graphql_document is not None:
            try:
                check_cost(execution.schema._schema, execution.graphql_document, execution.operation_name,
                           execution.variables)  # fmt: skip
            except QueryTooCostlyError as exc:
                execution.result = ExecutionResult(data=None, errors=[GraphQLError(exc.message, original_error=exc)])
        if self.compiled_reads and execution.result is None:
            await compiled.answer(execution)
        yield
