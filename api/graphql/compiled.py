"""Compiled reads: a query over papers, listings and entries answered by one SQL statement.

It runs inside Strawberry's own pipeline, from the schema's extension (api/graphql/pipeline.py), after
the document was parsed and validated (token limit, depth, aliases, every rule) and the request's
context was built, under the same error mapping and logging. In `on_execute` it answers the operation when every field
it selects is one sql/graph.py builds (PostgreSQL then writes the response JSON itself, as
PostGraphile does); otherwise it leaves the operation to Strawberry's executor. That choice is made
before anything runs: an answer that fails is reported as an error, never run a second time. A POST
whose document is already known valid takes the same steps without Strawberry's per-request
machinery (`pipeline.answer_known`).

Strawberry internals this relies on, each pinned by tests/integration/test_graphql_compiled.py:
`ExecutionContext.result` set in `on_execute` replaces execution (the documented caching hook), and
`schema._schema` is the graphql-core schema Strawberry validated the document against.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
    is_abstract_type,
)
from graphql.execution.values import get_argument_values, get_variable_values

from api.graphql.context import Context
from api.graphql.documents import TextLRU, cache_key
from api.services import catalog
from schema.api import PaperFilter
from schema.errors import DomainError
from schema.paging import PageRequest
from schema.selection import Selection
from sql.graph import NotCompiledError

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# Arguments a dry build is made with, to learn whether a document compiles at all.
_DRY = {"id": "x", "page": PageRequest(1), "sort": "recent", "filter": PaperFilter()}


def contract_name(graphql_name: str) -> str:
    """The contract field a GraphQL field mirrors (`arxivId` -> `arxiv_id`)."""
    return graphql_name if graphql_name.startswith("__") else _CAMEL.sub("_", graphql_name).lower()


class _Field(NamedTuple):
    """One field of a planned document: its response key, contract name, definition and merged nodes."""

    key: str
    name: str
    definition: Any  # GraphQLField; None for __typename
    node: FieldNode
    children: tuple[_Field, ...]
    typename: str | None
    static: Selection | None = None  # the field's selection when neither it nor any field under it takes arguments
    static_children: tuple[Selection, ...] | None = None  # its children's, when none of them takes arguments


def _with_static(field: _Field) -> _Field:
    """The field, with what does not vary by request made once: its children's selections, and its own."""
    if any(c.static is None for c in field.children):
        return field
    children = tuple(c.static for c in field.children if c.static is not None)
    field = field._replace(static_children=children)
    if field.definition is not None and field.definition.args:
        return field
    return field._replace(static=Selection(field.key, field.name, {}, children, field.typename))


class _Plan(NamedTuple):
    operation: OperationDefinitionNode
    fields: tuple[_Field, ...]
    nullable: bool  # every root field may be null (a failed statement leaves data, else data is null)


# One cache for the process, by schema, operation name and document text (bounded like the documents): None
# for "not compiled".
_PLANS: TextLRU[tuple[_Plan | None]] = TextLRU()


async def answer(
    schema: GraphQLSchema, context: Any, query: str, operation_name: str | None, document: Any, variables: Any
) -> ExecutionResult | None:
    """The operation's result when it is a compilable read (None: the executor's to run)."""
    if not isinstance(context, Context):
        return None
    plan = _plan(schema, query, operation_name, document)
    if plan is None:
        return None
    statement = _statement(schema, plan, variables or {})
    return None if statement is None else await _run(context, plan, statement)


def _plan(schema: GraphQLSchema, query: str, operation_name: str | None, document: Any) -> _Plan | None:
    key = f"{id(schema)}:{operation_name or ''}:{cache_key(query)}"
    found = _PLANS.get(key)
    if found is not None:
        return found[0]
    plan = _compile(schema, document, operation_name)
    _PLANS.put(key, (plan,))
    return plan


def _compile(schema: GraphQLSchema, document: Any, operation_name: str | None) -> _Plan | None:
    """The plan of a document's operation, or None when the executor must run it."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY or operation.directives:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    try:
        assert schema.query_type is not None
        fields = _plan_selection(schema, schema.query_type, [operation.selection_set], fragments)
        catalog.graph_statement(_tree(fields, lambda _: dict(_DRY)))
    except NotCompiledError:
        return None
    nullable = not any(isinstance(f.definition.type, GraphQLNonNull) for f in fields if f.definition is not None)
    return _Plan(operation, fields, nullable)


def _plan_selection(
    schema: GraphQLSchema, parent: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode], fragments: dict
) -> tuple[_Field, ...]:
    """The fields of selection sets on one type, merged by response key, fragments spread."""
    grouped: dict[str, list[FieldNode]] = {}
    for selection_set in selection_sets:
        for node in _field_nodes(schema, parent, selection_set, fragments):
            grouped.setdefault((node.alias or node.name).value, []).append(node)
    fields = []
    for key, nodes in grouped.items():
        name = nodes[0].name.value
        if name == "__typename":
            fields.append(_with_static(_Field(key, name, None, nodes[0], (), parent.name)))
            continue
        if name not in parent.fields:  # __schema, __type: introspection is the executor's
            raise NotCompiledError(name)
        definition = parent.fields[name]
        named = get_named_type(definition.type)
        children: tuple[_Field, ...] = ()
        if isinstance(named, GraphQLObjectType):
            children = _plan_selection(schema, named, [n.selection_set for n in nodes if n.selection_set], fragments)
        fields.append(_with_static(_Field(key, contract_name(name), definition, nodes[0], children, None)))
    return tuple(fields)


def _field_nodes(
    schema: GraphQLSchema, parent: GraphQLObjectType, selection_set: SelectionSetNode, fragments: dict
) -> list[FieldNode]:
    """The field nodes of a selection set, fragments spread; directives are the executor's."""
    nodes: list[FieldNode] = []
    for selection in selection_set.selections:
        if selection.directives:
            raise NotCompiledError("directives")
        if isinstance(selection, FieldNode):
            nodes.append(selection)
            continue
        fragment = fragments[selection.name.value] if isinstance(selection, FragmentSpreadNode) else selection
        assert isinstance(fragment, FragmentDefinitionNode | InlineFragmentNode)
        if isinstance(selection, FragmentSpreadNode) and fragment.directives:
            raise NotCompiledError("directives")
        condition = fragment.type_condition
        if condition is not None:
            target = schema.get_type(condition.name.value)
            # Only an interface or a union the parent belongs to can hold the parent's fields.
            if target is not parent and not (is_abstract_type(target) and schema.is_sub_type(target, parent)):
                raise NotCompiledError("a fragment on another type")
        nodes.extend(_field_nodes(schema, parent, fragment.selection_set, fragments))
    return nodes


def _tree(fields: Sequence[_Field], arguments: Any) -> tuple[Selection, ...]:
    """The selection tree of planned fields, each field's arguments given by `arguments(field)`."""
    return tuple(
        f.static
        if f.static is not None
        else Selection(
            f.key,
            f.name,
            arguments(f) if f.definition is not None and f.definition.args else {},
            f.static_children if f.static_children is not None else _tree(f.children, arguments),
            f.typename,
        )
        for f in fields
    )


def _contract_value(name: str, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if name == "filter":
        return catalog.check_filter(PaperFilter(**{contract_name(k): v for k, v in (value or {}).items()}))
    return value


def _contract_arguments(values: dict[str, Any]) -> dict[str, Any]:
    """A field's arguments as contract values; a connection's four paging arguments become one `page`."""
    args = {name: _contract_value(name, value) for name, value in values.items()}
    if "after" in args:
        paging = [args.pop(name, None) for name in ("first", "after", "last", "before")]
        args["page"] = catalog.page_request(*paging)
    return args


def _statement(schema: GraphQLSchema, plan: _Plan, inputs: dict[str, Any]) -> catalog.GraphStatement | None:
    """The request's statement, or None when its variables or arguments are the executor's to report."""
    variables = get_variable_values(schema, plan.operation.variable_definitions or (), inputs)
    if isinstance(variables, list):  # values that do not coerce: the executor reports them
        return None

    def arguments(field: _Field) -> dict[str, Any]:
        return _contract_arguments(get_argument_values(field.definition, field.node, variables))

    try:
        return catalog.graph_statement(_tree(plan.fields, arguments))
    except (DomainError, NotCompiledError):
        return None  # a bad page size or cursor, a cursor over several listings: the executor reports or runs it


async def _run(context: Context, plan: _Plan, statement: catalog.GraphStatement) -> ExecutionResult:
    """Run the statement; every root field gets its JSON, or each an error (data null unless all are nullable)."""
    try:
        values = await context.run(catalog.read_graph, statement)
    except Exception as exc:  # noqa: BLE001 - reported (and logged, counted) like any field failure
        errors = [GraphQLError(str(exc), [f.node], path=[f.key], original_error=exc) for f in plan.fields]
        return ExecutionResult(data={f.key: None for f in plan.fields} if plan.nullable else None, errors=errors)
    data = {f.key: None if v is None else msgspec.Raw(v) for f, v in zip(plan.fields, values, strict=True)}
    return ExecutionResult(data=data)
