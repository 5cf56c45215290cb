"""Pages of a collection as Relay connections describe them: which rows a request asks for, and what a page holds.

Every collection pages by cursor both ways: `first` rows after a cursor (forward) or `last` rows before one
(backward). A page always lists its rows in the collection's order, each with its own cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, NamedTuple, TypeVar

import msgspec

from schema import limits

T = TypeVar("T")


class PageRequest(msgspec.Struct, frozen=True):
    """`size` rows strictly between the cursors `after` and `before` (either may be absent): the first ones,
    or the last ones when `backward`."""

    size: int
    after: str | None = None
    before: str | None = None
    backward: bool = False

    def far_side(self) -> tuple[str, str] | None:
        """The cursor whose other side the page's second flag looks at, and which side: forward, whether rows
        exist at or before `after` ("to"); backward, whether rows exist at or after `before` ("from")."""
        if self.backward:
            return (self.before, "from") if self.before else None
        return (self.after, "to") if self.after else None


class Page(msgspec.Struct, Generic[T], frozen=True):
    """Rows in the collection's order with their cursors, and whether rows exist beyond each end."""

    items: list[T]
    cursors: Sequence[str]  # made as they are read (sql.cursor.Cursors): REST wants one, GraphQL's edges all
    has_next: bool
    has_previous: bool

    @property
    def next_cursor(self) -> str | None:
        """The cursor to pass as `after` for the next page; None on the last page."""
        return self.cursors[-1] if self.has_next and self.cursors else None


class Total(NamedTuple):
    """How many rows all pages of a collection hold: exact up to MAX_COUNTED, else at least MAX_COUNTED."""

    value: int
    exact: bool

    @classmethod
    def of(cls, counted: int) -> Total:
        """The total of a count that stopped at MAX_COUNTED + 1 rows (sql.fragments.capped_count)."""
        return cls(min(counted, limits.MAX_COUNTED), counted <= limits.MAX_COUNTED)


def flags(request: PageRequest, more: bool, beyond: bool) -> tuple[bool, bool]:
    """(has_next, has_previous) of a page: `more` when a row follows the page in the direction read, `beyond`
    when rows exist on the far side of the cursor the page started from."""
    return (beyond, more) if request.backward else (more, beyond)
