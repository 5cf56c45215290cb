"""Parsers for the two JSON formats: the Hugging Face daily-papers payload and JSON Lines bulk loads."""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

from ingest.text import normalize, unstorable
from schema.errors import NotAListingError
from schema.identity import normalize_arxiv_id, title_fingerprint
from schema.ingest import ListingKind, ParsedEntry, ParsedListing, Reject

_DECODER = json.JSONDecoder()
_NEWLINE = re.compile("\n")


class _BadItemError(ValueError):
    """One JSON item that cannot become an entry."""


class _Lines:
    """Line numbers of offsets in one text, found by bisection: counting from the start for every item made
    parsing quadratic in the number of items."""

    def __init__(self, text: str) -> None:
        self.ends = [match.start() for match in _NEWLINE.finditer(text)]

    def of(self, offset: int) -> int:
        """The 1-based line of an offset."""
        return bisect.bisect_left(self.ends, offset) + 1


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def iter_array(text: str) -> Iterator[tuple[Any, int, int]]:
    """Yield each item of a top-level JSON array with the offsets it spans, so rejects can name lines."""
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        raise NotAListingError("expected a JSON array of daily-papers items", _line_of(text, pos))
    pos = _skip_space(text, pos + 1)
    if text.startswith("]", pos):
        return
    while True:
        try:
            item, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise NotAListingError(f"malformed JSON: {exc.msg}", exc.lineno) from None
        except (ValueError, RecursionError) as exc:  # over-long numbers, absurd nesting
            raise NotAListingError(f"unreadable JSON: {type(exc).__name__}", _line_of(text, pos)) from None
        yield item, pos, end
        pos = _skip_space(text, end)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif text.startswith("]", pos):
            if text[pos + 1 :].strip():
                raise NotAListingError(
                    "unexpected text after the JSON array", _line_of(text, _skip_space(text, pos + 1))
                )
            return
        else:
            raise NotAListingError("malformed JSON: expected ',' or ']'", _line_of(text, pos))


def _text(obj: dict, key: str) -> str:
    value = obj.get(key)
    text = normalize(value) if isinstance(value, str) else ""
    if not text:
        raise _BadItemError(f"'{key}' is missing or not a non-empty string")
    problem = unstorable(text)
    if problem:
        raise _BadItemError(f"'{key}' {problem}")
    return text


def _day(value: Any, key: str) -> dt.date | None:
    """Read an ISO date or timestamp; a timestamp's day is taken in UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadItemError(f"'{key}' is not an ISO date string")
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(dt.UTC)
    except ValueError:
        raise _BadItemError(f"'{key}' is not an ISO date: {value!r}") from None
    except OverflowError:  # a valid timestamp whose day in UTC is before year 1 or after 9999
        raise _BadItemError(f"'{key}' is out of range in UTC: {value!r}") from None
    return stamp.date()


def _arxiv(value: Any, key: str) -> str | None:
    if value is None or value == "":
        return None
    arxiv_id = normalize_arxiv_id(value) if isinstance(value, str) else None
    if arxiv_id is None:
        raise _BadItemError(f"'{key}' is not an arXiv identifier: {value!r}")
    return arxiv_id


def _entry(rank: int, lines: tuple[int, int], fields: dict, item: dict, names: tuple[str, ...]) -> ParsedEntry:
    """An entry from `fields` (title, abstract and arXiv id under names[:3]) and `item` (the day under names[3])."""
    title_key, abstract_key, arxiv_key, day_key = names
    title = _text(fields, title_key)
    if not title_fingerprint(title):
        raise _BadItemError("title has no letters or digits")
    arxiv_id = _arxiv(fields.get(arxiv_key), arxiv_key if fields is item else f"paper.{arxiv_key}")
    return ParsedEntry(
        rank, title, _text(fields, abstract_key), lines[0], lines[1], arxiv_id, _day(item.get(day_key), day_key)
    )


def _hf_entry(item: Any, rank: int, lines: tuple[int, int]) -> ParsedEntry:
    if not isinstance(item, dict) or not isinstance(item.get("paper"), dict):
        raise _BadItemError("item is not an object with a 'paper' object")
    return _entry(rank, lines, item["paper"], item, ("title", "summary", "id", "publishedAt"))


def _jsonl_entry(item: Any, rank: int, lines: tuple[int, int]) -> ParsedEntry:
    if not isinstance(item, dict):
        raise _BadItemError("line is not a JSON object")
    return _entry(rank, lines, item, item, ("title", "abstract", "arxiv_id", "listed_on"))


def _common_day(entries: list[ParsedEntry]) -> dt.date | None:
    """The listing's day: the day most of its entries were listed on (the earliest among ties)."""
    days = collections.Counter(e.listed_on for e in entries if e.listed_on is not None)
    if not days:
        return None
    best = max(days.values())
    return min(day for day, count in days.items() if count == best)


def _finish(
    kind: ListingKind, entries: list[ParsedEntry], rejects: list[Reject], empty_line: int | None
) -> ParsedListing:
    if not entries:
        line = rejects[0].line_start if rejects else empty_line
        reason = f": {rejects[0].reason}" if rejects else ""
        raise NotAListingError(f"no usable entries{reason}", line)
    # JSON inputs print no date label: the day comes from the source itself.
    return ParsedListing(kind, entries, rejects, None, _common_day(entries))


def parse_hf_daily(text: str) -> ParsedListing:
    """Parse a Hugging Face daily-papers JSON payload (a list of {paper: {id, title, summary}, publishedAt})."""
    entries: list[ParsedEntry] = []
    rejects: list[Reject] = []
    index = _Lines(text)
    for item, start, end in iter_array(text):
        lines = (index.of(start), index.of(end))
        try:
            entries.append(_hf_entry(item, len(entries) + 1, lines))
        except _BadItemError as exc:
            rejects.append(Reject(lines[0], lines[1], str(exc), text[start:end]))
    return _finish("hf_daily", entries, rejects, 1)


def parse_jsonl(text: str) -> ParsedListing:
    """Parse JSON Lines of {title, abstract, arxiv_id?, listed_on?}."""
    entries: list[ParsedEntry] = []
    rejects: list[Reject] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            rejects.append(Reject(number, number, f"malformed JSON: {exc.msg}", line))
            continue
        except (ValueError, RecursionError) as exc:  # over-long numbers, absurd nesting
            rejects.append(Reject(number, number, f"unreadable JSON: {type(exc).__name__}", line))
            continue
        try:
            entries.append(_jsonl_entry(item, len(entries) + 1, (number, number)))
        except _BadItemError as exc:
            rejects.append(Reject(number, number, str(exc), line))
    return _finish("jsonl", entries, rejects, 1)
