"""Telling an input's format from its whole content.

A document that parses as one JSON value is one document, however many lines it spans; JSON Lines
are lines that are each a JSON value. Input that is neither is refused with what was found, not
with the error of a parser that was never the right one.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ingest.parsers.generic import TOO_DEEP, has_title
from schema.errors import NotAListingError


def _is_hf_daily(doc: list[Any]) -> bool:
    """The daily-papers API's payload: an array of objects that each hold a `paper` object."""
    first = next((item for item in doc if isinstance(item, dict)), None)
    return first is not None and isinstance(first.get("paper"), dict)


def _bad_line(text: str) -> tuple[int, str] | None:
    """The first non-blank line that is not a JSON value, with why; None when every one is."""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            return number, exc.msg
        except (ValueError, RecursionError) as exc:  # over-long numbers, absurd nesting
            return number, type(exc).__name__
    return None


def detect_json(text: str) -> str:
    """`json`, `hf_daily` or `jsonl` for text that starts like JSON; NotAListingError saying what it is instead."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        whole: tuple[int, str] = (exc.lineno, exc.msg)
    except RecursionError:
        raise NotAListingError(TOO_DEEP, 1) from None
    except ValueError as exc:  # a number too long to convert
        whole = (1, f"unreadable ({exc})")
    else:
        if isinstance(doc, list) and _is_hf_daily(doc):
            return "hf_daily"
        # One line holding one object with no list in it is one JSON Lines item; any other value is a document.
        one_line = sum(bool(line.strip()) for line in text.split("\n")) == 1
        lone_item = isinstance(doc, dict) and has_title(doc) and not any(isinstance(v, list) for v in doc.values())
        return "jsonl" if one_line and lone_item else "json"
    bad = _bad_line(text)
    if bad is None:
        return "jsonl"
    first = next(n for n, line in enumerate(text.split("\n"), start=1) if line.strip())
    if bad[0] == first:  # its first line is no JSON value alone: a document over several lines, malformed
        if whole[1] == "Extra data":
            raise NotAListingError("unexpected text after the JSON array or object", whole[0])
        raise NotAListingError(f"malformed JSON document: {whole[1]}", whole[0])
    raise NotAListingError(
        f"neither one JSON document nor JSON Lines: line {bad[0]} is not a JSON value ({bad[1]}); "
        "--format jsonl reads the lines that are and keeps the others as rejects",
        bad[0],
    )


# The first element of a markup document, past declarations, comments and doctypes.
_ROOT = re.compile(r"<(?![?!])([A-Za-z][\w:.-]*)")
_DOCTYPE_HTML = re.compile(r"<!doctype\s+html", re.IGNORECASE)
FEEDS = {"feed": "atom", "rss": "rss", "rdf:RDF": "rss"}


def detect_markup(text: str) -> str:
    """`atom`, `rss` or `html` for text that starts with `<`; NotAListingError naming any other root."""
    head = text[:4096]
    root = _ROOT.search(head)
    name = root.group(1) if root else ""
    if name in FEEDS:
        return FEEDS[name]
    if name.lower() == "html" or _DOCTYPE_HTML.search(head):
        return "html"
    raise NotAListingError(f"markup whose first element is <{name}>, not an Atom or RSS feed or an HTML page", 1)


def detect_format(text: str) -> str:
    """Tell the format from the content; NotAListingError when it starts like JSON or markup but is neither."""
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        return detect_json(text)
    if head == "<":
        return detect_markup(text)
    return "page"
