"""Decoding raw input bytes and normalizing the text fields found in them."""

from __future__ import annotations

import html
import re
import unicodedata

from schema.errors import NotAListingError


def decode(raw: bytes) -> str:
    """Decode input bytes (UTF-8 with or without BOM, or BOM-marked UTF-16) and unify line ends to LF.

    Bytes that are not text in a supported encoding are not a listing.
    """
    utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
    try:
        text = raw.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as exc:
        encoding = "UTF-16" if utf16 else "UTF-8"
        line = _unify_line_ends(raw[: exc.start].decode("latin-1")).count("\n") + 1
        raise NotAListingError(f"input is not valid {encoding} (invalid byte at offset {exc.start})", line) from None
    text = _unify_line_ends(text)
    if "\x00" in text:
        raise NotAListingError("input is binary (contains NUL characters)", text.count("\n", 0, text.index("\x00")) + 1)
    return text


def _unify_line_ends(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalize(value: str) -> str:
    """Unescape HTML entities, apply Unicode NFC and collapse runs of whitespace; nothing else changes."""
    # Each step is skipped when it cannot change the text: this runs for every line and field ingested.
    if "&" in value:
        value = html.unescape(value)
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    return " ".join(value.split())  # str.split() splits on exactly the characters of str.isspace()


_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """Why a text cannot be stored (a NUL character, an unpaired UTF-16 surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if _SURROGATE.search(value):
        return "contains an unpaired surrogate (\\ud800-\\udfff), which is not text"
    return None
