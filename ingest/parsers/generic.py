"""Generic JSON listings and JSON Lines: items carrying a title and an abstract, found by a documented rule.

The rule (docs/formats.md): the items are the document when it is an array, the document itself when
it is one object with a title and an abstract, else the first array of objects in the top-level
object that holds an object with a title. In an item, each field is looked up under its common
names, first in the item, then in each object directly inside it (`paper.title`). `--map` names the
paths instead (a FieldMap). Unknown fields, authors among them, are ignored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from ingest.parsers.jsonish import (
    BadItemError,
    Lines,
    arxiv,
    day,
    field_text,
    finish,
    iter_array,
    locate,
)
from ingest.parsers.plausible import check_plausible
from schema.errors import NotAListingError
from schema.identity import normalize_arxiv_id, title_fingerprint
from schema.ingest import FieldMap, ParsedEntry, ParsedListing, Reject

TITLE_NAMES = ("title",)
ABSTRACT_NAMES = ("abstract", "summary", "description")
ARXIV_NAMES = ("arxiv_id", "arxivId")  # named as arXiv ids: a value that is not one is an error
ARXIV_IF_ID = ("paper_id", "id")  # used only when the value is an arXiv id
DATE_NAMES = ("date", "listed_on", "publishedAt", "published")
_MISSING = object()
TOO_DEEP = "the JSON is nested too deeply to read"
NO_MAP = FieldMap()


def load(text: str) -> Any:
    """The whole document as one JSON value; NotAListingError saying where it is malformed."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            raise NotAListingError("text after the JSON document (JSON Lines? --format jsonl)", exc.lineno) from None
        raise NotAListingError(f"malformed JSON document: {exc.msg}", exc.lineno) from None
    except RecursionError:
        raise NotAListingError(TOO_DEEP, 1) from None
    except ValueError as exc:  # a number too long to convert
        raise NotAListingError(f"unreadable JSON: {exc}", 1) from None


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _found(item: dict, names: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """Every (path, value) under one of names: in the item, then in each object directly inside it."""
    for name in names:
        if name in item:
            yield name, item[name]
    for key, inner in item.items():
        if isinstance(inner, dict):
            for name in names:
                if name in inner:
                    yield f"{key}.{name}", inner[name]


def _text(item: dict, path: tuple[str, ...] | None, names: tuple[str, ...], what: str) -> str:
    if path is not None:
        return field_text(_dig(item, path), ".".join(path))
    for label, value in _found(item, names):
        return field_text(value, label)
    raise BadItemError(f"no {what} (looked for {', '.join(repr(n) for n in names)})")


def _arxiv_id(item: dict, path: tuple[str, ...] | None) -> str | None:
    if path is not None:
        value = _dig(item, path)
        return None if value is _MISSING else arxiv(value, ".".join(path))
    for label, value in _found(item, ARXIV_NAMES):
        return arxiv(value, label)
    for _, value in _found(item, ARXIV_IF_ID):
        found = normalize_arxiv_id(value) if isinstance(value, str) else None
        if found:
            return found
    return None


def _item_day(item: dict, path: tuple[str, ...] | None, default: dt.date | None) -> dt.date | None:
    """The item's listing day: its own date field (not a nested object's: that is the paper's), else the document's."""
    if path is not None:
        value = _dig(item, path)
        return default if value is _MISSING else day(value, ".".join(path))
    for name in DATE_NAMES:
        if item.get(name) is not None:
            return day(item[name], name)
    return default


def read_item(
    item: Any, rank: int, lines: tuple[int, int], raw: str, fields: FieldMap, default_day: dt.date | None
) -> ParsedEntry:
    """One item as an entry; BadItemError saying why it cannot be one."""
    if not isinstance(item, dict):
        raise BadItemError("item is not a JSON object")
    title = _text(item, fields.title, TITLE_NAMES, "title")
    if not title_fingerprint(title):
        raise BadItemError("title has no letters or digits")
    abstract = _text(item, fields.abstract, ABSTRACT_NAMES, "abstract")
    arxiv_id = _arxiv_id(item, fields.arxiv_id)
    return ParsedEntry(rank, title, abstract, *lines, arxiv_id, _item_day(item, fields.date, default_day), raw)


def has_title(obj: dict) -> bool:
    """Whether an object carries a title by the rule (itself or one object inside it)."""
    return any(True for _ in _found(obj, TITLE_NAMES))


def _is_item(obj: dict) -> bool:
    return has_title(obj) and any(True for _ in _found(obj, ABSTRACT_NAMES))


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number or null")


def items_path(doc: Any, fields: FieldMap) -> tuple[str, ...] | None:
    """The path to the document's list of items (None: the document is the one item); why not, when none."""
    if fields.items is not None:
        if not isinstance(_dig(doc, fields.items), list):
            raise NotAListingError(f"--map items={'.'.join(fields.items)}: no JSON array there", 1)
        return fields.items
    if isinstance(doc, list):
        if doc and not any(isinstance(x, dict) for x in doc):
            raise NotAListingError(f"a JSON array of {_kind(doc[0])}s, not of paper objects", 1)
        return ()
    if not isinstance(doc, dict):
        raise NotAListingError(f"a JSON {_kind(doc)}, not a listing", 1)
    if fields.title is not None or _is_item(doc):
        return None
    lists = [k for k, v in doc.items() if isinstance(v, list) and any(isinstance(x, dict) for x in v)]
    titled = [k for k in lists if any(isinstance(x, dict) and has_title(x) for x in doc[k])]
    if titled or lists:
        return ((titled or lists)[0],)
    keys = ", ".join(list(doc)[:8]) or "none"
    raise NotAListingError(
        f"a JSON object with no list of papers in it (its keys: {keys}); --map items=PATH names the list", 1
    )


def _document_day(doc: Any, path: tuple[str, ...] | None) -> dt.date | None:
    if not path or not isinstance(doc, dict):
        return None
    for name in DATE_NAMES:
        if name in doc:
            try:
                return day(doc[name], name)
            except BadItemError as exc:
                raise NotAListingError(f"the document's {exc}", 1) from None
    return None


def parse_json(text: str, fields: FieldMap = NO_MAP) -> ParsedListing:
    """Parse one JSON document holding a listing (the generic rule, or the paths of `fields`)."""
    doc = load(text)
    path = items_path(doc, fields)
    default_day = _document_day(doc, path)
    if path is None:
        spans: Iterator[tuple[Any, int, int]] = iter([(doc, 0, len(text))])
    else:
        spans = iter_array(text, locate(text, path), top=not path)
    entries: list[ParsedEntry] = []
    rejects: list[Reject] = []
    index = Lines(text)
    for item, start, end in spans:
        lines, raw = (index.of(start), index.of(end)), text[start:end].strip()
        try:
            entries.append(read_item(item, len(entries) + 1, lines, raw, fields, default_day))
        except BadItemError as exc:
            rejects.append(Reject(*lines, str(exc), raw))
    if not entries and not rejects:
        raise NotAListingError("an empty JSON array: no papers in it", 1)
    return check_plausible(finish("json", entries, rejects, 1), "items")


def parse_jsonl(text: str, fields: FieldMap = NO_MAP) -> ParsedListing:
    """Parse JSON Lines: one item a line, each read by the generic rule (or `fields`)."""
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
            entries.append(read_item(item, len(entries) + 1, (number, number), line, fields, None))
        except BadItemError as exc:
            rejects.append(Reject(number, number, str(exc), line))
    return finish("jsonl", entries, rejects, 1)
