"""Read-your-writes across requests: the `Papers-LSN` token a client gets back after a write and may send again.

An answer that wrote (a submission) or marked where it read (a job's status) carries the WAL position as a
`Papers-LSN` header and a short-lived `papers_lsn` cookie. A request that sends either back (the header wins)
is read from a replica only once that replica has replayed past it, else from the primary
(sql/routing.py). The cookie lives as long as the replica lag bound, plus a second: after that, every
replica in rotation has replayed the position anyway.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.http.problem import PROBLEM_JSON
from sql.replicas import format_lsn, parse_lsn
from sql.routing import Freshness

HEADER = b"papers-lsn"
COOKIE = "papers_lsn"
_STATE_KEY = "papers.freshness"


def freshness(scope: Scope) -> Freshness:
    """The request's freshness (made by the middleware; a fresh one outside it)."""
    found = scope.get("state", {}).get(_STATE_KEY)
    return found if isinstance(found, Freshness) else Freshness()


def _token(scope: Scope) -> str | None:
    """The client's token: the header, else the cookie."""
    cookie = None
    for key, value in scope.get("headers", ()):
        if key == HEADER:
            return str(value.decode("latin-1"))
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, text = part.strip().partition("=")
                if name == COOKIE:
                    cookie = text
    return cookie


def consistent(app: ASGIApp, cookie_seconds: float) -> ASGIApp:
    """Middleware: read the client's token into the request's freshness; hand a newer position back."""
    max_age = math.ceil(cookie_seconds) + 1

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        token = _token(scope)
        try:
            after = parse_lsn(token) if token else None
        except ValueError:
            await _bad_token(send, token or "")
            return
        freshness_of = Freshness(after)
        scope.setdefault("state", {})[_STATE_KEY] = freshness_of

        async def send_position(message: Message) -> None:
            seen = freshness_of.seen
            if message["type"] == "http.response.start" and seen is not None and (after is None or seen > after):
                text = format_lsn(seen)
                cookie = f"{COOKIE}={text}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
                headers: Any = [*message.get("headers", ()), (HEADER, text.encode()), (b"set-cookie", cookie.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_position)

    return middleware


async def _bad_token(send: Send, token: str) -> None:
    body = msgspec.json.encode({
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": f"Papers-LSN: expected a WAL position such as 0/16B3748, got {token[:40]!r}",
    })  # fmt: skip
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
