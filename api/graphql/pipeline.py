"""The schema's one extension: document checks, compiled reads and the domain-error mapping, in Strawberry's pipeline.

One extension rather than three: Strawberry looks up and enters every hook of every extension on every
request, and that bookkeeping cost more than the checks themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from strawberry.extensions import SchemaExtension

from api.graphql import compiled, documents
from api.graphql.errors import map_errors


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
        if self.compiled_reads:
            await compiled.answer(self.execution_context)
        yield
