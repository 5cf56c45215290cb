"""Server settings, read from the environment."""

from __future__ import annotations

import os

import msgspec

DEFAULT_MAX_BODY_BYTES = 2_000_000


class Settings(msgspec.Struct, frozen=True):
    """What an operator can configure: API key, CORS, body size, debug, compiled GraphQL reads."""

    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    debug: bool = False
    graphql_compiled: bool = True

    @classmethod
    def from_env(cls) -> "Settings":
        """Settings from `PAPERS_API_KEY`, `PAPERS_CORS_ORIGINS` (comma-separated), `PAPERS_MAX_BODY_BYTES`,
        `PAPERS_DEBUG` and `PAPERS_GRAPHQL_COMPILED` (0 sends every GraphQL request to Strawberry's executor)."""
        origins = tuple(o.strip() for o in os.environ.get("PAPERS_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            api_key=os.environ.get("PAPERS_API_KEY") or None,
            cors_origins=origins,
            max_body_bytes=int(os.environ.get("PAPERS_MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES),
            debug=os.environ.get("PAPERS_DEBUG", "").lower() in {"1", "true", "yes"},
            graphql_compiled=os.environ.get("PAPERS_GRAPHQL_COMPILED", "1").lower() not in {"0", "false", "no"},
        )
