"""Print the GraphQL schema SDL: `python -m api.export_schema > schema.graphql`."""

from __future__ import annotations

from strawberry.printer import print_schema

from api.graphql.schema import schema


def sdl() -> str:
    """The schema as checked in: the printed SDL and a final newline."""
    return print_schema(schema) + "\n"


if __name__ == "__main__":
    print(sdl(), end="")
