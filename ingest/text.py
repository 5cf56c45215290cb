"""Decoding raw input bytes and normalizing the text fields found in them."""

from __future__ import annotations

import html
import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


class DecodeError(ValueError):
    """Input bytes that are not text in a supported encoding."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def decode(raw: bytes) -> str:
    """Decode input bytes (UTF-8 with or without BOM, or BOM-marked UTF-16) and unify line ends to LF."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16")
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise DecodeError(f"input is not UTF-8 (invalid byte at offset {exc.start})", line) from None
    if "\x00" in text:
        raise DecodeError("input is binary (contains NUL characters)", text.count("\n", 0, text.index("\x00")) + 1)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalize(value: str) -> str:
    """Unescape HTML entities, apply Unicode NFC and collapse runs of whitespace; nothing else changes."""
    value = unicodedata.normalize("NFC", html.unescape(value))
    return _WHITESPACE.sub(" ", value).strip()
