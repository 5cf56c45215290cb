"""Print the published schemas: `python -m api.export_schema > schema.graphql` (the GraphQL SDL) and
`python -m api.export_schema --openapi > openapi.json` (the REST API's OpenAPI 3.1 document)."""

from __future__ import annotations

import json
import sys

from strawberry.printer import print_schema

from api.graphql.schema import schema


def sdl() -> str:
    """The schema as checked in: the printed SDL and a final newline."""
    return print_schema(schema) + "\n"


def openapi() -> str:
    """The OpenAPI document as checked in and as `/schema/openapi.json` serves it, indented, with a final newline."""
    from litestar.serialization import encode_json

    from api.app import create_app
    from schema.settings import Settings

    # The document depends on the routes only: no setting changes it and nothing connects to this URL.
    app = create_app(Settings(), database_url="postgresql://unused", embedder=None)
    return json.dumps(json.loads(encode_json(app.openapi_schema.to_schema())), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(openapi() if "--openapi" in sys.argv[1:] else sdl(), end="")
