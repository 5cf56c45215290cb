"""Document checks: the token limit at parsing, the guard rules at validation, and each distinct document
parsed and validated once, in a cache bounded in entries and bytes (api/graphql/pipeline.py runs them).
"""

from __future__ import annotations

import collections
import threading
from typing import NamedTuple, Protocol, cast

from graphql import ASTValidationRule, DocumentNode, GraphQLError
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.types import ExecutionContext

from schema import limits

# Built once: rule classes made per request would never let a cache keyed on them hit.
GUARD_RULES: tuple[type[ASTValidationRule], ...] = (
    depth_rule(limits.MAX_DEPTH, None),
    alias_rule(limits.MAX_ALIASES),
)
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


def set_limits(context: ExecutionContext) -> None:
    """The token limit at parsing and the guard rules at validation, for this operation."""
    context.parse_options["max_tokens"] = limits.MAX_TOKENS
    context.validation_rules = (*context.validation_rules, *GUARD_RULES)


def serve_parsed(context: ExecutionContext) -> Checked | None:
    """Give the operation its document from the schema's store, when it was checked before."""
    hit = cast(WithDocuments, context.schema).documents.get(context.query) if context.query else None
    if hit is not None:
        context.graphql_document = hit.document
    return hit


def serve_validated(context: ExecutionContext, hit: Checked | None) -> None:
    """Give a stored document its validation result, so Strawberry skips validating it (empty list: valid)."""
    if hit is not None:
        context.pre_execution_errors = list(hit.errors)


def keep_checked(context: ExecutionContext, hit: Checked | None) -> None:
    """Store a document Strawberry just parsed and validated."""
    if hit is None and context.query and context.graphql_document is not None:
        checked = Checked(context.graphql_document, list(context.pre_execution_errors or []))
        cast(WithDocuments, context.schema).documents.put(context.query, checked)
