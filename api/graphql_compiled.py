"""Compiled GraphQL reads: a query over papers and listings answered without the field-by-field executor.

Strawberry (on graphql-core) executes a document one field at a time: a resolver call, an awaitable,
extension hooks and a completion step per field, which is most of a small query's cost. A document
made only of the read fields in READS (and plain fields) is compiled once: parsed with the token
limit, validated with the schema's rules and guards, and turned into a selection tree. A request for
it then costs one batched read per level, run on one pooled connection, and a dictionary build; the
reads are the ones the resolvers' DataLoaders call (api/graphql.py), so both paths give the same data.

Anything else is not compiled and goes to Strawberry: mutations, search and similarity fields,
introspection, directives, fragments on other types, and documents that do not validate. A compiled
run that fails for any reason (a bad cursor, an out-of-range `first`, a lost connection) also goes to
Strawberry, which reports the error: only successful answers are ever produced here.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Awaitable, Callable, NamedTuple, Sequence

import msgspec
import strawberry
from graphql import (
    FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLEnumType, GraphQLError, GraphQLList,
    GraphQLNonNull, GraphQLObjectType, GraphQLScalarType, InlineFragmentNode, OperationDefinitionNode,
    OperationType, SelectionSetNode, get_named_type, parse, specified_rules, validate,
)  # fmt: skip
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.types.arguments import convert_arguments

from api import graphql as gql
from schema.api import Paper
from sql import queries
from sql.db import pooled

log = logging.getLogger("papers.graphql")

Read = Callable[[Any, list[Any], dict[str, Any]], Awaitable[list[Any]]]


async def _root(value: Awaitable[Any]) -> list[Any]:
    return [await value]


async def _paper(conn: Any, _: list[Any], args: dict[str, Any]) -> list[Any]:
    """The paper with its listings in one statement; they are kept for a `listings` selection under it."""
    detail = await queries.paper_detail(conn, args["id"])
    if detail is None:
        return [None]
    paper = gql._convert(Paper(**{name: getattr(detail, name) for name in Paper.__struct_fields__}))
    paper.prefetched_listings = gql._convert(detail.listings)
    return [paper]


async def _paper_listings(conn: Any, papers: list[Any], _: dict[str, Any]) -> list[Any]:
    if all(hasattr(p, "prefetched_listings") for p in papers):
        return [p.prefetched_listings for p in papers]
    return await gql.read_paper_listings(conn, [p.id for p in papers])


async def _entries(conn: Any, listings: list[Any], args: dict[str, Any]) -> list[Any]:
    limit = gql._page_size(args["first"])
    return await gql.read_entries(conn, [(listing.id, args["after"], limit) for listing in listings])


async def _total_counts(conn: Any, pages: list[Any], args: dict[str, Any]) -> list[int]:
    return [await gql.read_total_count(conn, page.filter) for page in pages]


# The fields with resolvers that compiled queries answer: each takes the connection, the parent objects
# of one level (the root value for Query fields) and the field's arguments, and answers per parent.
READS: dict[str, Read] = {
    "Query.paper": _paper,
    "Query.papers": lambda conn, _, args: _root(gql.read_papers_page(conn, **args)),
    "Query.listing": lambda conn, _, args: gql.read_listings(conn, [args["id"]]),
    "Query.listings": lambda conn, _, args: _root(gql.read_listings_page(conn, **args)),
    "Query.stats": lambda conn, _, args: _root(gql.read_stats(conn)),
    "Paper.listings": _paper_listings,
    "ListingRef.listing": lambda conn, refs, _: gql.read_listings(conn, [r.id for r in refs]),
    "Listing.entries": _entries,
    "PaperConnection.totalCount": _total_counts,
}


class NotCompiled(Exception):
    """The document uses something compiled queries do not do; Strawberry answers it."""


class _Field(NamedTuple):
    key: str  # the response key: alias or name
    node: FieldNode
    definition: Any  # GraphQLField, or None for __typename
    attribute: str  # the Python attribute a plain field reads
    read: Read | None
    arguments: Any  # the Strawberry arguments, to convert coerced values to what the resolver takes
    type: Any  # the GraphQL output type
    children: tuple["_Field", ...]
    typename: str | None = None
    leaf: Any = None  # for a plain scalar or enum field: its serializer (read inline, no completion step)
    nullable: bool = True


class _Plan(NamedTuple):
    operation: OperationDefinitionNode
    fields: tuple[_Field, ...]


class _Request(msgspec.Struct):
    query: str
    variables: dict[str, Any] | None = None
    operationName: str | None = None  # noqa: N815 - the GraphQL-over-HTTP name


class CompiledReads:
    """Compiles read documents once (LRU of `size`) and answers them; None means "ask Strawberry"."""

    def __init__(self, schema: strawberry.Schema, rules: Sequence[Any], max_tokens: int, size: int = 512) -> None:
        self.schema = schema
        self.rules = [*specified_rules, *rules]
        self.max_tokens = max_tokens
        self.size = size
        self._plans: collections.OrderedDict[tuple[str, str | None], _Plan | None] = collections.OrderedDict()
        self._decoder = msgspec.json.Decoder(_Request)
        self._encoder = msgspec.json.Encoder()

    def plan(self, query: str, operation_name: str | None) -> _Plan | None:
        """The compiled plan of a document, or None when Strawberry must run it."""
        key = (query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        try:
            plan = self._compile(query, operation_name)
        except (NotCompiled, GraphQLError):
            plan = None
        self._plans[key] = plan
        if len(self._plans) > self.size:
            self._plans.popitem(last=False)
        return plan

    async def answer(self, pool: Any, body: bytes) -> bytes | None:
        """The response body for a POSTed read this module compiles, or None for Strawberry to answer."""
        try:
            request = self._decoder.decode(body)
        except msgspec.DecodeError:
            return None
        plan = self.plan(request.query, request.operationName)
        if plan is None:
            return None
        try:
            data = await self._run(pool, plan, request.variables or {})
        except Exception as exc:  # noqa: BLE001 - Strawberry runs it again and reports the error
            log.debug("compiled query handed to Strawberry: %r", exc)
            return None
        return self._encoder.encode({"data": data})

    def _compile(self, query: str, operation_name: str | None) -> _Plan:
        document = parse(query, max_tokens=self.max_tokens)
        graphql_schema = self.schema._schema
        if validate(graphql_schema, document, self.rules):
            raise NotCompiled("invalid")
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
        if len(chosen) != 1 or chosen[0].operation != OperationType.QUERY or chosen[0].directives:
            raise NotCompiled("not exactly one query operation")
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        fields = _compile_selection(graphql_schema.query_type, chosen[0].selection_set, fragments)
        return _Plan(chosen[0], fields)

    async def _run(self, pool: Any, plan: _Plan, inputs: dict[str, Any]) -> dict[str, Any]:
        variables = get_variable_values(self.schema._schema, plan.operation.variable_definitions or (), inputs)
        if isinstance(variables, list):
            raise NotCompiled("variables do not coerce")
        run = _Run(self.schema, variables)
        async with pooled(pool) as conn:
            run.conn = conn
            [data] = await run.objects([None], plan.fields)
        return data


def _compile_selection(parent: GraphQLObjectType, selection_set: SelectionSetNode, fragments: dict) -> tuple[_Field, ...]:
    fields: list[_Field] = []
    for node in _field_nodes(parent, selection_set, fragments):
        key = (node.alias or node.name).value
        if any(f.key == key for f in fields):
            raise NotCompiled("a response key selected twice")  # merging is the executor's job
        name = node.name.value
        if name == "__typename":
            fields.append(_Field(key, node, None, "", None, None, None, (), parent.name))
            continue
        if name not in parent.fields:  # introspection (__schema, __type)
            raise NotCompiled(f"{parent.name}.{name}")
        definition = parent.fields[name]
        field = definition.extensions["strawberry-definition"]
        read = READS.get(f"{parent.name}.{name}")
        if read is None and field.base_resolver is not None:
            raise NotCompiled(f"{parent.name}.{name} has a resolver compiled queries do not run")
        named = get_named_type(definition.type)
        children = _compile_selection(named, node.selection_set, fragments) if isinstance(named, GraphQLObjectType) else ()
        bare = definition.type.of_type if isinstance(definition.type, GraphQLNonNull) else definition.type
        leaf = bare.serialize if read is None and isinstance(bare, (GraphQLScalarType, GraphQLEnumType)) else None
        fields.append(_Field(key, node, definition, field.python_name, read, field.arguments, definition.type, children,
                             leaf=leaf, nullable=bare is definition.type))  # fmt: skip
    return tuple(fields)


def _field_nodes(parent: GraphQLObjectType, selection_set: SelectionSetNode, fragments: dict) -> list[FieldNode]:
    """The field nodes of a selection set with fragments spread; directives and other types are not compiled."""
    nodes: list[FieldNode] = []
    for selection in selection_set.selections:
        if selection.directives:
            raise NotCompiled("directives")
        if isinstance(selection, FieldNode):
            nodes.append(selection)
            continue
        fragment = fragments[selection.name.value] if isinstance(selection, FragmentSpreadNode) else selection
        if isinstance(selection, FragmentSpreadNode) and fragment.directives:
            raise NotCompiled("directives")
        condition = fragment.type_condition
        if condition is not None and condition.name.value != parent.name:
            raise NotCompiled("a fragment on another type")
        assert isinstance(fragment, (FragmentDefinitionNode, InlineFragmentNode))
        nodes.extend(_field_nodes(parent, fragment.selection_set, fragments))
    return nodes


class _Run:
    """One execution of a plan: level by level, each read once per level for all parent objects."""

    def __init__(self, schema: strawberry.Schema, variables: Any) -> None:
        self.schema = schema
        self.variables = variables
        self.conn: Any = None

    def _arguments(self, field: _Field) -> dict[str, Any]:
        coerced = get_argument_values(field.definition, field.node, self.variables)
        converter = self.schema.schema_converter
        return convert_arguments(coerced, field.arguments, scalar_registry=converter.scalar_registry,
                                 config=self.schema.config)  # fmt: skip

    async def objects(self, parents: list[Any], fields: tuple[_Field, ...]) -> list[dict[str, Any]]:
        """Each parent (not None) as the dictionary of its selected fields."""
        out: list[dict[str, Any]] = [{} for _ in parents]
        for field in fields:
            if field.typename is not None:
                for item in out:
                    item[field.key] = field.typename
                continue
            if field.leaf is not None:  # most fields: one attribute, serialized by its scalar
                key, attribute, serialize = field.key, field.attribute, field.leaf
                for item, parent in zip(out, parents):
                    value = getattr(parent, attribute)
                    if value is None and not field.nullable:
                        raise NotCompiled("null in a non-null field")  # Strawberry reports the error
                    item[key] = None if value is None else serialize(value)
                continue
            if field.read is not None:
                values = await field.read(self.conn, parents, self._arguments(field))
            else:
                values = [getattr(parent, field.attribute) for parent in parents]
            for item, value in zip(out, await self.complete(field.type, values, field)):
                item[field.key] = value
        return out

    async def complete(self, kind: Any, values: list[Any], field: _Field) -> list[Any]:
        """Values of one GraphQL type as JSON-ready data, in order."""
        if isinstance(kind, GraphQLNonNull):
            done = await self.complete(kind.of_type, values, field)
            if any(v is None for v in done):
                raise NotCompiled("null in a non-null field")  # Strawberry reports the error
            return done
        if isinstance(kind, GraphQLList):
            flat = [item for value in values if value is not None for item in value]
            items = iter(await self.complete(kind.of_type, flat, field))
            return [None if value is None else [next(items) for _ in value] for value in values]
        if isinstance(kind, (GraphQLScalarType, GraphQLEnumType)):
            return [None if value is None else kind.serialize(value) for value in values]
        present = [value for value in values if value is not None]
        done = iter(await self.objects(present, field.children))
        return [None if value is None else next(done) for value in values]
