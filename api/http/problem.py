"""RFC 9457 problem responses: the one body shape of every 4xx and 5xx, REST's and GraphQL's."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from litestar import Response

PROBLEM_JSON = "application/problem+json"
TOO_DEEP = "the JSON body is nested too deeply to read"


def problem(status: int, detail: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """A problem+json response whose title is the status phrase."""
    title = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
