"""What one GraphQL operation may cost: its size before validation, its estimated work before execution.

- Size, read off the parsed document in one pass before it is validated (validating many selections
  of one name compares them pair by pair): at most MAX_FIELDS field selections, and one response
  key at most MAX_REPEATS times in a selection set.
- Work, estimated with the request's variables before anything runs: every list field multiplies
  what it holds by its page size (`first` or `last`, or the default page; LISTINGS_PER_PAPER for a paper's
  listings), so `papers(first: 100) { ... listing { entries(first: 100) } }` costs 100 × 10 × 100
  objects; and every text the model must embed (a semantic or hybrid `search`, a `recommend` text)
  is a model call. Past MAX_OBJECTS or MAX_MODEL_CALLS the operation is refused, with its cost and
  the limit in the message.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any, NamedTuple

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    Visitor,
    get_named_type,
    is_list_type,
    is_non_null_type,
    visit,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from schema import limits
from schema.errors import QueryTooCostlyError

MAX_FIELDS = 300
MAX_REPEATS = 10
MAX_OBJECTS = 10_000
MAX_MODEL_CALLS = 10
LISTINGS_PER_PAPER = 10  # a paper's listings are not paged; few papers appear in more
COST_ARGUMENTS = frozenset({"first", "last", "mode", "text"})  # the arguments an estimate reads
# The cost of an operation no variable changes, by the document's identity (the schema's document store hands
# out one object per text), so a repeated read is not walked again; held, so an id is never reused meanwhile.
_FIXED: collections.OrderedDict[tuple[int, int, str | None], tuple[DocumentNode, Cost]] = collections.OrderedDict()
MAX_FIXED = 512


class _Size(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.fields = 0
        self.most_repeated = 0

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        self.fields += 1

    def enter_selection_set(self, node: SelectionSetNode, *_: Any) -> None:
        keys = collections.Counter((f.alias or f.name).value for f in node.selections if isinstance(f, FieldNode))
        self.most_repeated = max(self.most_repeated, *keys.values(), 0)


def check_size(document: DocumentNode) -> None:
    """Refuse a document too large to validate cheaply (QueryTooCostlyError)."""
    size = _Size()
    visit(document, size)
    if size.fields > MAX_FIELDS:
        raise QueryTooCostlyError(f"the document selects {size.fields} fields; at most {MAX_FIELDS} are allowed")
    if size.most_repeated > MAX_REPEATS:
        raise QueryTooCostlyError(
            f"a selection set repeats one field {size.most_repeated} times; at most {MAX_REPEATS} are allowed"
        )


class Cost(NamedTuple):
    """Estimated objects returned and model calls made."""

    objects: int
    model_calls: int


def check_cost(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: Any) -> Cost:
    """Estimate an operation's cost with its variables; refuse it past the limits (QueryTooCostlyError)."""
    key = (id(schema), id(document), operation_name)
    fixed = _FIXED.get(key)
    if fixed is not None and fixed[0] is document:
        return fixed[1]
    cost, varies = _estimate(schema, document, operation_name, variables)
    if not varies:
        _FIXED[key] = (document, cost)
        while len(_FIXED) > MAX_FIXED:
            _FIXED.popitem(last=False)
    return cost


def _estimate(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: Any
) -> tuple[Cost, bool]:
    """The cost (refused past the limits) and whether a variable could change it."""
    operation = _operation(document, operation_name)
    if operation is None:
        return Cost(0, 0), True  # the executor reports the missing operation
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        return Cost(0, 0), True  # variables that do not coerce: the executor reports them
    root = schema.query_type if operation.operation.value == "query" else schema.mutation_type
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(fragments, coerced)
    objects = walk.selection(root, operation.selection_set) if root is not None else 0
    if objects > MAX_OBJECTS:
        raise QueryTooCostlyError(
            f"the operation could return about {objects:,} objects (page sizes multiplied through its nesting);"
            f" at most {MAX_OBJECTS:,} are allowed: ask for smaller pages"
        )
    if walk.model_calls > MAX_MODEL_CALLS:
        raise QueryTooCostlyError(
            f"the operation needs {walk.model_calls} texts embedded (semantic or hybrid searches, recommendation"
            f" texts); at most {MAX_MODEL_CALLS} are allowed per request"
        )
    return Cost(objects, walk.model_calls), walk.varies


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    named = [o for o in operations if name is None or (o.name is not None and o.name.value == name)]
    return named[0] if named else None


def _has_variable(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_has_variable(v) for v in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_has_variable(f.value) for f in value.fields)
    return False


class _Walk:
    """Sums estimated objects over a selection, page sizes multiplied through the nesting."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode], variables: VariableValues) -> None:
        self.fragments, self.variables = fragments, variables
        self.model_calls = 0
        self.varies = False  # whether a variable gives an argument the estimate reads
        self.spreading: set[str] = set()  # fragment cycles are a validation error, not an infinite loop here

    def selection(self, parent: GraphQLObjectType, selection_set: SelectionSetNode) -> int:
        total = 0
        for node in self._fields(selection_set):
            definition = parent.fields.get(node.name.value)
            if definition is None:
                continue  # __typename, or an unknown field validation reports
            args = self._arguments(definition, node)
            self._count_model_calls(node.name.value, args)
            named = get_named_type(definition.type)
            if isinstance(named, GraphQLObjectType) and node.selection_set is not None:
                each = 1 + self.selection(named, node.selection_set)
                total += self._multiplier(node.name.value, definition.type, args) * each
        return total

    def _fields(self, selection_set: SelectionSetNode) -> Iterator[FieldNode]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self._fields(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in self.spreading:
                    self.spreading.add(name)
                    yield from self._fields(fragment.selection_set)
                    self.spreading.discard(name)

    def _arguments(self, definition: Any, node: FieldNode) -> dict[str, Any]:
        if not self.varies:
            self.varies = any(a.name.value in COST_ARGUMENTS and _has_variable(a.value) for a in node.arguments or ())
        try:
            return dict(get_argument_values(definition, node, self.variables))
        except Exception:  # noqa: BLE001 - arguments that do not coerce are the executor's to report
            return {}

    def _multiplier(self, name: str, kind: Any, args: dict[str, Any]) -> int:
        first = args.get("first") if args.get("last") is None else args.get("last")
        if isinstance(first, int) and first > 0:
            return min(first, limits.MAX_PAGE)  # a larger page is refused, with its own message, when it runs
        if "first" in args and first is None:
            return limits.DEFAULT_PAGE  # a connection asked for neither `first` nor `last`
        if name == "edges":
            return 1  # a connection's page: its `first` already multiplied what it holds
        bare = kind.of_type if is_non_null_type(kind) else kind
        return LISTINGS_PER_PAPER if is_list_type(bare) else 1

    def _count_model_calls(self, name: str, args: dict[str, Any]) -> None:
        mode = getattr(args.get("mode"), "value", args.get("mode"))
        if (name == "search" and mode != "keyword") or (name == "recommend" and args.get("text")):
            self.model_calls += 1
