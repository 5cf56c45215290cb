"""Listing parsers: format detection and dispatch to the parser of each format."""

from __future__ import annotations

from collections.abc import Callable

from ingest.parsers.jsonish import parse_hf_daily, parse_jsonl
from ingest.parsers.page import parse_page
from schema.errors import NotAListingError
from schema.ingest import FORMATS, ParsedListing

PARSERS: dict[str, Callable[[str], ParsedListing]] = {
    "page": parse_page,
    "hf_daily": parse_hf_daily,
    "jsonl": parse_jsonl,
}

__all__ = ["PARSERS", "detect_format", "parse"]


def detect_format(text: str) -> str:
    """Tell the format from content: a JSON array is a daily-papers payload, JSON objects per line are JSON Lines."""
    head = text.lstrip()
    if head.startswith("["):
        return "hf_daily"
    if head.startswith("{"):
        return "jsonl"
    return "page"


def parse(text: str, fmt: str | None = None) -> ParsedListing:
    """Parse decoded text in the given format, or the detected one."""
    fmt = fmt or detect_format(text)
    if fmt not in PARSERS:
        raise NotAListingError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return PARSERS[fmt](text)
