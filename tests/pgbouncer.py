"""A real PgBouncer (the Debian package's binary) in front of a test database, as a deployment runs it."""

from __future__ import annotations

import configparser
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

SESSION_SUFFIX = "_session"  # the session-mode alias of each database, for connections that keep session state


def pgbouncer_binary() -> str:
    """The pgbouncer executable; the test skips, naming the package, where it is not installed."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.skip("pgbouncer is not installed (Debian package `pgbouncer`; `make test` installs it as root)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _backend(database_url: str) -> tuple[str, int, str, str]:
    """(host or socket directory, port, database, user) of a PostgreSQL URL."""
    parts = urllib.parse.urlsplit(database_url)
    host = urllib.parse.parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    port = parts.port
    if port is None and host.startswith("/"):  # a socket directory: its socket file names the port
        port = int(next(Path(host).glob(".s.PGSQL.*")).suffix.lstrip("."))
    return host, port or 5432, parts.path.lstrip("/"), parts.username or "postgres"


def _config(directory: Path, database_url: str, port: int, pool_size: int) -> Path:
    host, pg_port, database, user = _backend(database_url)
    target = f"host={host} port={pg_port} dbname={database} user={user}"
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
{database} = {target}
{database}{SESSION_SUFFIX} = {target} pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "userlist.txt"}
pool_mode = transaction
max_client_conn = 500
default_pool_size = {pool_size}
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
"""
    )
    return ini


SHIPPED_TARGET = "host=db port=5432 dbname=papers"  # where deploy/pgbouncer/pgbouncer.ini points (compose's `db`)
SHIPPED_PASSWORD = "not-a-secret"


def _shipped_config(directory: Path, shipped: Path, database_url: str, port: int) -> Path:
    """The deployment's own config, pointed at database_url and listening locally; otherwise as shipped."""
    host, pg_port, database, user = _backend(database_url)
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # type: ignore[assignment,method-assign]  # keep names as written (configparser's own hook)
    ini.read_string(shipped.read_text())
    for alias, spec in ini["databases"].items():
        assert SHIPPED_TARGET in spec, spec
        ini["databases"][alias] = spec.replace(
            SHIPPED_TARGET, f"host={host} port={pg_port} dbname={database} user={user}"
        )
    (directory / "userlist.txt").write_text(f'"{user}" "{SHIPPED_PASSWORD}"\n')
    ini["pgbouncer"].update(
        listen_addr="127.0.0.1",
        listen_port=str(port),
        auth_file=str(directory / "userlist.txt"),
        logfile=str(directory / "pgbouncer.log"),
        pidfile=str(directory / "pgbouncer.pid"),
    )
    path = directory / "pgbouncer.ini"
    with path.open("w") as out:
        ini.write(out)
    return path


@contextlib.contextmanager
def pgbouncer(
    database_url: str, *, pool_size: int = 4, binary: str | None = None, shipped: Path | None = None
) -> Iterator[tuple[str, str]]:
    """PgBouncer in transaction mode (pool_size server connections) in front of database_url: yields
    (transaction-mode URL, session-mode URL) of the same database, once it accepts connections. With
    `shipped`, that config file is run instead (its aliases `papers` and `papers_session`, password auth)."""
    binary = binary or pgbouncer_binary()
    directory = Path(tempfile.mkdtemp(prefix="papers-pgbouncer-"))
    port = _free_port()
    if shipped is not None:
        ini = _shipped_config(directory, shipped, database_url, port)
    else:
        ini = _config(directory, database_url, port, pool_size)
    command = [binary, str(ini)]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: run as the user that owns the embedded database
        owner = pwd.getpwuid(Path(_backend(database_url)[0]).stat().st_uid).pw_name
        shutil.chown(directory, owner)
        for path in directory.iterdir():
            shutil.chown(path, owner)
        command = [binary, "-u", owner, str(ini)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    _, _, database, user = _backend(database_url)
    base = f"postgresql://{user}@127.0.0.1:{port}/"
    if shipped is not None:
        base, database = f"postgresql://{user}:{SHIPPED_PASSWORD}@127.0.0.1:{port}/", "papers"
    try:
        _wait_listening(port, proc, directory / "pgbouncer.log")
        yield base + database, base + database + SESSION_SUFFIX
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            text = log.read_text() if log.exists() else "(no log)"
            raise AssertionError(f"pgbouncer did not start: {text}")
        time.sleep(0.1)
