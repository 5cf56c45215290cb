"""The error a parser raises when an input is not a listing at all."""

from __future__ import annotations


class NotAListing(ValueError):
    """The input holds no listing; `line` points at the offending line where one applies."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
