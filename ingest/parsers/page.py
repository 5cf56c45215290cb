"""Parser for scraped listing pages: a date label, then title and abstract fields.

Two layouts occur: fields separated by blank lines (a field may wrap over several lines),
and one field per line with no blank lines at all. Page chrome ("new", "Subscribe",
"Daily Papers", the newsletter banner, "Subscribe" glued to the first title) is dropped.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ingest import dates
from ingest.text import normalize
from schema.errors import NotAListingError
from schema.identity import title_fingerprint
from schema.ingest import ParsedEntry, ParsedListing, Reject

_CHROME = {"new", "subscribe", "byak and the research community"}
_HEADINGS = {"daily papers"}
_BANNER = "get trending papers in your email inbox"
_GLUED = "Subscribe"
# Seed abstracts have 97+ words and titles at most 20: these limits leave a wide margin on both sides.
ABSTRACT_MIN_WORDS = 30
ABSTRACT_MIN_CHARS = 250


class Field(NamedTuple):
    """One field of the body: its normalized text, its lines as printed and the 1-based lines it spans."""

    text: str
    raw: str
    line_start: int
    line_end: int


class _Header(NamedTuple):
    body_start: int
    first_line: str | None
    date_label: str | None
    heading: str | None


# Lines no paper title or abstract starts with: Markdown, tables, code, config and `key_name: value` lines.
_MARKUP = re.compile(r"^(?:#|[-*+>] |\||```|<|\{|\[[^\]]*\]\(|\$ |//|/\*|[A-Za-z]+_\w*\s*[:=])")
MOSTLY_NOT_PAIRS = 2  # rejects per entry past which an input is not a listing (damaged seeds-like pages: < 1)
_KEY_VALUE = re.compile(r"^\s*[\w.-]+:(?:\s+\S+)?\s*$")
PROSE_LETTERS = 0.8  # least share of letters among the non-space characters of an abstract (seeds: 0.89 and up)


def looks_like_markup(field: Field) -> bool:
    """Tell Markdown, code, config and key-value lines (which are not listings) from titles and abstracts."""
    lines = field.raw.split("\n")
    # Several lines that mostly read `key: value` (YAML, headers, /proc files); one such line is a title's shape.
    config = len(lines) > 1 and sum(bool(_KEY_VALUE.match(line)) for line in lines) * 2 >= len(lines)
    code = any(line.startswith(("\t", "    ")) for line in lines)  # indented blocks: code and nested config
    return config or code or bool(_MARKUP.match(field.text))


def reads_as_prose(text: str) -> bool:
    """An abstract is mostly letters; code and tables are not."""
    visible = [ch for ch in text if not ch.isspace()]
    return bool(visible) and sum(ch.isalpha() for ch in visible) >= PROSE_LETTERS * len(visible)


def looks_like_abstract(text: str) -> bool:
    """Tell an abstract from a title by its length."""
    return len(text) >= ABSTRACT_MIN_CHARS or len(text.split()) >= ABSTRACT_MIN_WORDS


def could_be_short_abstract(text: str) -> bool:
    """A short field after a title is an abstract only if it reads as prose; titles do not end a sentence."""
    return looks_like_abstract(text) or text.endswith((".", "!", "?"))


def _is_chrome(line: str) -> bool:
    lowered = line.casefold()
    return lowered in _CHROME or lowered.startswith(_BANNER)


def _read_header(lines: list[str]) -> _Header:
    """Skip page chrome at the top and pick up the heading and the date label."""
    date_label = heading = None
    for index, raw in enumerate(lines):
        line = normalize(raw)
        if not line or _is_chrome(line):
            continue
        if line.casefold() in _HEADINGS:
            heading = line
        elif date_label is None and dates.parse_label(line):
            date_label = line
        elif line.startswith(_GLUED) and line[len(_GLUED) :][:1].isalnum() and not line[len(_GLUED) :][:1].islower():
            return _Header(index, line[len(_GLUED) :], date_label, heading)
        else:
            return _Header(index, None, date_label, heading)
    return _Header(len(lines), None, date_label, heading)


def split_fields(lines: list[str], start: int, first_line: str | None) -> list[Field]:
    """Cut the body into fields: blank-line separated blocks, or single lines when no line is blank."""
    body = list(lines[start:])
    if first_line is not None and body:
        body[0] = first_line
    # Blank lines only separate fields when they stand between text (not a trailing newline).
    filled = [i for i, line in enumerate(body) if line.strip()]
    blocks = bool(filled) and any(not line.strip() for line in body[filled[0] : filled[-1] + 1])
    fields: list[Field] = []
    current: list[str] = []
    begin = 0
    for number, raw in enumerate([*body, ""], start=start + 1):
        if raw.strip():
            if not current:
                begin = number
            current.append(raw)
            if blocks:
                continue
        if current:
            fields.append(Field(normalize(" ".join(current)), "\n".join(current), begin, begin + len(current) - 1))
            current = []
    return fields


def pair_fields(fields: list[Field]) -> tuple[list[ParsedEntry], list[Reject]]:
    """Pair each title with the abstract after it; whatever cannot be paired becomes a reject."""
    entries: list[ParsedEntry] = []
    rejects: list[Reject] = []
    title: Field | None = None
    for index, field in enumerate(fields):
        if looks_like_markup(field):
            if title is not None:
                rejects.append(_reject(title, "title with no abstract after it"))
                title = None
            rejects.append(_reject(field, "markup, code or a key-value line, not a title or an abstract"))
            continue
        if title is None:
            if looks_like_abstract(field.text):
                rejects.append(_reject(field, "abstract-like text with no title before it"))
            elif not title_fingerprint(field.text):
                rejects.append(_reject(field, "title has no letters or digits"))
            else:
                title = field
            continue
        following = fields[index + 1] if index + 1 < len(fields) else None
        if not reads_as_prose(field.text) or (
            not looks_like_abstract(field.text)
            and ((following and looks_like_abstract(following.text)) or not could_be_short_abstract(field.text))
        ):
            rejects.append(_reject(title, "title with no abstract after it"))
            title = field if title_fingerprint(field.text) else None
            if title is None:
                rejects.append(_reject(field, "title has no letters or digits"))
            continue
        entries.append(ParsedEntry(len(entries) + 1, title.text, field.text, title.line_start, field.line_end))
        title = None
    if title is not None:
        rejects.append(_reject(title, "title with no abstract after it (end of input)"))
    return entries, rejects


def _reject(field: Field, reason: str) -> Reject:
    return Reject(field.line_start, field.line_end, reason, field.raw)


def parse_page(text: str) -> ParsedListing:
    """Parse a scraped listing page into entries and rejects."""
    lines = text.split("\n")
    header = _read_header(lines)
    fields = split_fields(lines, header.body_start, header.first_line)
    entries, rejects = pair_fields(fields)
    # A listing has at least one real abstract; short line pairs alone are some other text.
    if not any(looks_like_abstract(entry.abstract) for entry in entries):
        line = fields[0].line_start if fields else None
        raise NotAListingError("no title and abstract pairs found", line)
    # A damaged listing keeps its unreadable blocks as rejects; text that is mostly not title and abstract
    # pairs (a README, a log, a config file) is not a listing at all.
    if len(rejects) > MOSTLY_NOT_PAIRS * len(entries):
        raise NotAListingError(
            f"not a listing: {len(rejects)} blocks are not title and abstract pairs against {len(entries)} that are",
            rejects[0].line_start,
        )
    return ParsedListing("page", entries, rejects, header.date_label, None, header.heading)
