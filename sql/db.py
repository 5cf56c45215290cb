"""Connections: single connections, the pool, and which database failures mean "unavailable".

Through PgBouncer in transaction mode (`PAPERS_DB_POOLER=pgbouncer`) a client holds a server session only
for one transaction, so connections to such a URL keep nothing in the session: asyncpg's documented set-up
(`statement_cache_size=0`, so no named prepared statements; its unnamed ones are parsed and executed before
one Sync), no session `SET` (searches set theirs with `SET LOCAL`), and no session advisory lock (the worker
takes its connection from `DATABASE_SESSION_URL`; migrations lock per transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
from pgvector.asyncpg import register_vector

from schema.errors import (
    CONFLICTED,
    DATABASE_UNAVAILABLE,
    QUERY_TIMEOUT,
    UNSTORABLE,
    DatabaseUnavailableError,
    DomainError,
    InvalidInputError,
    QueryTimeoutError,
    UnavailableError,
)
from schema.settings import Settings, SettingsError
from sql import search
from sql.embedded import database_url
from sql.migrate import migrate
from sql.session import TransactionPooledConnection, keeps_session

log = logging.getLogger("papers.db")

# Text PostgreSQL cannot store (a NUL character): the client's input error, not the server's.
UNSTORABLE_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)

# The database went away or cannot take the session: retryable, never the request's fault. While a server
# shuts down, a connection cut mid-query can also surface as asyncpg's InternalClientError ("cannot switch
# to state ..."; MagicStack/asyncpg#1069); the pool terminates such a connection when it is released.
CONNECTION_LOST = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# Every session reads timestamps in UTC, so JSON built by PostgreSQL (sql/graph.py) and by Python agree.
SERVER_SETTINGS = {"timezone": "UTC"}  # PgBouncer keeps TimeZone per client too (one of its tracked parameters)
# URLs that lead to PgBouncer in transaction mode, registered by `transaction_pooled` from the Settings.
_TRANSACTION_POOLED: set[str] = set()


def transaction_pooled(url: str) -> None:
    """Record that url leads to PgBouncer in transaction mode: connections to it keep no session state."""
    _TRANSACTION_POOLED.add(url)


def _options(url: str) -> dict[str, Any]:
    if url in _TRANSACTION_POOLED:
        return {"statement_cache_size": 0, "connection_class": TransactionPooledConnection}
    return {}


def as_domain_error(exc: BaseException) -> DomainError | None:
    """The domain error a database failure means to a client, or None when it is a bug."""
    if isinstance(exc, DomainError):
        return exc
    # Before CONNECTION_LOST, which holds OSError: TimeoutError is one, raised by a statement's time limit.
    if isinstance(exc, (TimeoutError, asyncpg.QueryCanceledError)):
        return QueryTimeoutError(QUERY_TIMEOUT)
    if isinstance(exc, CONNECTION_LOST):
        return DatabaseUnavailableError(DATABASE_UNAVAILABLE)
    # PostgreSQL's class 40 (deadlock, serialization failure): it rolled the statement back so another could go on.
    if isinstance(exc, asyncpg.TransactionRollbackError):
        return UnavailableError(CONFLICTED, retry_after=1)
    if isinstance(exc, (*UNSTORABLE_TEXT, UnicodeEncodeError)):  # a NUL, or a lone surrogate asyncpg cannot encode
        return InvalidInputError(UNSTORABLE)
    return None


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: the pgvector codec and the HNSW search settings (the extension must exist, so migrate
    first)."""
    await register_vector(conn)
    if keeps_session(conn):
        await search.configure_session(conn)


async def connect(url: str, *, vector: bool = True) -> asyncpg.Connection:
    """Open one connection, with a clear error when the database cannot be reached."""
    try:
        conn = await asyncpg.connect(url, server_settings=SERVER_SETTINGS, **_options(url))
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(f"cannot connect to the database: {exc}") from None
    if vector:
        await init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset: nothing to undo (asyncpg itself still rolls back a transaction left open)."""
    # The default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) costs a round trip on every
    # release. Pooled connections never change session state: settings are SET LOCAL, advisory locks
    # and LISTEN live on the worker's own connections.


# A first-come, first-served gate per pool, as wide as the pool. asyncpg's pool hands a freed connection to
# whichever acquire runs first: a waiter woken for it loses it to a newer request and queues again at the back,
# so under load some requests wait several turns (hybrid search at 32 connections: p99 twice the median).
_GATES: dict[asyncpg.Pool, asyncio.Semaphore] = {}


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 60, statement_timeout: float | None = None
) -> asyncpg.Pool:
    """Create a connection pool whose connections have the pgvector codec (`timeout`: seconds to connect;
    `statement_timeout`: seconds a statement may run before it is cancelled on the server, None for no limit)."""
    for closed in [p for p in _GATES if p.is_closing()]:
        del _GATES[closed]
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            # asyncpg's client-side limit sends PostgreSQL a cancel request when it passes: it works through
            # PgBouncer's transaction pools, where a `statement_timeout` startup parameter would be refused.
            command_timeout=statement_timeout,
            init=init_connection,
            reset=_keep_session,
            server_settings=SERVER_SETTINGS,
            **_options(url),
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(f"cannot connect to the database: {exc}") from None
    _GATES[pool] = asyncio.Semaphore(max_size)
    return pool


@contextlib.asynccontextmanager
async def pooled(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection borrowed from pool in turn; a failed release does not undo work that already succeeded."""
    gate: contextlib.AbstractAsyncContextManager[Any] = _GATES.get(pool) or contextlib.nullcontext()
    async with gate, _borrowed(pool) as conn:
        yield conn


@contextlib.asynccontextmanager
async def _borrowed(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    conn = await pool.acquire()
    try:
        # The pool's proxy forwards every Connection method; asyncpg makes isinstance(proxy, Connection) true.
        yield cast(asyncpg.Connection, conn)
    finally:
        try:
            await pool.release(conn)
        except CONNECTION_LOST as exc:
            # asyncpg terminated the connection before re-raising; the pool opens a new one when needed.
            log.warning("pooled connection dropped on release: %s", exc)


@contextlib.asynccontextmanager
async def connection(url: str, *, vector: bool = True) -> AsyncIterator[asyncpg.Connection]:
    """A single connection that is closed on exit."""
    conn = await connect(url, vector=vector)
    try:
        yield conn
    finally:
        await conn.close()


async def migrated_url(settings: Settings) -> str:
    """The database URL, after starting the embedded server if needed and applying pending migrations."""
    url = await asyncio.to_thread(database_url, settings)
    if settings.db_pooler == "pgbouncer":
        transaction_pooled(url)
    async with connection(url, vector=False) as conn:
        await migrate(conn)
    return url


def session_url(settings: Settings, url: str) -> str:
    """Where a connection that holds session state goes: DATABASE_SESSION_URL, else url unless it is pooled."""
    if settings.database_session_url:
        return settings.database_session_url
    if url in _TRANSACTION_POOLED:
        raise SettingsError(
            "DATABASE_SESSION_URL is needed with PAPERS_DB_POOLER=pgbouncer: the worker holds a lock on each job "
            "for the whole job, which a transaction-mode pool cannot keep (PostgreSQL itself, or a session-mode pool)"
        )
    return url
