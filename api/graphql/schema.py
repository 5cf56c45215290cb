"""The GraphQL schema: queries over papers, listings, search and similarity, the submission mutation, guards.

Every field calls the service layer; compilable read documents are answered by one SQL statement
(api/graphql/compiled.py), the rest by Strawberry's executor through the resolvers in types.py.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

import schema.api as contracts
from api.graphql.compiled import CompiledReads
from api.graphql.documents import DocumentCache, DocumentStore
from api.graphql.errors import DomainErrors, log_errors
from api.graphql.types import (
    Connection,
    Info,
    Listing,
    Paper,
    PaperConnection,
    PaperFilterInput,
    PaperSort,
    ScoredPaper,
    ScoredPaperConnection,
    SearchMode,
    Stats,
    SubmitResult,
    convert,
    filter_contract,
)
from api.services import catalog, search, submissions
from schema import limits


@strawberry.type
class Query:
    @strawberry.field(description="A paper by public id or arXiv id; null when unknown.")
    async def paper(self, info: Info, id: str) -> Paper | None:
        return convert(await info.context.papers.load(id))

    @strawberry.field(description="Papers matching the filter, one page at a time.")
    async def papers(
        self,
        info: Info,
        filter: PaperFilterInput | None = None,
        sort: PaperSort = PaperSort.RECENT,
        first: int = limits.DEFAULT_PAGE,
        after: str | None = None,
    ) -> PaperConnection:
        flt = filter_contract(filter)
        items, next_cursor = await info.context.run(catalog.papers_page, flt, sort=sort.value, after=after, limit=first)
        return PaperConnection.of(items, next_cursor, filter=flt)

    @strawberry.field(description="A listing by public id; null when unknown.")
    async def listing(self, info: Info, id: str) -> Listing | None:
        return convert(await info.context.listings.load(id))

    @strawberry.field(description="Listings, newest first, one page at a time.")
    async def listings(
        self, info: Info, first: int = limits.DEFAULT_PAGE, after: str | None = None
    ) -> Connection[Listing]:
        items, next_cursor = await info.context.run(catalog.listings_page, after=after, limit=first)
        return Connection.of(items, next_cursor)

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
        first: int = limits.DEFAULT_PAGE,
        after: str | None = None,
    ) -> ScoredPaperConnection:
        context = info.context
        items, next_cursor = await context.run(
            search.search_papers,
            context.queries,
            q,
            mode=mode.value,
            flt=filter_contract(filter),
            after=after,
            limit=first,
        )
        return ScoredPaperConnection.of(items, next_cursor)

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
        self, info: Info, text: str, format: str | None = None, year: int | None = None, source: str = "graphql"
    ) -> SubmitResult:
        if info.context.write_refusal is not None:
            raise info.context.write_refusal
        submission = submissions.Submission(text.encode(), source, format, year)
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


# The guard rules are built once: QueryDepthLimiter and MaxAliasesLimiter would make new rule classes
# per request, and a validation cache keyed on the rules would never hit.
GUARD_RULES = (depth_rule(limits.MAX_DEPTH, None), alias_rule(limits.MAX_ALIASES))


def make_schema(*, debug: bool = False, compiled: bool = True) -> strawberry.Schema:
    """The schema with its guards, its domain-error mapping and (unless off) compiled reads."""
    extensions: list[type[SchemaExtension] | Any] = [
        lambda: MaxTokensLimiter(max_token_count=limits.MAX_TOKENS),
        lambda: AddValidationRules(list(GUARD_RULES)),
        DocumentCache,
        lambda: DomainErrors(debug=debug),
    ]
    if compiled:
        extensions.append(CompiledReads)
    return PapersSchema(query=Query, mutation=Mutation, extensions=extensions)


schema = make_schema()
