"""Listing parsers: format detection and dispatch to the parser of each format."""

from __future__ import annotations

from collections.abc import Callable

from ingest.parsers.detect import detect_format
from ingest.parsers.feeds import parse_atom, parse_rss
from ingest.parsers.generic import NO_MAP, parse_json, parse_jsonl
from ingest.parsers.html_pages import parse_html
from ingest.parsers.jsonish import parse_hf_daily
from ingest.parsers.page import parse_page
from ingest.parsers.split import split_by_day
from schema.errors import NotAListingError
from schema.ingest import FORMATS, FieldMap, ParsedListing

PARSERS: dict[str, Callable[[str], ParsedListing]] = {
    "page": parse_page,
    "hf_daily": parse_hf_daily,
    "jsonl": parse_jsonl,
    "json": parse_json,
    "atom": parse_atom,
    "rss": parse_rss,
    "html": parse_html,
}
MAPPED: dict[str, Callable[[str, FieldMap], ParsedListing]] = {"jsonl": parse_jsonl, "json": parse_json}

__all__ = ["PARSERS", "detect_format", "parse", "parse_listings"]


def parse(text: str, fmt: str | None = None, fields: FieldMap = NO_MAP) -> ParsedListing:
    """Parse decoded text in the given format, or the detected one; `fields` maps a JSON layout's paths."""
    fmt = fmt or detect_format(text)
    if fmt not in PARSERS:
        raise NotAListingError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fields == NO_MAP:
        return PARSERS[fmt](text)
    if fmt == "hf_daily" or (fields.items is not None and fmt == "jsonl"):
        fmt = "json"  # a map overrides the payload's fixed layout; a path to the items means one document
    if fmt not in MAPPED:
        raise NotAListingError(f"--map applies to JSON input; this input is read as {fmt!r}")
    return MAPPED[fmt](text, fields)


def parse_listings(text: str, fmt: str | None = None, fields: FieldMap = NO_MAP) -> list[ParsedListing]:
    """Parse an input into its listings: one per listing day its items carry (JSON), else one."""
    return split_by_day(parse(text, fmt, fields))
