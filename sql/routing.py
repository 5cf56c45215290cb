"""Which database a service call runs on: reads on a replica in rotation, writes on the primary, and a read
that must see a given write on a replica that has replayed it (else the primary).

Services say what a call does with a decorator: `@reads` (any fresh-enough replica), `@looks_up` (a read
by id whose miss on a replica is asked again of the primary: the id may name something just written),
`@writes` (the primary; the request's later reads must see it) and `@on_primary` (a read that must be the
primary's: readiness). The decorated function takes a `Source` where it took a connection: a request's
`Session` routes; a bare connection (the CLI, tests, benchmarks) or pool runs the call there.

A `Session` is one request's view. Its `Freshness` holds the WAL position its reads must reach (the
client's token, then this request's own writes) and the position to hand back (after a write, or a read
asked to mark where it read): the HTTP layer carries both as the `Papers-LSN` header and cookie.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import asyncpg

from schema.api import DatabaseStatus
from schema.errors import NotFoundError
from sql import db
from sql.replicas import PRIMARY_POSITION, REPLAY_POSITION, Databases, Node

log = logging.getLogger("papers.replicas")

P = ParamSpec("P")
R = TypeVar("R")
Intent = Literal["read", "lookup", "write", "primary"]
POLL_S = 0.005  # how often a read waiting for a replica's replay asks again
# A replica cancels a query that conflicts with replay (SQLSTATE 40001); the primary has no such conflict.
_REPLICA_ONLY_FAILURES = (asyncpg.SerializationError,)


class Freshness:
    """How fresh one request's reads must be (`after`), and the position its answer hands back (`seen`)."""

    __slots__ = ("after", "seen")

    def __init__(self, after: int | None = None) -> None:
        self.after = after
        self.seen: int | None = None

    def must_see(self, lsn: int) -> None:
        """This request wrote (or found on the primary) data as of lsn: its later reads, and the client's, see it."""
        self.after = max(self.after or 0, lsn)
        self.read_at(lsn)

    def read_at(self, lsn: int) -> None:
        """This request showed data as of lsn: hand it back so the client's next reads are no older."""
        self.seen = max(self.seen or 0, lsn)


class _FallbackError(Exception):
    """The replica cannot answer this call: ask the primary (`missed`: it did not know the id asked for)."""

    def __init__(self, missed: bool = False) -> None:
        super().__init__()
        self.missed = missed


class Session:
    """One request's way to the databases."""

    __slots__ = ("databases", "freshness")

    def __init__(self, databases: Databases, freshness: Freshness | None = None) -> None:
        self.databases = databases
        self.freshness = freshness if freshness is not None else Freshness()

    def status(self) -> list[DatabaseStatus]:
        """Every database's role, health and lag."""
        return self.databases.status()

    async def run(
        self, intent: Intent, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any], mark: bool
    ) -> R:
        """Run fn(connection, *args, **kwargs) where the intent says; `mark` hands back the position it read at."""
        if intent in ("read", "lookup"):
            node = self.databases.next_replica()
            if node is not None:
                try:
                    return await self._on_replica(node, intent, fn, args, kwargs, mark)
                except _FallbackError as fallback:
                    # Found only on the primary: the rest of the request must not read older data than that.
                    catch_up = fallback.missed
                    return await self._on_primary(intent, fn, args, kwargs, mark, catch_up=catch_up)
        return await self._on_primary(intent, fn, args, kwargs, mark)

    async def _on_replica(
        self,
        node: Node,
        intent: Intent,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        mark: bool,
    ) -> R:
        assert node.pool is not None
        try:
            async with db.pooled(node.pool) as conn:
                after = self.freshness.after
                if after is not None and not await self._caught_up(node, conn, after):
                    raise _FallbackError
                try:
                    result = await fn(conn, *args, **kwargs)
                except NotFoundError:
                    if intent == "lookup":
                        raise _FallbackError(missed=True) from None
                    raise
                if mark:
                    self.freshness.read_at(await _position(conn, REPLAY_POSITION))
                return result
        except TimeoutError:
            raise  # the statement's time limit (an OSError too): the replica is fine, the query is too costly
        except db.CONNECTION_LOST as exc:
            # Reads change nothing, so the primary may answer this one: the request does not fail.
            await self.databases.take_out(node, exc)
            raise _FallbackError from None
        except _REPLICA_ONLY_FAILURES as exc:
            log.info("%s cancelled a read (%s): asking the primary", node.name, exc)
            raise _FallbackError from None

    async def _caught_up(self, node: Node, conn: asyncpg.Connection, after: int) -> bool:
        """Whether the replica has replayed past `after`, waiting at most the configured bound for it."""
        if node.lsn >= after:
            return True
        if after > self.databases.primary.lsn:
            # Past the primary's last sampled position: a write newer than the last check, or a forged token. The
            # primary has it either way; polling here would hold a replica connection for the whole bound.
            return False
        deadline = time.monotonic() + self.databases.settings.wait
        while True:
            node.saw(await _position(conn, REPLAY_POSITION))
            if node.lsn >= after:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(POLL_S, remaining))

    async def _on_primary(
        self,
        intent: Intent,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        mark: bool,
        *,
        catch_up: bool = False,
    ) -> R:
        primary = self.databases.primary
        assert primary.pool is not None
        async with db.pooled(primary.pool) as conn:
            result = await fn(conn, *args, **kwargs)
            # Positions matter only when a replica could be behind them: without replicas, no extra round trip.
            if self.databases.replicas and (intent == "write" or catch_up or mark):
                lsn = await _position(conn, PRIMARY_POSITION)
                primary.saw(lsn)
                if intent == "write" or catch_up:
                    self.freshness.must_see(lsn)
                else:
                    self.freshness.read_at(lsn)
            return result


Source = Session | asyncpg.Connection | asyncpg.Pool
PRIMARY_ONLY = DatabaseStatus("primary", "primary", True, "ok", 0.0, 0)


async def _position(conn: asyncpg.Connection, sql: str) -> int:
    return int(await conn.fetchval(sql))


async def run(
    source: Source,
    intent: Intent,
    fn: Callable[..., Awaitable[R]],
    *args: Any,
    mark: bool = False,
    **kwargs: Any,
) -> R:
    """Run fn(connection, *args, **kwargs) on the database the intent and the source choose."""
    if isinstance(source, Session):
        return await source.run(intent, fn, args, kwargs, mark)
    return await _direct(source, fn, args, kwargs)


async def _direct(
    source: asyncpg.Connection | asyncpg.Pool,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """A call on the one database a bare connection or pool is."""
    if isinstance(source, asyncpg.Pool):
        async with db.pooled(source) as conn:
            return await fn(conn, *args, **kwargs)
    return await fn(source, *args, **kwargs)


def status(source: Source) -> list[DatabaseStatus]:
    """The databases behind a source: a session's, or the one database a connection or pool is."""
    return source.status() if isinstance(source, Session) else [PRIMARY_ONLY]


Routed = Callable[Concatenate[Source, P], Awaitable[R]]


def _routed(intent: Intent, fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[R]]) -> Routed[P, R]:
    @functools.wraps(fn)
    async def routed(source: Source, *args: P.args, **kwargs: P.kwargs) -> R:
        if isinstance(source, Session):
            return await source.run(intent, fn, args, kwargs, False)
        return await _direct(source, fn, args, kwargs)

    return routed


def reads(fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[R]]) -> Routed[P, R]:
    """A read: on a replica in rotation that has replayed the request's position, else on the primary."""
    return _routed("read", fn)


def looks_up(fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[R]]) -> Routed[P, R]:
    """A read by id: as `reads`, and a NotFoundError on a replica is asked again of the primary."""
    return _routed("lookup", fn)


def writes(fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[R]]) -> Routed[P, R]:
    """A write: on the primary; the request's later reads, and the client's with its token, will see it."""
    return _routed("write", fn)


def on_primary(fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[R]]) -> Routed[P, R]:
    """A read that must be the primary's own (readiness: are its migrations applied?)."""
    return _routed("primary", fn)
