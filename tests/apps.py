"""Apps for tests: settings that load no model unless a test passes an embedder of its own."""

from __future__ import annotations

from typing import Any

from schema.settings import EmbedderSettings, Settings


def settings(**changes: Any) -> Settings:
    """Settings as an operator would give them, with no embedder (tests choose theirs explicitly) and no
    rate limits (tests send many requests from one address; the rate-limit tests set their own)."""
    return Settings(**{"embedder": EmbedderSettings(kind="none"), "rate_limit": None, **changes})
