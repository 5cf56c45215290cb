"""Opaque keyset cursors: the query they belong to and the last row's sort key, base64url-encoded JSON.

A cursor is encoded in Python (`encode`) or inside a statement (`sql_encode`, for reads whose JSON
PostgreSQL builds); both give the same text: `json.dumps` separators are the ones PostgreSQL's
json_build_array prints, and both escape strings alike.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, overload

from schema.errors import InvalidCursorError

MAX_CURSOR_CHARS = 2000


def encode(kind: str, values: Sequence[Any]) -> str:
    """Encode a cursor for the row after which the next page starts."""
    text = json.dumps([kind, *values], ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


class Cursors(Sequence[str]):
    """The cursors of a page's rows, each encoded when it is read: a REST page shows only its last one, and
    encoding every row's cost about 3 µs each (a fifth of a page of papers' CPU)."""

    __slots__ = ("_kind", "_values")

    def __init__(self, kind: str, values: Sequence[Sequence[Any]]) -> None:
        self._kind = kind
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [encode(self._kind, values) for values in self._values[index]]
        return encode(self._kind, self._values[index])


def sql_encode(kind: str, values: Sequence[str]) -> str:
    """A SQL expression that encodes a cursor as `encode` does: kind is a SQL expression, values too."""
    array = f"json_build_array({', '.join([kind, *values])})::text"
    base64_text = f"replace(encode(convert_to({array}, 'UTF8'), 'base64'), E'\\n', '')"
    return f"rtrim(translate({base64_text}, '+/', '-_'), '=')"


def decode(token: str, kind: str) -> list[Any]:
    """Decode a cursor issued for `kind`; raise InvalidCursorError otherwise."""
    if len(token) > MAX_CURSOR_CHARS:
        raise InvalidCursorError("cursor is malformed")
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise InvalidCursorError("cursor is malformed") from None
    if not isinstance(data, list) or not data or data[0] != kind:
        raise InvalidCursorError("cursor belongs to another query or sort order")
    return data[1:]
