"""`fields=`: the parameter, the partial answers it gives and how the OpenAPI document describes them.

With `fields=id,title` a paper holds only those fields, so an answer is no longer a `PaperPage` of `Paper`s.
Each answer shape is declared (a page of full papers, a page of partial ones, ...) and the operation's 200
answer is `anyOf` them: a `fields=` answer that names every field is also a full page, which `oneOf` (exactly
one), Litestar's rendering of a union, would call invalid. Generated clients try the shapes in order, the
full one first, so the usual answer still comes back as typed `Paper`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, get_type_hints

import msgspec
from litestar.openapi.spec import Example, Operation, Schema
from litestar.params import Parameter

from api.rest.params import SEARCH_CURSOR, NextCursor, Total, TotalExact
from schema.api import PAPER_FIELDS, Paper, ScoredPaper, doc
from schema.errors import InvalidInputError

Fields = Annotated[
    str | None,
    Parameter(description="comma-separated fields to return of each paper", examples=[Example(value="id,title")]),
]
SCORED_FIELDS = PAPER_FIELDS | {"score", "snippet"}


def select_fields(items: list[Any], fields: str | None, known: frozenset[str] = PAPER_FIELDS) -> list[Any]:
    """The items, or only the named fields of each (None stays None)."""
    if not fields:
        return items
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise InvalidInputError(f"unknown fields: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [None if item is None else {name: getattr(item, name) for name in wanted} for item in items]


def partial(struct: type[msgspec.Struct], name: str) -> type[msgspec.Struct]:
    """The struct with every field optional (absent unless asked for), each typed and described as in the struct.

    Made from the struct so the two cannot drift; it only describes answers (select_fields builds them).
    """
    hints = get_type_hints(struct, include_extras=True)
    fields = [(field, hints[field], msgspec.UNSET) for field in struct.__struct_fields__]
    return msgspec.defstruct(name, fields, frozen=True, module=__name__)


if TYPE_CHECKING:  # mypy cannot read a type made at run time; what the routes build are select_fields' dicts
    PaperFields: TypeAlias = dict[str, Any]
    ScoredFields: TypeAlias = dict[str, Any]
else:
    PaperFields = partial(Paper, "PaperFields")
    ScoredFields = partial(ScoredPaper, "ScoredFields")

_PARTIAL = "each holds only the fields `fields=` names"


class PaperFieldsPage(msgspec.Struct, frozen=True, omit_defaults=True):
    """A page of papers, each with only the fields asked for, and the cursor of the next page."""

    items: Annotated[list[PaperFields], doc(f"the page's papers; {_PARTIAL}", [{"id": "pap_z77nqhjb6zugfnc4"}])]
    next_cursor: NextCursor
    total: Total = None
    total_exact: TotalExact = None


class ScoredFieldsPage(msgspec.Struct, frozen=True, omit_defaults=True):
    """A page of scored papers, each with only the fields asked for, and the cursor of the next page."""

    items: Annotated[list[ScoredFields], doc(f"best first; {_PARTIAL}", [{"id": "pap_z77nqhjb6zugfnc4"}])]
    next_cursor: Annotated[str | None, doc("cursor of the next page; null on the last page", SEARCH_CURSOR)]
    total: Total = None
    total_exact: TotalExact = None


class ScoredFieldsList(msgspec.Struct, frozen=True):
    """Scored papers, best first, each with only the fields asked for."""

    items: Annotated[list[ScoredFields], doc(f"best first; {_PARTIAL}", [{"id": "pap_z77nqhjb6zugfnc4"}])]


@dataclass
class EitherAnswer(Operation):
    """An operation whose answer shapes overlap: its union of answers is `anyOf`, where Litestar writes `oneOf`."""

    def __post_init__(self) -> None:
        for response in (self.responses or {}).values():
            for media in (getattr(response, "content", None) or {}).values():
                if isinstance(media.schema, Schema) and media.schema.one_of:
                    media.schema.any_of, media.schema.one_of = media.schema.one_of, None
