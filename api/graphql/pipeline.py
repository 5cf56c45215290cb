"""The schema's one extension: document checks, compiled reads and the domain-error mapping, in Strawberry's pipeline.

One extension rather than three: Strawberry looks up and enters every hook of every extension on every
request, and that bookkeeping cost more than the checks themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

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
        document, core = execution.graphql_document, execution.schema._schema
        if document is not None:
            try:
                check_cost(core, document, execution.operation_name, execution.variables)
            except QueryTooCostlyError as exc:
                execution.result = ExecutionResult(data=None, errors=[GraphQLError(exc.message, original_error=exc)])
        if self.compiled_reads and execution.result is None and document is not None:
            execution.result = await compiled.answer(
                core, execution.context, execution.query or "", execution.operation_name, document, execution.variables
            )
        yield


async def answer_known(
    schema: Any, context: Any, query: str, variables: Any, operation_name: str | None, *, debug: bool
) -> ExecutionResult | None:
    """Pipeline's steps for a read whose document was checked before: its cost, its compiled answer, its errors.

    None when the document is new or invalid, too costly, or not compiled: Strawberry's pipeline then runs
    it (and reports what is wrong). Strawberry's per-request machinery around the one extension (finding
    and entering every hook, preparing the operation) cost more CPU than the compiled read itself.
    """
    hit = cast(documents.WithDocuments, schema).documents.get(documents.cache_key(query))
    if hit is None or hit.errors:
        return None
    core = schema._schema
    try:
        check_cost(core, hit.document, operation_name, variables)
    except QueryTooCostlyError:
        return None
    result = await compiled.answer(core, context, query, operation_name, hit.document, variables)
    if result is not None and result.errors:
        schema.process_errors(result.errors)  # as Strawberry does, before the mapping masks them
        map_errors(result, debug=debug)
    return result
