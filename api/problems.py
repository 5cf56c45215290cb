"""RFC 9457 problem details for every 4xx and 5xx, and no stack traces."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from api.similarity import EmbedderUnavailable, SearchInputError
from sql.cursor import InvalidCursor
from sql.db import CONNECTION_LOST, UNSTORABLE_TEXT
from schema.api import doc
from sql.embeddings import SpaceMismatch

log = logging.getLogger("papers.api")
PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None, headers: dict | None = None, **extra: Any) -> Response:
    """A problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class Problem(HTTPException):
    """An error that becomes a problem body with the given status."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail=detail, status_code=status, headers=headers)


def _http(request: Request, exc: HTTPException) -> Response:
    from http import HTTPStatus

    title = HTTPStatus(exc.status_code).phrase
    extra = dict(exc.extra) if isinstance(exc.extra, dict) else {}
    if isinstance(exc, ValidationException) and exc.extra:
        extra = {"errors": exc.extra}
    detail = exc.detail if exc.detail != title else None
    return problem(exc.status_code, title, detail, headers=exc.headers, **extra)


def _cursor(request: Request, exc: InvalidCursor) -> Response:
    return problem(400, "Bad Request", str(exc))


def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", exc)
    return problem(503, "Service Unavailable", "the database is unavailable; retry shortly", {"Retry-After": "5"})


def _internal(request: Request, exc: Exception) -> Response:
    if isinstance(exc, CONNECTION_LOST):
        return _unavailable(request, exc)
    if isinstance(exc, UNSTORABLE_TEXT):
        return problem(400, "Bad Request", "the request contains a character that cannot be stored or searched (NUL)")
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Internal Server Error", "an unexpected error occurred")


def _search_input(request: Request, exc: SearchInputError) -> Response:
    return problem(exc.status, "Not Found" if exc.status == 404 else "Bad Request", str(exc))


def _embedder(request: Request, exc: EmbedderUnavailable) -> Response:
    return problem(503, "Service Unavailable", str(exc), {"Retry-After": str(exc.retry_after)})


def _space(request: Request, exc: SpaceMismatch) -> Response:
    return problem(409, "Conflict", str(exc))


EXCEPTION_HANDLERS = {
    HTTPException: _http,
    InvalidCursor: _cursor,
    SearchInputError: _search_input,
    EmbedderUnavailable: _embedder,
    SpaceMismatch: _space,
    Exception: _internal,
}

__all__ = ["EXCEPTION_HANDLERS", "MediaType", "PROBLEM_JSON", "Problem", "problem"]


class ProblemDetail(msgspec.Struct, frozen=True):
    """An RFC 9457 problem: every 4xx and 5xx body of this API."""

    type: doc(str, "problem type URI; about:blank means the status says it all", "about:blank")
    title: doc(str, "the status phrase", "Bad Request")
    status: doc(int, "the HTTP status", 400)
    detail: doc(str | None, "what went wrong, for a person", "cursor is malformed") = None
    errors: doc(list[dict] | None, "per-parameter validation errors",
                [{"message": "Expected `int` <= 100", "key": "limit", "source": "query"}]) = None


_MEANING = {
    400: "malformed request: bad parameter, cursor, body or text",
    401: "missing or wrong API key",
    404: "no such resource",
    413: "request body too large",
    500: "unexpected server error (no details are exposed)",
    503: "database unreachable or embedding model not ready; see Retry-After",
}


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem responses a route can give (400, 500 and 503 always)."""
    return {
        status: ResponseSpec(ProblemDetail, description=_MEANING[status], media_type=PROBLEM_JSON,
                             generate_examples=False)  # fmt: skip
        for status in sorted({400, 500, 503, *statuses})
    }
