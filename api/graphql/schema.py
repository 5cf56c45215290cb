"""The GraphQL schema: queries over papers, listings, search and similarity, the submission mutation, guards.

Every field calls the service layer; compilable read documents are answered by one SQL statement
(api/graphql/compiled.py), the rest by Strawberry's executor through the resolvers in types.py.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError

import schema.api as contracts
from api.graphql.documents import DocumentStore
from api.graphql.errors import log_errors
from api.graphql.pipeline import Pipeline
from api.graphql.types import (
    Connection,
    FacetCount,
    FacetField,
    Info,
    Listing,
    ListingFormat,
    Paper,
    PaperConnection,
    PaperFilterInput,
    PaperSort,
    ScoredPaper,
    ScoredPaperConnection,
    SearchMode,
    Stats,
    SubmitResult,
    Suggestion,
    convert,
    filter_contract,
)
from api.services import browse, catalog, search, submissions
from schema import limits


@strawberry.type
class Query:
    @strawberry.field(description="A paper by public id or arXiv id; null when unknown.")
    async def paper(self, info: Info, id: str) -> Paper | None:
        return convert(await info.context.papers.load(id))

    @strawberry.field(
        description="Papers matching the filter, one page at a time (`first`/`after` or `last`/`before`)."
    )
    async def papers(
        self,
        info: Info,
        filter: PaperFilterInput | None = None,
        sort: PaperSort = PaperSort.RECENT,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> PaperConnection:
        flt = filter_contract(filter)
        page = catalog.page_request(first, after, last, before)
        context = info.context
        found = await context.run(catalog.papers_page, flt, page, sort=sort.value)
        return PaperConnection.of(found, lambda: context.run(catalog.count_papers, flt))

    @strawberry.field(
        description="How many papers matching the filter share each value of `by`, largest counts first"
        f" (at most {limits.MAX_FACET_GROUPS} groups)."
    )
    async def paper_facets(
        self, info: Info, by: FacetField, filter: PaperFilterInput | None = None
    ) -> list[FacetCount]:
        return convert(await info.context.run(browse.facets, filter_contract(filter), by.value))

    @strawberry.field(
        description=f"Up to {limits.MAX_SUGGESTIONS} titles completing `q`: those that start with it"
        " (case-insensitive), then those with a word close to it."
    )
    async def autocomplete(self, info: Info, q: str, first: int = limits.MAX_SUGGESTIONS) -> list[Suggestion]:
        return convert(await info.context.run(browse.autocomplete, q, first))

    @strawberry.field(description="A listing by public id; null when unknown.")
    async def listing(self, info: Info, id: str) -> Listing | None:
        return convert(await info.context.listings.load(id))

    @strawberry.field(description="Listings, newest first, one page at a time (`first`/`after` or `last`/`before`).")
    async def listings(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Listing]:
        context = info.context
        found = await context.run(catalog.listings_page, catalog.page_request(first, after, last, before))
        return Connection.of(found, lambda: context.run(catalog.count_listings))

    @strawberry.field(description="Collection totals.")
    async def stats(self, info: Info) -> Stats:
        return convert(await info.context.run(catalog.stats))

    @strawberry.field(
        description="Papers for a query (keywords, a sentence or an abstract), best first, one page at a time;"
        " keyword and hybrid hits carry highlighted snippets. Semantic and hybrid modes need the embedding model."
    )
    async def search(
        self,
        info: Info,
        q: str,
        mode: SearchMode = SearchMode.HYBRID,
        filter: PaperFilterInput | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> ScoredPaperConnection:
        context, flt = info.context, filter_contract(filter)
        found = await context.run(
            search.search_papers,
            context.queries,
            q,
            catalog.page_request(first, after, last, before),
            mode=mode.value,
            flt=flt,
            budget=context.budget,
        )
        return ScoredPaperConnection.of(found, lambda: context.run(search.count_search, q, mode=mode.value, flt=flt))

    @strawberry.field(
        description="Papers like the `positive` ids and the `text`, unlike the `negative` ids (public or arXiv ids),"
        " best first, leaving out the examples."
    )
    async def recommend(
        self,
        info: Info,
        positive: list[str] = [],  # noqa: B006 - the SDL default `[]` (public schema); never mutated
        negative: list[str] = [],  # noqa: B006 - the SDL default `[]` (public schema); never mutated
        text: str | None = None,
        first: int = 10,
        filter: PaperFilterInput | None = None,
    ) -> list[ScoredPaper]:
        request = contracts.RecommendRequest(
            positive=list(positive),
            negative=list(negative),
            text=text,
            limit=first,
            filters=filter_contract(filter),
        )
        context = info.context
        return convert(await context.run(search.recommend, context.queries, request, budget=context.budget))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Queue a listing (its text) for ingest; requires the API key. `format` is detected when omitted;"
        " `year` resolves date labels such as 'Mar 11'; `source` is the name the input is reported under."
    )
    async def submit_listing(
        self,
        info: Info,
        text: str,
        format: ListingFormat | None = None,
        year: int | None = None,
        source: str = "graphql",
    ) -> SubmitResult:
        info.context.check_write()
        submission = submissions.Submission(text.encode(), source, None if format is None else format.value, year)
        return SubmitResult(job_id=await info.context.run(submissions.submit, submission))


class PapersSchema(strawberry.Schema):
    """A Strawberry schema that keeps its checked documents, logs errors by kind and counts unexpected ones."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.documents = DocumentStore()
        self.unexpected_errors = 0

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log client errors briefly and unexpected ones with their traceback, counting those."""
        self.unexpected_errors += log_errors(errors)


def make_schema(*, debug: bool = False, compiled: bool = True) -> strawberry.Schema:
    """The schema with its guards, its domain-error mapping and (unless off) compiled reads."""
    return PapersSchema(
        query=Query, mutation=Mutation, extensions=[lambda: Pipeline(debug=debug, compiled_reads=compiled)]
    )


schema = make_schema()
