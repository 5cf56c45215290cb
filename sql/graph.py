"""A read of papers, listings and entries as one statement whose result PostgreSQL builds as JSON.

`statement(roots)` turns a tree of selected contract fields (schema/selection.py) into one SELECT
with one `json` column per root field, in the shape and bytes the GraphQL executor would produce:
objects with their keys in selection order, lists in the same order as sql/queries.py, timestamps as
Python's isoformat, cursors as sql/cursor.py encodes them. It uses the same filters, sort orders and
keysets as the list queries (sql/fragments.py). What it does not compile raises NotCompiledError.

Correlated subqueries reuse the aliases p (papers), l (listings) and e (entries): each refers only to
its immediate parent's alias, which an inner scope never redefines, so nesting at any depth resolves.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

from schema.selection import Selection
from sql import cursor
from sql.fragments import (
    LISTING_FIELDS,
    LISTING_SORT,
    PAPER_FIELDS,
    PAPER_SORTS,
    TIMESTAMPS,
    Sort,
    Where,
    add_keyset,
    order_by,
    paper_by_public_or_arxiv,
    paper_filters,
)
from sql.queries import LISTINGS_OF_PAPER_ORDER, STATS, after_rank, entries_kind

MAX_PAIRS = 50  # json_build_object takes at most 100 arguments
_ISO = """to_char({0} AT TIME ZONE 'UTC', CASE WHEN extract(microseconds FROM {0})::bigint % 1000000 = 0
          THEN 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"' END)"""
_ENTRY_FIELDS = {"rank": "e.rank", "title_as_printed": "e.title_variant", "abstract_as_printed": "e.abstract_variant"}


class NotCompiledError(Exception):
    """A selection this module does not build (a field with a resolver of its own); the executor answers it."""


def iso(expression: str) -> str:
    """A timestamptz expression as text the way Python's isoformat prints it in UTC."""
    return _ISO.format(expression)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column(alias: str, fields: dict[str, str], name: str) -> str | None:
    column = fields.get(name)
    if column is None:
        return None
    return iso(f"{alias}.{column}") if name in TIMESTAMPS else f"{alias}.{column}"


# SQL of object selections that take no parameter, by the identity of the selection tuple (held, so the id
# stays unique): a planned document's unchanging parts are written out once, not on every request.
_FRAGMENTS: collections.OrderedDict[int, tuple[Sequence[Selection], str, str]] = collections.OrderedDict()
MAX_FRAGMENTS = 4096


class _Statement:
    """Builds one statement: shared parameters, one method per kind of object."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def where(self) -> Where:
        return Where(self.params)

    def once(self, kind: str, selections: Sequence[Selection], build: Callable[[], str]) -> str:
        """The SQL of an object of `kind` for selections, built once when it takes no parameter."""
        found = _FRAGMENTS.get(id(selections))
        if found is not None and found[0] is selections and found[1] == kind:
            return found[2]
        before = len(self.params)
        sql = build()
        if len(self.params) == before:
            _FRAGMENTS[id(selections)] = (selections, kind, sql)
            while len(_FRAGMENTS) > MAX_FRAGMENTS:
                _FRAGMENTS.popitem(last=False)
        return sql

    def object(self, selections: Sequence[Selection], value: Callable[[Selection], str]) -> str:
        if len(selections) > MAX_PAIRS:
            raise NotCompiledError(f"more than {MAX_PAIRS} fields in one object")
        pairs = []
        for sel in selections:
            expression = _literal(sel.typename) if sel.typename is not None else value(sel)
            pairs.append(f"{_literal(sel.key)}, {expression}")
        return f"json_build_object({', '.join(pairs)})"

    # --- objects -----------------------------------------------------------------------------------

    def paper(self, selections: Sequence[Selection]) -> str:
        """A paper object over alias p."""

        def value(sel: Selection) -> str:
            column = _column("p", PAPER_FIELDS, sel.name)
            if column is not None:
                return column
            if sel.name == "listings":
                node = self.object(sel.children, self.listing_ref)
                return f"""(SELECT coalesce(json_agg({node} ORDER BY {LISTINGS_OF_PAPER_ORDER}), '[]'::json)
                            FROM listing_entries e JOIN listings l USING (listing_key)
                            WHERE e.paper_key = p.paper_key)"""
            raise NotCompiledError(f"Paper.{sel.name}")

        return self.once("paper", selections, lambda: self.object(selections, value))

    def listing_ref(self, sel: Selection) -> str:
        """A field of where a paper appeared, over aliases e and l."""
        refs = {"id": "l.public_id", "date_label": "l.date_label", "date": "l.listed_on", "rank": "e.rank"}
        if sel.name in refs:
            return refs[sel.name]
        if sel.name == "listing":
            return self.listing(sel.children)
        raise NotCompiledError(f"ListingRef.{sel.name}")

    def listing(self, selections: Sequence[Selection], listing_id: str | None = None) -> str:
        """A listing object over alias l (whose public id is known under a root `listing(id)`)."""

        def value(sel: Selection) -> str:
            column = _column("l", LISTING_FIELDS, sel.name)
            if column is not None:
                return column
            if sel.name == "entries":
                return self.entries(sel, listing_id)
            raise NotCompiledError(f"Listing.{sel.name}")

        return self.object(selections, value)

    def entry(self, sel: Selection) -> str:
        """A field of a listing entry, over aliases e and p."""
        if sel.name in _ENTRY_FIELDS:
            return _ENTRY_FIELDS[sel.name]
        if sel.name == "paper":
            return self.paper(sel.children)
        raise NotCompiledError(f"ListingEntry.{sel.name}")

    # --- connections ---------------------------------------------------------------------------------

    def connection(
        self,
        sel: Selection,
        alias: str,
        source: str,
        cursor_sql: Callable[[], str],
        node: Callable[[Sequence[Selection]], str],
        *,
        total: Callable[[], str] | None = None,
        join: str = "",
    ) -> str:
        """A page over `source` (a subquery numbering its rows n and flagging `more` after them), as a connection.

        `cursor_sql` and `total` are built only when selected (a parameter no expression uses has no type).
        `join` is joined to the page's rows after the limit, so only the rows shown are looked up.
        """
        first = f"{self.where().param(sel.args['first'])}::int"

        def last_cursor() -> str:
            return f"CASE WHEN {alias}.n = {first} AND {alias}.more THEN {cursor_sql()} END"

        def edge(part: Selection) -> str:
            if part.name == "cursor":
                return last_cursor()
            if part.name == "node":
                return node(part.children)
            raise NotCompiledError(f"Edge.{part.name}")

        def info(part: Selection) -> str:
            if part.name == "has_next_page":
                return f"count(*) > {first}"
            if part.name == "end_cursor":
                return f"max({last_cursor()})"
            raise NotCompiledError(f"PageInfo.{part.name}")

        def value(part: Selection) -> str:
            if part.name == "edges":
                edges = self.object(part.children, edge)
                return f"coalesce(json_agg({edges} ORDER BY {alias}.n) FILTER (WHERE {alias}.n <= {first}), '[]'::json)"
            if part.name == "page_info":
                return self.object(part.children, info)
            if part.name == "total_count" and total is not None:
                return total()
            raise NotCompiledError(f"connection.{part.name}")

        return f"(SELECT {self.object(sel.children, value)} FROM ({source} LIMIT {first} + 1) AS {alias} {join})"

    def numbered(self, table: str, alias: str, where: Where, sort_sql: str) -> str:
        """Rows of a table in a keyset order, numbered (n) and flagged when a row follows (more)."""
        return (
            f"SELECT {alias}.*, row_number() OVER w AS n, lead(true, 1, false) OVER w AS more FROM {table} {alias}"
            f" WHERE {where.sql()} WINDOW w AS (ORDER BY {sort_sql}) ORDER BY {sort_sql}"
        )

    def sort_cursor(self, kind: str, sort: Sort) -> str:
        first = {
            "date": f"to_char(coalesce({sort.value}, date '0001-01-01'), 'YYYY-MM-DD')",
            "timestamp": iso(sort.value),
            "text": sort.value,
        }[sort.kind]
        return cursor.sql_encode(f"{self.where().param(kind)}::text", [first, sort.keys[1]])

    def papers(self, sel: Selection) -> str:
        """`papers(filter, sort, first, after)`: a connection of papers."""
        sort_name = sel.args["sort"]
        sort, kind = PAPER_SORTS[sort_name], f"papers:{sort_name}"
        where = self.where()
        paper_filters(where, sel.args["filter"])
        if sel.args.get("after"):
            add_keyset(where, sort, sel.args["after"], kind)
        source = self.numbered("papers", "p", where, order_by(sort))

        def total() -> str:
            counted = self.where()
            paper_filters(counted, sel.args["filter"])
            return f"(SELECT count(*) FROM papers p WHERE {counted.sql()})"

        return self.connection(sel, "p", source, lambda: self.sort_cursor(kind, sort), self.paper, total=total)

    def listings(self, sel: Selection) -> str:
        """`listings(first, after)`: a connection of listings."""
        where = self.where()
        if sel.args.get("after"):
            add_keyset(where, LISTING_SORT, sel.args["after"], "listings")
        source = self.numbered("listings", "l", where, order_by(LISTING_SORT))
        return self.connection(sel, "l", source, lambda: self.sort_cursor("listings", LISTING_SORT), self.listing)

    def entries(self, sel: Selection, listing_id: str | None) -> str:
        """`Listing.entries(first, after)`: a connection of the entries of the listing over alias l."""
        if sel.args.get("after") and listing_id is None:
            raise NotCompiledError("a cursor on the entries of several listings")
        where = self.where()
        where.conditions.append("e.listing_key = l.listing_key")
        if listing_id is not None:
            where.add("e.rank > {}", after_rank(listing_id, sel.args.get("after")))
        source = self.numbered("listing_entries", "e", where, "e.rank")
        kind = f"{_literal(entries_kind(''))} || l.public_id"

        def node(sels: Sequence[Selection]) -> str:
            return self.once("entry", sels, lambda: self.object(sels, self.entry))

        return self.connection(
            sel,
            "e",
            source,
            lambda: cursor.sql_encode(kind, ["e.rank"]),
            lambda sels: self.once("entry", sels, lambda: self.object(sels, self.entry)),
            join="JOIN papers p ON p.paper_key = e.paper_key",
        )

    def stat(self, sel: Selection) -> str:
        if sel.name not in STATS:
            raise NotCompiledError(f"Stats.{sel.name}")
        return STATS[sel.name]

    # --- roots -----------------------------------------------------------------------------------------

    def root(self, sel: Selection) -> str:
        if sel.typename is not None:
            return f"to_json({_literal(sel.typename)}::text)"
        if sel.name == "paper":
            where = self.where()
            paper_by_public_or_arxiv(where, [sel.args["id"]])
            first = f"p.public_id = {where.param(sel.args['id'])}::text DESC"
            return f"(SELECT {self.paper(sel.children)} FROM papers p WHERE {where.sql()} ORDER BY {first} LIMIT 1)"
        if sel.name == "listing":
            where = self.where()
            where.add("l.public_id = {}", sel.args["id"])
            return f"(SELECT {self.listing(sel.children, sel.args['id'])} FROM listings l WHERE {where.sql()})"
        if sel.name == "papers":
            return self.papers(sel)
        if sel.name == "listings":
            return self.listings(sel)
        if sel.name == "stats":
            return self.object(sel.children, self.stat)
        raise NotCompiledError(f"Query.{sel.name}")


def statement(roots: Sequence[Selection]) -> tuple[str, list[Any]]:
    """The statement answering root fields, one json column each (InvalidCursorError for a bad cursor)."""
    built = _Statement()
    columns = [f"{built.root(sel)} AS c{i}" for i, sel in enumerate(roots)]
    return "SELECT " + ", ".join(columns), built.params
