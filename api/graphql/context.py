"""The per-request GraphQL context: the databases, query embeddings, write permission, budget and DataLoaders.

Strawberry resolves sibling fields concurrently and an asyncpg connection runs one statement at a
time, so every service call borrows a pooled connection (on the database its kind of call goes to,
sql/routing.py) for that call only; nested lists go through DataLoaders, so a page of N papers with
their listings costs as many statements as a page of one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec
from strawberry.dataloader import DataLoader
from strawberry.litestar import BaseContext

from api.services import catalog
from api.services.search import Budget, QueryEmbeddings
from api.services.submissions import write_refusal
from schema.api import Listing, ListingEntry, ListingRef, Paper
from schema.errors import DomainError
from schema.paging import Page
from sql.queries import EntriesRequest
from sql.routing import Session

R = TypeVar("R")
EntriesPage = Page[ListingEntry]


class Context(BaseContext, kw_only=True, dict=True):
    """Per request: the databases, the query embeddings, why writes are refused (None: allowed), the budget, loaders."""

    db: Session
    queries: QueryEmbeddings
    api_key: str | None  # the server's
    authorization: str | None  # the request's Authorization header
    budget: Budget = msgspec.field(default_factory=Budget)

    def check_write(self) -> None:
        """Refuse a write unless the request carries the server's API key (decided only when something writes)."""
        refusal = write_refusal(self.api_key, self.authorization)
        if refusal is not None:
            raise refusal

    async def run(self, fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
        """One service call (it borrows a connection where its kind of call runs)."""
        return await fn(self.db, *args, **kwargs)

    # DataLoaders are made on first use: most requests need one or none of them.
    @functools.cached_property
    def papers(self) -> DataLoader[str, Paper | None]:
        """Papers by public or arXiv id."""
        return DataLoader(load_fn=functools.partial(catalog.papers_by_ids, self.db))

    @functools.cached_property
    def paper_listings(self) -> DataLoader[str, list[ListingRef]]:
        """The listings of papers, by paper public id."""
        return DataLoader(load_fn=functools.partial(catalog.listings_of_papers, self.db))

    @functools.cached_property
    def listings(self) -> DataLoader[str, Listing | None]:
        """Listings by public id."""
        return DataLoader(load_fn=functools.partial(catalog.listings_by_ids, self.db))

    @functools.cached_property
    def entries(self) -> DataLoader[EntriesRequest, EntriesPage]:
        """Pages of listings' entries; `load` raises the DomainError of a page that cannot be read."""
        return DataLoader(load_fn=self._entries)

    async def _entries(self, requests: Sequence[EntriesRequest]) -> list[EntriesPage | BaseException]:
        try:
            return list(await self.run(catalog.entries_pages, requests))
        except DomainError:
            # One bad cursor must not fail the other listings' pages: answer each on its own.
            return [await self._one_page(request) for request in requests]

    async def _one_page(self, request: EntriesRequest) -> EntriesPage | BaseException:
        try:
            [page] = await self.run(catalog.entries_pages, [request])
            return page
        except DomainError as exc:
            return exc
