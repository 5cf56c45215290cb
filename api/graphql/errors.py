"""Domain errors as GraphQL errors, mapped once: `extensions.code` (and `retryAfter`), unexpected ones masked.

Client errors are logged at INFO without a traceback; unexpected ones at ERROR with their traceback,
and counted.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from schema.errors import DomainError, InvalidInputError
from sql.db import as_domain_error

log = logging.getLogger("papers.graphql")
MASKED = "Unexpected error."


def _domain(error: GraphQLError) -> DomainError | None:
    if isinstance(error.original_error, GraphQLError):  # GraphQL refused an input value: a variable of the wrong
        return InvalidInputError(error.message)  # type or no such enum value; its message says which and why
    return as_domain_error(error.original_error) if error.original_error is not None else None


def extensions_of(error: DomainError) -> dict[str, Any]:
    """The `extensions` of a GraphQL error for a domain error."""
    extra = {"retryAfter": error.retry_after} if error.retry_after is not None else {}
    return {"code": error.code, **extra}


def log_errors(errors: list[GraphQLError]) -> int:
    """Log client errors briefly and unexpected ones with their traceback; return how many were unexpected."""
    unexpected = 0
    for error in errors:
        domain = _domain(error)
        if error.original_error is None or domain is not None:
            level = logging.WARNING if domain is not None and domain.status >= 500 else logging.INFO
            log.log(level, "graphql: %s", domain.message if domain else error.message)
        else:
            unexpected += 1
            log.error("graphql: unexpected error at %s", error.path, exc_info=error.original_error)
    return unexpected


def map_errors(result: Any, *, debug: bool) -> None:
    """Give the result's domain errors their code; mask every other resolver failure unless debugging."""
    if result is not None and result.errors:
        result.errors = [_map(error, debug) for error in result.errors]


def _map(error: GraphQLError, debug: bool) -> GraphQLError:
    domain = _domain(error)
    if domain is not None:
        return GraphQLError(
            domain.message, error.nodes, error.source, error.positions, error.path, extensions=extensions_of(domain)
        )
    if error.original_error is None or debug:
        return error  # syntax and validation errors say what is wrong with the document
    return GraphQLError(
        MASKED, error.nodes, error.source, error.positions, error.path, extensions={"code": "INTERNAL_SERVER_ERROR"}
    )
