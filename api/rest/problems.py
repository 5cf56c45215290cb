"""RFC 9457 problem details for every 4xx and 5xx, mapped once from the domain errors; no stack traces."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from api.http.problem import PROBLEM_JSON, TOO_DEEP, problem
from schema.api import doc
from schema.errors import DomainError
from sql.db import as_domain_error

log = logging.getLogger("papers.api")


def domain_problem(error: DomainError) -> Response:
    """The problem response of a domain error (Retry-After where it says when to come back)."""
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return problem(error.status, error.message, headers or None)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response:
    extra = dict(exc.extra) if isinstance(exc.extra, dict) else {}
    if isinstance(exc, ValidationException) and exc.extra:
        extra = {"errors": exc.extra}
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    return problem(exc.status_code, detail, headers=exc.headers, **extra)


def _domain(request: Request[Any, Any, Any], exc: DomainError) -> Response:
    return domain_problem(exc)


def _other(request: Request[Any, Any, Any], exc: Exception) -> Response:
    if isinstance(exc, RecursionError):  # msgspec's answer to a body nested thousands of levels deep
        return problem(400, TOO_DEEP)
    known = as_domain_error(exc)
    if known is not None:
        if known.status >= 500:
            log.warning("%s %s: %s (%s)", request.method, request.url.path, known.message, exc)
        return domain_problem(known)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "an unexpected error occurred")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {HTTPException: _http, DomainError: _domain, Exception: _other}


class ProblemDetail(msgspec.Struct, frozen=True):
    """An RFC 9457 problem: every 4xx and 5xx body of this API."""

    type: Annotated[str, doc("problem type URI; about:blank means the status says it all", "about:blank")]
    title: Annotated[str, doc("the status phrase", "Bad Request")]
    status: Annotated[int, doc("the HTTP status", 400)]
    detail: Annotated[str | None, doc("what went wrong, for a person", "cursor is malformed")] = None
    errors: Annotated[
        list[dict] | None,
        doc(
            "per-parameter validation errors", [{"message": "Expected `int` <= 100", "key": "limit", "source": "query"}]
        ),
    ] = None


_MEANING = {
    400: "malformed request: bad parameter, cursor, body or text",
    401: "missing or wrong API key",
    404: "no such resource",
    409: "stored embeddings come from another model than the server's",
    413: "request body too large",
    500: "unexpected server error (no details are exposed)",
    503: "database unreachable, embedding model not ready, or a query stopped at the time limit; see Retry-After",
}


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem responses a route can give (400, 500 and 503 always)."""
    return {
        status: ResponseSpec(
            ProblemDetail, description=_MEANING[status], media_type=PROBLEM_JSON, generate_examples=False
        )
        for status in sorted({400, 500, 503, *statuses})
    }
