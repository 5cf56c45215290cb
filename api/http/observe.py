"""Every request's id, its access-log line, HEAD answered like GET, and one `Allow` for 405 and OPTIONS.

One ASGI middleware around the whole app (REST and GraphQL alike):

- `X-Request-ID`: the client's, when it is a sane token, else a new one; echoed on the response and
  attached to every log record made while the request runs (`RequestIdFilter`).
- One access-log line per request on the `papers.access` logger: a JSON object with method, path,
  status, duration in ms, response bytes, request id and client address.
- HEAD runs the GET route and sends its headers without the body (Litestar routes only the methods
  a handler declares); `is_head(scope)` tells a route whose body costs work (the export) to skip it.
- A 405's `Allow` and an OPTIONS answer's `Allow` list the same methods, HEAD wherever GET is. Litestar 2
  answers OPTIONS with the methods of a path's first registered handler only (litestar#4169, fixed in v3:
  `OPTIONS /v1/listings` left out POST), so OPTIONS takes the path's methods from `methods`, by the route's
  path template, which the app knows in full.
- One `Content-Security-Policy` on every answer: scripts, styles and requests from this host only (the
  explorers' pages need nothing else, api/http/explorer.py; a JSON answer needs nothing at all).
"""

from __future__ import annotations

import contextvars
import logging
import random
import re
import time
from collections.abc import Collection, Mapping
from typing import Any, cast

import msgspec
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from api.http.explorer import CONTENT_SECURITY_POLICY

access_log = logging.getLogger("papers.access")
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ENCODER = msgspec.json.Encoder()
_CSP = (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (`-` outside a request), for the log format."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the current request's id."""
        record.request_id = REQUEST_ID.get()
        return True


def _new_id() -> str:
    """128 random bits as hex: an id to correlate, not a secret, so no system call (uuid4 costs one per request)."""
    return f"{random.getrandbits(128):032x}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


# What `Allow` may name: Litestar's 405 also lists WEBSOCKET where a websocket route shares the path (/graphql).
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def _allow(headers: list[tuple[bytes, bytes]], known: Collection[str] | None) -> list[tuple[bytes, bytes]]:
    """The headers with `Allow` made whole: the `known` methods of the path when given (else the header's own),
    OPTIONS always, HEAD wherever GET is, nothing that is not an HTTP method."""
    out, methods = [], set(known or ())
    for key, value in headers:
        if key.lower() != b"allow":
            out.append((key, value))
        elif known is None:
            methods |= {m.strip().upper() for m in value.decode("latin-1").split(",") if m.strip()}
    if not methods:
        return headers
    methods = (methods & _HTTP_METHODS) | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    return [*out, (b"allow", ", ".join(sorted(methods)).encode())]


_HEAD = "papers.head"  # scope key: this GET is a HEAD


def is_head(scope: Any) -> bool:
    """Whether the request routed as GET is a HEAD (its body will be dropped, so need not be made)."""
    return bool(scope.get(_HEAD, False))


def observe(app: ASGIApp, methods: Mapping[str, Collection[str]] | None = None) -> ASGIApp:
    """Wrap the app: request ids, access log, HEAD and Allow (see the module docstring).

    `methods` maps each route's path template (`/v1/papers/{paper_id}`) to the HTTP methods it has.
    """
    methods = methods or {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        scope = cast("HTTPScope", scope)
        given = _header(scope, b"x-request-id")
        request_id = given if given and _SANE_ID.match(given) else _new_id()
        token = REQUEST_ID.set(request_id)
        head = scope["method"] == "HEAD"
        started, sent = time.perf_counter(), {"status": 0, "bytes": 0}

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode()), _CSP]
                if message["status"] == 405:
                    headers = _allow(headers, None)
                elif scope["method"] == "OPTIONS":  # routed: Litestar put the route's template in the scope
                    headers = _allow(headers, methods.get(scope.get("path_template", "")))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
                if head:
                    message = {**message, "body": b""}
            await send(message)

        try:
            routed = cast("Scope", {**scope, "method": "GET", _HEAD: True}) if head else scope
            await app(routed, receive, send_wrapped)
        finally:
            _log_access(scope, request_id, sent, started)
            REQUEST_ID.reset(token)

    return middleware


def _log_access(scope: HTTPScope, request_id: str, sent: dict[str, int], started: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    line: dict[str, Any] = {
        "method": scope["method"],
        "path": scope["path"],
        "status": sent["status"],
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "bytes": sent["bytes"],
        "request_id": request_id,
        "client": client[0] if client else None,
    }
    access_log.info(_ENCODER.encode(line).decode())
