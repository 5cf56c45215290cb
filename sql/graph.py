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

from schema import limits
from schema.paging import PageRequest
from schema.selection import Selection
from sql import cursor
from sql.fragments import (
    LISTING_FIELDS,
    LISTING_SORT,
    PAPER_FIELDS,
    TIMESTAMPS,
    Sort,
    Where,
    add_keyset,
    capped_count,
    order_by,
    page_bounds,
    paper_by_public_or_arxiv,
    paper_filters,
    paper_sort,
    rows_beyond,
)
from sql.queries import LISTINGS_OF_PAPER_ORDER, STATS, entries_kind, rank_bounds

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
        beyond: Callable[[], str],
        total: Callable[[], str],
        join: str = "",
    ) -> str:
        """A page over `source` (a subquery numbering its rows n in the order read and flagging `more` after
        them), as a Relay connection listed in the collection's order.

        `cursor_sql`, `beyond` (whether rows lie past the cursor the page starts from) and `total` (a count that
        stops at MAX_COUNTED + 1) are built only when selected: a parameter no expression uses has no type. `join` is
        joined to the page's rows after the limit, so only the rows shown are looked up.
        """
        page: PageRequest = sel.args["page"]
        size = f"{self.where().param(page.size)}::int"
        shown = f"{alias}.n <= {size}"
        # The page's last row in the order read: row `size`, or the last row when none follows.
        last_read = f"{shown} AND ({alias}.n = {size} OR NOT {alias}.more)"
        start, end = (last_read, f"{alias}.n = 1") if page.backward else (f"{alias}.n = 1", last_read)
        more = f"count(*) > {size}"
        flags = {"has_next_page": (beyond, lambda: more), "has_previous_page": (lambda: more, beyond)}

        def edge(part: Selection) -> str:
            if part.name == "cursor":
                return cursor_sql()
            if part.name == "node":
                return node(part.children)
            raise NotCompiledError(f"Edge.{part.name}")

        def info(part: Selection) -> str:
            if part.name in flags:
                return flags[part.name][0 if page.backward else 1]()
            if part.name in ("start_cursor", "end_cursor"):
                return f"max(CASE WHEN {start if part.name == 'start_cursor' else end} THEN {cursor_sql()} END)"
            raise NotCompiledError(f"PageInfo.{part.name}")

        def value(part: Selection) -> str:
            if part.name == "edges":
                edges = self.object(part.children, edge)
                order = f"{alias}.n DESC" if page.backward else f"{alias}.n"
                return f"coalesce(json_agg({edges} ORDER BY {order}) FILTER (WHERE {shown}), '[]'::json)"
            if part.name == "page_info":
                return self.object(part.children, info)
            if part.name == "total_count":  # schema.paging.Total.of, in SQL
                return f"least({total()}, {limits.MAX_COUNTED})"
            if part.name == "total_count_exact":
                return f"({total()} <= {limits.MAX_COUNTED})"
            raise NotCompiledError(f"connection.{part.name}")

        # One row whatever is selected: totalCount alone has no aggregate to fold the page's rows into one.
        rows = f"({source} LIMIT {size} + 1) AS {alias} {join}"
        return f"(SELECT {self.object(sel.children, value)} FROM {rows} GROUP BY ())"

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

    def keyset_beyond(
        self, table: str, filters: Callable[[Where], None], sort: Sort, kind: str, page: PageRequest
    ) -> str:
        """Whether rows of `table` (under the filters) lie past the cursor the page starts from."""
        far = page.far_side()
        if far is None:
            return "false"
        where = self.where()
        filters(where)
        add_keyset(where, sort, far[0], kind, far[1])
        return rows_beyond(table, where, sort, far[1])

    def papers(self, sel: Selection) -> str:
        """`papers(filter, sort, first, after, last, before)`: a connection of papers."""
        page: PageRequest = sel.args["page"]
        sort, kind = paper_sort(sel.args["sort"]), f"papers:{sel.args['sort']}"

        def filters(where: Where) -> None:
            paper_filters(where, sel.args["filter"])

        where = self.where()
        filters(where)
        page_bounds(where, sort, page, kind)
        source = self.numbered("papers", "p", where, order_by(sort, reverse=page.backward))

        def total() -> str:
            counted = self.where()
            filters(counted)
            return capped_count(f"FROM papers p WHERE {counted.sql()}")

        return self.connection(
            sel,
            "p",
            source,
            lambda: self.sort_cursor(kind, sort),
            self.paper,
            beyond=lambda: self.keyset_beyond("papers p", filters, sort, kind, page),
            total=total,
        )

    def listings(self, sel: Selection) -> str:
        """`listings(first, after, last, before)`: a connection of listings."""
        page: PageRequest = sel.args["page"]
        where = self.where()
        page_bounds(where, LISTING_SORT, page, "listings")
        source = self.numbered("listings", "l", where, order_by(LISTING_SORT, reverse=page.backward))
        return self.connection(
            sel,
            "l",
            source,
            lambda: self.sort_cursor("listings", LISTING_SORT),
            self.listing,
            beyond=lambda: self.keyset_beyond("listings l", lambda _: None, LISTING_SORT, "listings", page),
            total=lambda: capped_count("FROM listings"),
        )

    def entries(self, sel: Selection, listing_id: str | None) -> str:
        """`Listing.entries(first, after, last, before)`: a connection of the entries of the listing over alias l."""
        page: PageRequest = sel.args["page"]
        where = self.where()
        where.conditions.append("e.listing_key = l.listing_key")
        bounds = None
        if page.after or page.before:
            if listing_id is None:
                raise NotCompiledError("a cursor on the entries of several listings")
            bounds = rank_bounds(listing_id, page)
            if page.after:
                where.add("e.rank > {}", bounds.after)
            if page.before:
                where.add("e.rank < {}", bounds.before)
        source = self.numbered("listing_entries", "e", where, "e.rank DESC" if page.backward else "e.rank")
        kind = f"{_literal(entries_kind(''))} || l.public_id"

        def beyond() -> str:
            if bounds is None or page.far_side() is None:
                return "false"
            far = self.where()
            far.add("x.rank BETWEEN {} AND {}", bounds.lo, bounds.hi)
            return f"EXISTS (SELECT 1 FROM listing_entries x WHERE x.listing_key = l.listing_key AND {far.sql()})"

        return self.connection(
            sel,
            "e",
            source,
            lambda: cursor.sql_encode(kind, ["e.rank"]),
            lambda sels: self.once("entry", sels, lambda: self.object(sels, self.entry)),
            beyond=beyond,
            total=lambda: "l.entry_count",
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
