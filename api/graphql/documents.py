"""Document checks: the token limit at parsing, the guard rules at validation, and each distinct document
parsed and validated once, in a cache bounded in entries and bytes (api/graphql/pipeline.py runs them).
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, NamedTuple, Protocol, TypeVar, cast

from graphql import ASTValidationRule, DocumentNode, GraphQLError
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.types import ExecutionContext

from api.graphql.cost import check_size
from schema import limits
from schema.errors import QueryTooCostlyError

# Built once: rule classes made per request would never let a cache keyed on them hit.
GUARD_RULES: tuple[type[ASTValidationRule], ...] = (
    depth_rule(limits.MAX_DEPTH, None),
    alias_rule(limits.MAX_ALIASES),
)
MAX_ENTRIES = 512
# Of document text: a parsed document takes some tens of times its text, and the token limit bounds each one.
MAX_BYTES = 1_000_000
MAX_CACHED_DOCUMENT = 8_000  # larger documents are parsed and validated per request, never kept
V = TypeVar("V")


class Checked(NamedTuple):
    """A parsed document and its validation errors (empty when valid)."""

    document: DocumentNode
    errors: list[GraphQLError]


def cache_key(text: str) -> str:
    """A document's key: whitespace runs collapsed when no string literal could hold them."""
    return " ".join(text.split()) if '"' not in text else text


class TextLRU(Generic[V]):
    """An LRU keyed by document text, bounded by count and by total text size; safe across threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: collections.OrderedDict[str, V] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        """The value kept for a key, if any."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: V) -> None:
        """Keep a value, evicting the least recently used ones past the bounds; long keys are never kept."""
        if len(key) > MAX_CACHED_DOCUMENT:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += len(key)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                evicted, _ = self._items.popitem(last=False)
                self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)


DocumentStore = TextLRU[Checked]


class WithDocuments(Protocol):
    """A schema that keeps its checked documents."""

    documents: DocumentStore


def set_limits(context: ExecutionContext) -> None:
    """The token limit at parsing and the guard rules at validation, for this operation."""
    context.parse_options["max_tokens"] = limits.MAX_TOKENS
    context.validation_rules = (*context.validation_rules, *GUARD_RULES)


def serve_parsed(context: ExecutionContext) -> Checked | None:
    """Give the operation its document from the schema's store, when it was checked before."""
    hit = cast(WithDocuments, context.schema).documents.get(cache_key(context.query)) if context.query else None
    if hit is not None:
        context.graphql_document = hit.document
    return hit


def serve_validated(context: ExecutionContext, hit: Checked | None) -> None:
    """Give a stored document its validation result, so Strawberry skips validating it (empty list: valid);
    refuse a new document too large to validate cheaply before Strawberry validates it."""
    if hit is not None:
        context.pre_execution_errors = list(hit.errors)
    elif context.graphql_document is not None:
        try:
            check_size(context.graphql_document)
        except QueryTooCostlyError as exc:
            context.pre_execution_errors = [GraphQLError(exc.message, original_error=exc)]


def keep_checked(context: ExecutionContext, hit: Checked | None) -> None:
    """Store a document Strawberry just parsed and validated."""
    if hit is None and context.query and context.graphql_document is not None:
        checked = Checked(context.graphql_document, list(context.pre_execution_errors or []))
        cast(WithDocuments, context.schema).documents.put(cache_key(context.query), checked)
