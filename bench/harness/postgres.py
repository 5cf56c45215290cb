"""A temporary embedded PostgreSQL for one benchmark run, removed on exit (SIGTERM included)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sql.db import connection
from sql.embedded import EmbeddedPostgres
from sql.migrate import migrate


@dataclasses.dataclass
class TempPostgres:
    """A running temporary server: its URL, data directory and working directory for the run's files."""

    url: str
    pgdata: Path
    workdir: Path
    _databases: int = 0

    @property
    def pid(self) -> int:
        """The postmaster's pid."""
        return int((self.pgdata / "postmaster.pid").read_text().split()[0])

    @property
    def socket_dir(self) -> str:
        """The directory of the server's Unix socket."""
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)["host"][0]

    @property
    def log(self) -> Path:
        """The server's log file."""
        return self.pgdata / "log"

    def database(self, name: str) -> str:
        """The URL of another database on this server."""
        return urllib.parse.urlunsplit(urllib.parse.urlsplit(self.url)._replace(path="/" + name))

    async def fresh_database(self) -> str:
        """Create an empty, migrated database; return its URL."""
        self._databases += 1
        name = f"bench_{os.getpid()}_{self._databases}"
        await sql(self.url, f"CREATE DATABASE {name}")
        url = self.database(name)
        async with connection(url, vector=False) as conn:
            await migrate(conn)
        return url


async def sql(url: str, *statements: str) -> list[Any]:
    """Run statements on their own connection; return each one's first value."""
    async with connection(url, vector=False) as conn:
        return [await conn.fetchval(statement) for statement in statements]


def _raise_on_term(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


@contextlib.contextmanager
def temp_postgres(prefix: str = "papers-bench-") -> Iterator[TempPostgres]:
    """Start an embedded PostgreSQL in a temporary directory; stop and delete it on the way out."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_on_term)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(root)
    try:
        url = server.start()
        yield TempPostgres(url, server.pgdata, root)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
