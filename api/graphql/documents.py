"""Each distinct GraphQL document is parsed and validated once, in a cache bounded in entries and bytes."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import NamedTuple, Protocol, cast

from graphql import DocumentNode, GraphQLError
from strawberry.extensions import SchemaExtension

MAX_ENTRIES = 512
MAX_BYTES = 4_000_000  # of document text; a parsed document takes some tens of times its text
MAX_CACHED_DOCUMENT = 16_000  # larger documents are parsed and validated per request, never kept


class Checked(NamedTuple):
    """A parsed document and its validation errors (empty when valid)."""

    document: DocumentNode
    errors: list[GraphQLError]


class DocumentStore:
    """An LRU of checked documents by text, bounded by count and by total text size; safe across threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: collections.OrderedDict[str, Checked] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, text: str) -> Checked | None:
        """The checked document of text, if kept."""
        with self._lock:
            found = self._items.get(text)
            if found is not None:
                self._items.move_to_end(text)
            return found

    def put(self, text: str, checked: Checked) -> None:
        """Keep a checked document, evicting the least recently used ones past the bounds."""
        if len(text) > MAX_CACHED_DOCUMENT:
            return
        with self._lock:
            if text in self._items:
                return
            self._items[text] = checked
            self._bytes += len(text)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                evicted, _ = self._items.popitem(last=False)
                self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)


class WithDocuments(Protocol):
    """A schema that keeps its checked documents."""

    documents: DocumentStore


class DocumentCache(SchemaExtension):
    """Serve parsing and validation from the schema's store; fill it with what Strawberry parsed and validated."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        self.store = cast(WithDocuments, context.schema).documents
        self.hit = self.store.get(context.query) if context.query else None
        if self.hit is not None:
            context.graphql_document = self.hit.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self.hit is not None:
            # Strawberry skips validation when errors are already set (an empty list: valid).
            context.pre_execution_errors = list(self.hit.errors)
        yield
        if self.hit is None and context.query and context.graphql_document is not None:
            self.store.put(context.query, Checked(context.graphql_document, list(context.pre_execution_errors or [])))
