"""Rate limits per client: the API key's holder, else the client address; 429 with Retry-After beyond them.

Counting uses the `limits` library (sliding window counters), in this process's memory by default or
in a shared store (`PAPERS_RATE_LIMIT_STORAGE`, e.g. `redis://host:6379`) so that several processes
and replicas count together. Every answer carries the IETF draft headers: `RateLimit-Policy` (each
limit's quota and window) and `RateLimit` (what is left of the tightest one and when it resets).

A shared store that cannot be reached lets requests through uncounted (logged at most once a minute): the
limits protect the service, and an outage of their store must not become an outage of the API.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence

import msgspec
from limits import RateLimitItem, parse_many
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from api.http.problem import PROBLEM_JSON
from schema.settings import Settings

log = logging.getLogger("papers.ratelimit")
EXEMPT = frozenset({"/healthz", "/readyz"})  # probes must answer whatever a client does
KEY_FACTOR = 10  # the API key's holder may do this many times what an anonymous address may


def _policy(items: Sequence[RateLimitItem]) -> bytes:
    return ", ".join(f'"{item.get_expiry()}s";q={item.amount};w={item.get_expiry()}' for item in items).encode()


class RateLimits:
    """Counts requests per client against the configured limits."""

    def __init__(self, settings: Settings) -> None:
        assert settings.rate_limit is not None
        self.anonymous = parse_many(settings.rate_limit)
        self.keyed = parse_many(";".join(f"{i.amount * KEY_FACTOR}/{i.get_expiry()} second" for i in self.anonymous))
        uri = settings.rate_limit_storage
        storage = storage_from_string(uri if "+" in uri else f"async+{uri}")
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.api_key = settings.api_key
        self._warned_at = -math.inf

    def identify(self, scope: Scope) -> tuple[str, Sequence[RateLimitItem]]:
        """Who is asking: the API key's holder (a bearer of the configured key), else the client address."""
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and self.api_key and value.decode("latin-1") == f"Bearer {self.api_key}":
                return "key:" + hashlib.sha256(self.api_key.encode()).hexdigest()[:16], self.keyed
        client = scope.get("client")
        return f"addr:{client[0] if client else 'unknown'}", self.anonymous

    async def check(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], int | None]:
        """Count one request; its RateLimit headers, and the seconds to wait when a limit is exceeded."""
        try:
            return await self._count(scope)
        except Exception as exc:  # noqa: BLE001 - any failure of the store (connection, timeout, protocol)
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate-limit store unavailable, requests pass uncounted: %r", exc)
            return [], None

    async def _count(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], int | None]:
        who, items = self.identify(scope)
        wait: int | None = None
        tightest: tuple[int, int] | None = None
        for item in items:
            allowed = await self.limiter.hit(item, who)
            stats = await self.limiter.get_window_stats(item, who)
            reset = max(1, math.ceil(stats.reset_time - time.time()))
            if not allowed:
                wait = max(wait or 0, reset)
            if tightest is None or stats.remaining < tightest[0]:
                tightest = (stats.remaining, reset)
        remaining, reset = tightest or (0, 1)
        headers = [(b"ratelimit-policy", _policy(items)), (b"ratelimit", f'"limit";r={remaining};t={reset}'.encode())]
        return headers, wait


def rate_limited(app: ASGIApp, limits: RateLimits) -> ASGIApp:
    """Wrap the app: every HTTP request but the probes is counted; past a limit the answer is 429."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await app(scope, receive, send)
            return
        headers, wait = await limits.check(scope)
        if wait is not None:
            await _too_many(send, headers, wait)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


async def _too_many(send: Send, headers: list[tuple[bytes, bytes]], wait: int) -> None:
    body = msgspec.json.encode({
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"this client has made too many requests; retry after {wait} s",
    })  # fmt: skip
    start_headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(wait).encode()),
        *headers,
    ]
    await send(HTTPResponseStartEvent(type="http.response.start", status=429, headers=start_headers))
    await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))
