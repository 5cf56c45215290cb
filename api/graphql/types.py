"""GraphQL types mirrored from the msgspec contracts of schema/api.py: one definition, two renderings.

Field descriptions come from the contracts, so the SDL and the OpenAPI document say the same thing.
Resolver fields (a paper's listings and neighbours, a listing's entries, totals) read through the
request's DataLoaders and the services (api/graphql/context.py).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Generic, TypeVar, get_args, get_origin

import msgspec
import strawberry

import schema.api as contracts
from api.graphql.context import Context
from api.services import catalog, search
from schema import limits
from schema.ingest import ListingFormat
from schema.paging import Page, Total
from sql.queries import EntriesRequest

T = TypeVar("T")

_TYPES: dict[type, Any] = {}  # contract -> Strawberry type mirroring it


def convert(value: Any) -> Any:
    """A contract value as GraphQL: nested contracts become their Strawberry types."""
    if isinstance(value, msgspec.Struct) and type(value) in _TYPES:
        return _TYPES[type(value)].from_contract(value)
    if isinstance(value, list):
        return [convert(v) for v in value]
    return value


def _unwrap(kind: Any) -> tuple[Any, str | None]:
    """Split `Annotated[T, msgspec.Meta(description=...)]` into T and the description."""
    if get_origin(kind) is Annotated:
        base, *extras = get_args(kind)
        meta = next((m for m in extras if isinstance(m, msgspec.Meta)), None)
        return base, getattr(meta, "description", None)
    return kind, None


def mirrors(contract: type[msgspec.Struct], *, kind: str = "type") -> Callable[[type[T]], type[T]]:
    """Make a Strawberry type, interface or input whose fields are the contract's fields, then the class's own.

    The class may re-annotate a contract field (to use the Strawberry type of a nested contract) and
    add resolver fields. Types get `from_contract(obj)`, inputs get `to_contract()`.
    """

    def wrap(cls: type[T]) -> type[T]:
        own = inspect.get_annotations(cls)  # the class's own annotations, as a new dict
        annotations: dict[str, Any] = {}
        for field in msgspec.structs.fields(contract):
            base, description = _unwrap(field.type)
            annotations[field.name] = own.pop(field.name, base)
            if field.default is not msgspec.NODEFAULT:
                setattr(cls, field.name, strawberry.field(default=field.default, description=description))
            elif field.default_factory is not msgspec.NODEFAULT:
                setattr(
                    cls, field.name, strawberry.field(default_factory=field.default_factory, description=description)
                )
            elif description and field.name not in cls.__dict__:
                setattr(cls, field.name, strawberry.field(description=description))
        cls.__annotations__ = {**annotations, **own}
        names = tuple(annotations)

        def to_contract(self: Any) -> msgspec.Struct:
            return contract(**{n: getattr(self, n) for n in names})

        def from_contract(type_: Any, obj: msgspec.Struct) -> Any:
            return type_(**{n: convert(getattr(obj, n)) for n in names})

        if kind == "input":
            # mirrors() builds the class: mypy knows only the decorated class, without these methods.
            cls.to_contract = to_contract  # type: ignore[attr-defined]
            return strawberry.input(cls, description=contract.__doc__)
        if kind == "interface":
            return strawberry.interface(cls, description=cls.__doc__)
        cls.from_contract = classmethod(from_contract)  # type: ignore[attr-defined]  # as to_contract above
        _TYPES[contract] = strawberry.type(cls, description=contract.__doc__)
        return _TYPES[contract]

    return wrap


def _enum(name: str, values: Any, description: str) -> Any:
    """A GraphQL enum whose values are the contract Literal's (one definition, so they cannot drift)."""
    members = {v.upper(): v for v in get_args(values)}
    # mypy types the functional Enum(name, members) call as a member, not the enum class it returns.
    return strawberry.enum(enum.Enum(name, members), description=description)  # type: ignore[call-overload]


PaperSort = _enum(
    "PaperSort",
    contracts.PaperSort,
    "Orders of the paper collection: most recently listed, by title, or by first sighting.",
)
SearchMode = _enum(
    "SearchMode",
    contracts.SearchMode,
    'How search ranks: keywords by BM25 (any word may match, "quoted phrases" must, -words must not),'
    " embedding similarity, or both fused (min-max scaled scores, BM25 weighted 0.7).",
)
# The one enum of listing formats (schema/ingest.py), as REST names it too. Its members are named by their
# values (`page`, `hf_daily`), so `kind` answers the strings it answered as a String, and a variable keeps
# its JSON value; a literal argument is written unquoted (`format: page`).
strawberry.enum(  # registers the enum in place: the class stays the one Python type of the concept
    ListingFormat,
    description="Input formats of a listing: a scraped page, Hugging Face daily papers, JSON Lines, JSON, Atom,"
    " RSS, HTML.",
)
FacetField = _enum(
    "FacetField",
    contracts.FacetField,
    "Fields papers can be counted by: the listings they appeared in, the month or year of their first listing,"
    " whether they have an arXiv id.",
)


@mirrors(contracts.PaperFilter, kind="input")
class PaperFilterInput:
    pass


def filter_contract(value: Any) -> contracts.PaperFilter:
    """The contract of an optional filter input."""
    return value.to_contract() if value is not None else contracts.PaperFilter()


Info = strawberry.Info[Context, None]


@mirrors(contracts.Listing)
class Listing:
    id: str  # the contract's field, declared for the resolver below
    entry_count: int  # the contract's field: the entries' total

    @strawberry.field(description="The listing's entries in rank order.")
    async def entries(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ListingEntry]:
        page = catalog.page_request(first, after, last, before)
        total = Total.of(self.entry_count)  # the rule every total follows, though this one is stored

        async def count() -> Total:
            return total

        return Connection.of(await info.context.entries.load(EntriesRequest(self.id, page)), count)


@mirrors(contracts.ListingRef)
class ListingRef:
    id: str  # the contract's field, declared for the resolver below

    @strawberry.field(description="The listing itself.")
    async def listing(self, info: Info) -> Listing:
        return convert(await info.context.listings.load(self.id))


@mirrors(contracts.Paper, kind="interface")
class PaperFields:
    """What every paper node carries: its fields, the listings it appeared in and its nearest neighbours."""

    id: str  # the contract's field, declared for the resolvers below

    @strawberry.field(description="The listings this paper appeared in, newest first.")
    async def listings(self, info: Info) -> list[ListingRef]:
        return convert(await info.context.paper_listings.load(self.id))

    @strawberry.field(
        description="The papers nearest to this one by embedding (never itself), best first, each with its cosine"
        " similarity."
    )
    async def similar(self, info: Info, first: int = 10) -> list[ScoredPaper]:
        context = info.context
        found = await context.run(search.similar_papers, context.queries, self.id, limit=first, budget=context.budget)
        return convert(found)


@mirrors(contracts.Paper)
class Paper(PaperFields):
    pass


@mirrors(contracts.ScoredPaper)
class ScoredPaper(PaperFields):
    pass


@mirrors(contracts.ListingEntry)
class ListingEntry:
    paper: Paper


@strawberry.type(description="Where a page starts and ends, and whether rows lie beyond either end.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Rows follow this page (read backward: whether rows exist at or after `before`)."
    )
    has_previous_page: bool = strawberry.field(
        description="Rows precede this page (read forward: whether rows exist at or before `after`)."
    )
    start_cursor: str | None = strawberry.field(
        description="The first edge's cursor (pass as `before` with `last` for the page before); null without edges."
    )
    end_cursor: str | None = strawberry.field(
        description="The last edge's cursor (pass as `after` with `first` for the page after); null without edges."
    )


@strawberry.type
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="This edge's place: pass as `after` or `before` to page from it.")
    node: T


Count = Callable[[], Awaitable[Total]]


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Count]
    counted: strawberry.Private[asyncio.Future[Total] | None] = None

    @strawberry.field(
        description="How many rows all pages of this connection hold together, whichever page this is: exact up to"
        f" {limits.MAX_COUNTED:,}, else that many (totalCountExact is then false). Counted only when asked for."
    )
    async def total_count(self) -> int:
        return (await self._total()).value

    @strawberry.field(
        description=f"Whether totalCount is exact: false when more than {limits.MAX_COUNTED:,} rows match."
    )
    async def total_count_exact(self) -> bool:
        return (await self._total()).exact

    def _total(self) -> asyncio.Future[Total]:
        # Both fields resolve concurrently: they share one count.
        if self.counted is None:
            self.counted = asyncio.ensure_future(self.count())
        return self.counted

    @classmethod
    def of(cls, page: Page[Any], count: Count) -> Any:
        """A page of contracts as a connection; `count` counts the collection when totalCount is asked for."""
        edges = [Edge(node=convert(item), cursor=at) for item, at in zip(page.items, page.cursors, strict=True)]
        start, end = (page.cursors[0], page.cursors[-1]) if page.cursors else (None, None)
        info = PageInfo(
            has_next_page=page.has_next, has_previous_page=page.has_previous, start_cursor=start, end_cursor=end
        )
        return cls(edges=edges, page_info=info, count=count)


@strawberry.type(description="A page of papers.")
class PaperConnection(Connection[Paper]):
    pass


@strawberry.type(description="A page of search results, best first.")
class ScoredPaperConnection(Connection[ScoredPaper]):
    pass


@mirrors(contracts.DatabaseStatus)
class DatabaseStatus:
    lag_bytes: float | None  # GraphQL's Int is 32 bits: a replica may be gigabytes behind


@mirrors(contracts.Stats)
class Stats:
    databases: list[DatabaseStatus]


@mirrors(contracts.FacetCount)
class FacetCount:
    pass


@mirrors(contracts.Suggestion)
class Suggestion:
    pass


@strawberry.type(description="A queued ingest job.")
class SubmitResult:
    job_id: str
