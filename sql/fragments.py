"""SQL pieces every read shares: which column holds each contract field, filters, sort orders, keysets, id lookups.

The list queries (sql/queries.py), search (sql/search.py) and the compiled GraphQL reads (sql/graph.py)
build from these, so a filter or a sort order means the same thing everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg

from schema import limits
from schema.api import PaperFilter
from schema.errors import InvalidCursorError
from schema.identity import normalize_arxiv_id
from schema.paging import PageRequest
from sql import cursor

# Contract field -> column, for papers (alias p) and listings (alias l).
PAPER_FIELDS = {
    "id": "public_id",
    "title": "title",
    "abstract": "abstract",
    "arxiv_id": "arxiv_id",
    "first_seen": "first_seen",
    "last_seen": "last_seen",
    "first_listed": "first_listed",
    "last_listed": "last_listed",
}
LISTING_FIELDS = {
    "id": "public_id",
    "source": "source",
    "kind": "kind",
    "date_label": "date_label",
    "date": "listed_on",
    "heading": "heading",
    "entry_count": "entry_count",
    "reject_count": "reject_count",
    "ingested_at": "ingested_at",
}
TIMESTAMPS = frozenset({"first_seen", "last_seen", "ingested_at"})
MAX_KEY = 2**63 - 1


def columns(fields: dict[str, str], alias: str) -> str:
    """`alias.column AS field, ...` for a select list."""
    return ", ".join(
        f"{alias}.{column} AS {name}" if column != name else f"{alias}.{column}" for name, column in fields.items()
    )


PAPER_COLUMNS = columns(PAPER_FIELDS, "p")
LISTING_COLUMNS = columns(LISTING_FIELDS, "l")


def capped_count(rows: str) -> str:
    """SQL counting the rows of `rows` (`FROM ... WHERE ...`), stopping at MAX_COUNTED + 1 (schema.paging.Total.of):
    a common word's matches are never all read to say how many there are."""
    return f"(SELECT count(*) FROM (SELECT 1 {rows} LIMIT {limits.MAX_COUNTED + 1}) AS counted)"


class Where:
    """SQL conditions with numbered parameters, numbered after those already in `params` (shared when given)."""

    def __init__(self, params: list[Any] | None = None) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = [] if params is None else params

    def param(self, value: Any) -> str:
        """A placeholder for value."""
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, template: str, *values: Any) -> None:
        """Add a condition whose `{}` are filled with placeholders for values."""
        self.conditions.append(template.format(*(self.param(v) for v in values)))

    def sql(self) -> str:
        """The conditions joined by AND (`true` when there are none)."""
        return " AND ".join(self.conditions) or "true"


def paper_filters(where: Where, flt: PaperFilter) -> None:
    """Add the conditions of a paper filter (papers as alias p)."""
    if flt.q:
        where.add("p.search @@ websearch_to_tsquery('english', {})", flt.q)
    if flt.listing:
        where.add(
            "EXISTS (SELECT 1 FROM listing_entries e JOIN listings l USING (listing_key)"
            " WHERE e.paper_key = p.paper_key AND l.public_id = {})",
            flt.listing,
        )
    if flt.listed_from:
        where.add("p.last_listed >= {}", flt.listed_from)
    if flt.listed_to:
        where.add("p.first_listed <= {}", flt.listed_to)
    if flt.arxiv is not None:
        where.add("(p.arxiv_id IS NOT NULL) = {}", flt.arxiv)


class Sort(NamedTuple):
    """A keyset order: key expressions (the last one unique), direction, the column a cursor carries for the
    first key and that column's kind."""

    keys: tuple[str, str]
    direction: str
    value: str  # the column behind the first key
    kind: str  # "date", "timestamp" or "text"


# asyncpg maps date.min to and from -infinity, the sort value of rows never listed on a known day.
NO_DATE = dt.date.min
PAPER_SORTS = {
    "recent": Sort(("coalesce(p.last_listed, date '-infinity')", "p.paper_key"), "DESC", "p.last_listed", "date"),
    "title": Sort(("p.title", "p.paper_key"), "ASC", "p.title", "text"),
    "first_seen": Sort(("p.first_seen", "p.paper_key"), "ASC", "p.first_seen", "timestamp"),
}
LISTING_SORT = Sort(("coalesce(l.listed_on, date '-infinity')", "l.listing_key"), "DESC", "l.listed_on", "date")


def reversed_sort(sort: Sort) -> Sort:
    """The same keys in the opposite direction."""
    return sort._replace(direction="ASC" if sort.direction == "DESC" else "DESC")


def paper_sort(name: str) -> Sort:
    """The keyset order of a sort name: `title`, or `-title` for the reverse."""
    return reversed_sort(PAPER_SORTS[name[1:]]) if name.startswith("-") else PAPER_SORTS[name]


def order_by(sort: Sort, *, reverse: bool = False) -> str:
    """The ORDER BY list of a sort (read backwards with `reverse`)."""
    direction = reversed_sort(sort).direction if reverse else sort.direction
    return ", ".join(f"{key} {direction}" for key in sort.keys)


def keyset_values(sort: Sort, first: Any, key: int) -> list[Any]:
    """The cursor values of a row with sort keys (first, key)."""
    if sort.kind == "date":
        return [(first or NO_DATE).isoformat(), key]
    if sort.kind == "timestamp":
        return [first.isoformat(), key]
    return [first, key]


def _first_key(sort: Sort, value: Any) -> Any:
    if sort.kind == "text":
        if not isinstance(value, str):
            raise ValueError("not text")
        return value
    if not isinstance(value, str):
        raise ValueError("not an ISO date")
    parsed = dt.date.fromisoformat(value) if sort.kind == "date" else dt.datetime.fromisoformat(value)
    if isinstance(parsed, dt.datetime) and parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed


# Which rows a cursor bounds, in the order of an ascending sort: after it, before it, up to it, from it on.
_SIDES = {"after": ">", "before": "<", "to": "<=", "from": ">="}
_FLIPPED = {">": "<", "<": ">", "<=": ">=", ">=": "<="}


def add_keyset(where: Where, sort: Sort, token: str, kind: str, side: str = "after") -> None:
    """Add `rows after (before, up to, from) this cursor` to where; InvalidCursorError for a cursor of another
    query or with bad values."""
    values = cursor.decode(token, kind)
    try:
        first, key = values
        if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= MAX_KEY:
            raise ValueError("key out of range")
        first = _first_key(sort, first)
    except (TypeError, ValueError):
        raise InvalidCursorError("cursor is malformed") from None
    op = _FLIPPED[_SIDES[side]] if sort.direction == "DESC" else _SIDES[side]
    where.add(f"({', '.join(sort.keys)}) {op} ({{}}, {{}})", first, key)


def rows_beyond(source: str, where: Where, sort: Sort, side: str) -> str:
    """SQL of whether `source` has a row under `where` (a keyset from `add_keyset` on `side`, "to" or "from").

    Not `EXISTS`: its generic plan costs the keyset at a third of the table and took a sequential scan, which read
    the whole table when the rows past the cursor lay at its far end (45 ms per page at 100,000 papers), and
    PostgreSQL drops an ORDER BY inside `EXISTS`. The first row in the sort's order from the cursor, as a scalar
    subquery, is an index scan that stops at once, whatever the plan.
    """
    order = order_by(sort, reverse=side == "to")
    return f"coalesce((SELECT true FROM {source} WHERE {where.sql()} ORDER BY {order} LIMIT 1), false)"


def page_bounds(where: Where, sort: Sort, request: PageRequest, kind: str) -> None:
    """Add a page request's cursors (rows after `after`, before `before`) to where."""
    if request.after:
        add_keyset(where, sort, request.after, kind, "after")
    if request.before:
        add_keyset(where, sort, request.before, kind, "before")


def id_match(where: Where, column: str, ids: Sequence[str]) -> str:
    """`column = $n` for one id, `column = ANY($n::text[])` for several.

    PostgreSQL keeps one generic plan for a scalar parameter, but an array parameter of unknown length
    makes it plan every call again, which costs several times the lookup itself (docs/design.md).
    """
    if len(ids) == 1:
        return f"{column} = {where.param(ids[0])}"
    return f"{column} = ANY({where.param(list(ids))}::text[])"


def paper_by_public_or_arxiv(where: Where, ids: Sequence[str]) -> list[str]:
    """Add "papers (alias p) with one of these public or arXiv ids" to where; return each id's arXiv form."""
    arxiv = [normalize_arxiv_id(i) or "" for i in ids]
    known = [a for a in arxiv if a]
    by_public = id_match(where, "p.public_id", ids)
    if not known:  # a NULL parameter instead would make every plan custom again
        where.conditions.append(by_public)
    else:
        where.conditions.append(f"({by_public} OR {id_match(where, 'p.arxiv_id', known)})")
    return arxiv


def in_asked_order(rows: Sequence[asyncpg.Record], ids: Sequence[str], arxiv: Sequence[str], build: Any) -> list[Any]:
    """Rows built and put in the order of the ids asked (by public id, else arXiv id), None where unknown."""
    by_public = {r["id"]: build(r) for r in rows}
    by_arxiv = {r["arxiv_id"]: by_public[r["id"]] for r in rows if r["arxiv_id"]}
    return [by_public.get(i) or by_arxiv.get(a) for i, a in zip(ids, arxiv, strict=True)]
