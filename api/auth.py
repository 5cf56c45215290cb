"""The API key that guards write endpoints: a bearer token from configuration."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.problems import Problem


def key_matches(authorization: str | None, api_key: str | None) -> bool:
    """Tell whether an Authorization header carries the configured key (never true when none is configured)."""
    if not api_key or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[len("Bearer ") :].encode(), api_key.encode())


def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Litestar guard: 401 unless `Authorization: Bearer <PAPERS_API_KEY>`."""
    settings = connection.app.state.settings
    if not settings.api_key:
        raise Problem(401, "writes are disabled: the server has no API key configured (PAPERS_API_KEY)",
                      headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    if not key_matches(connection.headers.get("authorization"), settings.api_key):
        raise Problem(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})
