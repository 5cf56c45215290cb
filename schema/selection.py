"""A read request as a tree of selected contract fields: what the GraphQL adapter asks the compiled read layer for."""

from __future__ import annotations

from typing import Any

import msgspec


class Selection(msgspec.Struct, frozen=True):
    """One selected field: its response key, the contract field it names, its arguments and sub-selection.

    `name` is the contract's field name (`arxiv_id`, `page_info`), or `__typename` with `typename` set.
    Arguments are contract values, already checked (`filter` a PaperFilter, `sort` a PaperSort name).
    """

    key: str
    name: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    children: tuple[Selection, ...] = ()
    typename: str | None = None
