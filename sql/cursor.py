"""Opaque keyset cursors: the sort they belong to and the last row's sort key, base64url-encoded."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec


class InvalidCursor(ValueError):
    """A cursor that was not issued by this service for this query."""


def encode(kind: str, values: list[Any]) -> str:
    """Encode a cursor for the row after which the next page starts."""
    return base64.urlsafe_b64encode(msgspec.json.encode([kind, *values])).decode().rstrip("=")


def decode(token: str, kind: str) -> list[Any]:
    """Decode a cursor issued for `kind`; raise InvalidCursor otherwise."""
    try:
        data = msgspec.json.decode(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidCursor("cursor is malformed") from None
    if not isinstance(data, list) or not data or data[0] != kind:
        raise InvalidCursor("cursor belongs to another query or sort order")
    return data[1:]
