"""Reading JSON listings: items with the offsets they span, their fields, and the Hugging Face daily-papers payload."""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import email.utils
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


class BadItemError(ValueError):
    """One JSON item that cannot become an entry."""


class Lines:
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


def _decode_at(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise NotAListingError(f"malformed JSON: {exc.msg}", exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # over-long numbers, absurd nesting
        raise NotAListingError(f"unreadable JSON: {type(exc).__name__}", _line_of(text, pos)) from None


def iter_array(text: str, start: int = 0, *, top: bool = True) -> Iterator[tuple[Any, int, int]]:
    """Yield each item of the JSON array at `start` with the offsets it spans, so rejects can name lines.

    With `top`, the array is the whole document and nothing but space may follow it.
    """
    pos = _skip_space(text, start)
    if not text.startswith("[", pos):
        raise NotAListingError("expected a JSON array of daily-papers items", _line_of(text, pos))
    pos = _skip_space(text, pos + 1)
    if text.startswith("]", pos):
        return
    while True:
        item, end = _decode_at(text, pos)
        yield item, pos, end
        pos = _skip_space(text, end)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif text.startswith("]", pos):
            if top and text[pos + 1 :].strip():
                raise NotAListingError(
                    "unexpected text after the JSON array", _line_of(text, _skip_space(text, pos + 1))
                )
            return
        else:
            raise NotAListingError("malformed JSON: expected ',' or ']'", _line_of(text, pos))


def locate(text: str, path: tuple[str, ...]) -> int:
    """The offset of the value at `path` (keys of nested objects) in a JSON document known to hold it."""
    pos = _skip_space(text, 0)
    for key in path:
        pos = _skip_space(text, pos + 1)  # past "{"
        while True:
            name, pos = _decode_at(text, pos)
            pos = _skip_space(text, _skip_space(text, pos) + 1)  # past ":"
            if name == key:
                break
            pos = _skip_space(text, _decode_at(text, pos)[1])
            pos = _skip_space(text, pos + 1)  # past ","
    return pos


def text_field(obj: dict, key: str) -> str:
    """A non-empty normalized string at `key`; BadItemError when there is none."""
    return field_text(obj.get(key), key)


def field_text(value: Any, key: str) -> str:
    """`value` as a non-empty normalized storable string; BadItemError naming `key` when it is not one."""
    text = normalize(value) if isinstance(value, str) else ""
    if not text:
        raise BadItemError(f"'{key}' is missing or not a non-empty string")
    problem = unstorable(text)
    if problem:
        raise BadItemError(f"'{key}' {problem}")
    return text


def day(value: Any, key: str) -> dt.date | None:
    """Read an ISO date or timestamp (or an RFC 2822 one, as feeds print); a timestamp's day is taken in UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadItemError(f"'{key}' is not an ISO date string")
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        stamp = _rfc2822(value) or dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(dt.UTC)
    except ValueError:
        raise BadItemError(f"'{key}' is not an ISO date: {value!r}") from None
    except OverflowError:  # a valid timestamp whose day in UTC is before year 1 or after 9999
        raise BadItemError(f"'{key}' is out of range in UTC: {value!r}") from None
    return stamp.date()


def _rfc2822(value: str) -> dt.datetime | None:
    if not value[:1].isalpha():  # "Mon, 11 Mar 2024 ..." starts with a day name; ISO starts with a digit
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def arxiv(value: Any, key: str) -> str | None:
    if value is None or value == "":
        return None
    arxiv_id = normalize_arxiv_id(value) if isinstance(value, str) else None
    if arxiv_id is None:
        raise BadItemError(f"'{key}' is not an arXiv identifier: {value!r}")
    return arxiv_id


def _entry(
    rank: int, lines: tuple[int, int], fields: dict, item: dict, names: tuple[str, ...], raw: str | None
) -> ParsedEntry:
    """An entry from `fields` (title, abstract and arXiv id under names[:3]) and `item` (the day under names[3])."""
    title_key, abstract_key, arxiv_key, day_key = names
    title = text_field(fields, title_key)
    if not title_fingerprint(title):
        raise BadItemError("title has no letters or digits")
    arxiv_id = arxiv(fields.get(arxiv_key), arxiv_key if fields is item else f"paper.{arxiv_key}")
    return ParsedEntry(
        rank, title, text_field(fields, abstract_key), *lines, arxiv_id, day(item.get(day_key), day_key), raw
    )


def hf_entry(item: Any, rank: int, lines: tuple[int, int], raw: str | None) -> ParsedEntry:
    """One daily-papers item ({paper: {id, title, summary}, publishedAt}) as an entry; BadItemError why not."""
    if not isinstance(item, dict) or not isinstance(item.get("paper"), dict):
        raise BadItemError("item is not an object with a 'paper' object")
    return _entry(rank, lines, item["paper"], item, ("title", "summary", "id", "publishedAt"), raw)


def common_day(entries: list[ParsedEntry]) -> dt.date | None:
    """The listing's day: the day most of its entries were listed on (the earliest among ties)."""
    days = collections.Counter(e.listed_on for e in entries if e.listed_on is not None)
    if not days:
        return None
    best = max(days.values())
    return min(d for d, count in days.items() if count == best)


def finish(
    kind: ListingKind, entries: list[ParsedEntry], rejects: list[Reject], empty_line: int | None
) -> ParsedListing:
    """The listing of a JSON input; an input without one usable entry is not a listing (the first reject says why)."""
    if not entries:
        line = rejects[0].line_start if rejects else empty_line
        reason = f": {rejects[0].reason}" if rejects else ""
        raise NotAListingError(f"no usable entries{reason}", line)
    # JSON inputs print no date label: the day comes from the source itself.
    return ParsedListing(kind, entries, rejects, None, common_day(entries))


def parse_hf_daily(text: str) -> ParsedListing:
    """Parse a Hugging Face daily-papers JSON payload (a list of {paper: {id, title, summary}, publishedAt})."""
    entries: list[ParsedEntry] = []
    rejects: list[Reject] = []
    index = Lines(text)
    for item, start, end in iter_array(text):
        lines = (index.of(start), index.of(end))
        try:
            entries.append(hf_entry(item, len(entries) + 1, lines, text[start:end]))
        except BadItemError as exc:
            rejects.append(Reject(lines[0], lines[1], str(exc), text[start:end]))
    return finish("hf_daily", entries, rejects, 1)
