"""The explorers, GraphiQL and Swagger UI, from assets shipped in this package: no request leaves the host.

The pages hold no inline script or style (each starts from a file under /explorer), so the one
Content-Security-Policy every answer carries (`CONTENT_SECURITY_POLICY`, set in api/http/observe.py) can allow
this host alone. The assets are vendored npm files with their licences (static/VENDORED.md).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).parent / "static"
ASSETS = "/explorer"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


async def _no_nul(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a path with a NUL names no asset (the file system refuses to look it up: ValueError, a 500)."""
    if "\x00" in connection.scope["path"]:
        raise NotFoundException("no such asset")


# Assets change only with the package; an hour keeps reloads cheap without outliving an upgrade for long.
EXPLORER_ASSETS = create_static_files_router(
    path=ASSETS,
    directories=[STATIC],
    include_in_schema=False,
    cache_control=CacheControlHeader(max_age=3600, public=True),
    name="explorer-assets",
    guards=[_no_nul],
)


def _page(title: str, styles: list[str], scripts: list[str], body: str, attributes: str = "") -> str:
    links = "".join(f'<link rel="stylesheet" href="{ASSETS}/{s}">' for s in styles)
    tags = "".join(f'<script src="{ASSETS}/{s}"></script>' for s in scripts)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{links}</head>'
        f"<body{attributes}>{body}{tags}</body></html>"
    )


GRAPHIQL_HTML = _page(
    "papers-api GraphiQL",
    ["graphiql/graphiql.min.css", "explorer.css"],
    [
        "react/react.production.min.js",
        "react/react-dom.production.min.js",
        "graphiql/graphiql.min.js",
        "graphiql-init.js",
    ],
    '<div id="graphiql">Loading GraphiQL…</div>',
)


class OfflineSwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI over this app's OpenAPI document, from the vendored bundle."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The Swagger UI page; its script reads the document's URL from `data-openapi`."""
        url = escape(self.get_openapi_json_route(request), quote=True)
        return _page(
            "papers-api OpenAPI",
            ["swagger-ui/swagger-ui.css"],
            ["swagger-ui/swagger-ui-bundle.js", "swagger-init.js"],
            '<div id="swagger-ui"></div>',
            f' data-openapi="{url}"',
        ).encode()
