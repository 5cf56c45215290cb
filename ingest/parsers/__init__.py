"""Listing parsers: format detection and dispatch to the parser of each format."""

from __future__ import annotations

from typing import Callable, get_args

from ingest.parsers.errors import NotAListing
from ingest.parsers.jsonish import parse_hf_daily, parse_jsonl
from ingest.parsers.page import parse_page
from schema.ingest import ListingKind, ParsedListing

PARSERS: dict[str, Callable[[str], ParsedListing]] = {
    "page": parse_page,
    "hf_daily": parse_hf_daily,
    "jsonl": parse_jsonl,
}
FORMATS: tuple[str, ...] = get_args(ListingKind)

__all__ = ["FORMATS", "NotAListing", "detect_format", "parse"]


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
        raise NotAListing(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return PARSERS[fmt](text)
