"""Servers under test as subprocesses in their own session, stopped with their children on the way out."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.harness.meter import RssSampler
from bench.harness.postgres import TempPostgres
from bench.harness.tools import NODE_DIR, ensure_postgraphile

HOST = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http(url: str, body: Any = None, timeout: float = 10, method: str | None = None) -> tuple[int, Any]:
    """One request; (status, decoded JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def one_client(
    base: str, paths: dict[str, list[str]], rounds: int, *, warm: int | None = None, timeout: float = 10
) -> dict[str, list[float]]:
    """One client taking each named list's next request in turn, `rounds` times, after a checked warm-up of each
    list (its first `warm` paths; all by default): the milliseconds of every request, by name."""
    for name, lines in paths.items():
        for path in lines[:warm]:
            status, body = http(base + path, timeout=timeout)
            if status != 200:
                raise SystemExit(f"{name}: HTTP {status}: {str(body)[:300]}")
    ms: dict[str, list[float]] = {name: [] for name in paths}
    for n in range(rounds):
        for name, lines in paths.items():
            started = time.perf_counter()
            http(base + lines[n % len(lines)], timeout=timeout)
            ms[name].append((time.perf_counter() - started) * 1000)
    return ms


class Service:
    """A server subprocess: started until `ready()` holds, sampled for memory, stopped with its process group."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path, port: int) -> None:
        self.name, self.cmd, self.env, self.cwd, self.log, self.port = name, cmd, env, cwd, log, port
        self.base = f"http://{HOST}:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.memory: RssSampler | None = None
        self.started_s = 0.0

    @property
    def pid(self) -> int:
        """The server's pid (its process tree is what the meters read)."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready: Callable[[], bool], timeout: float = 120) -> None:
        """Start the process and wait until ready() holds."""
        started = time.monotonic()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.memory = RssSampler(self.proc.pid)
        self.memory.start()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    self.started_s = round(time.monotonic() - started, 1)
                    return
            time.sleep(0.25)
        raise SystemExit(f"{self.name} was not ready within {timeout:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        """The end of the server's log."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it does not go."""
        if self.memory is not None:
            self.memory.stop()
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this project's settings (nor proxies) and without rate limits, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERS_", "GRANIAN_", "DATABASE_URL"))}
    env = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    # A load generator is one client address: rate limits would measure themselves.
    return {**env, "PATH": f"{VENV_BIN}:{env.get('PATH', '')}", "PAPERS_RATE_LIMIT": "none", **extra}


@contextlib.contextmanager
def papers_server(
    pg: TempPostgres, url: str, *, workers: int = 1, name: str = "papers serve", **env: str
) -> Iterator[Service]:
    """`papers serve` over url, ready when /healthz answers."""
    port = free_port()
    cmd = [str(VENV_BIN / "papers"), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    service = Service(name, cmd, clean_env(DATABASE_URL=url, **env), ROOT, pg.workdir / f"server-{port}.log", port)
    try:
        service.start(lambda: http(service.base + "/healthz", timeout=2)[0] == 200)
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def postgraphile(pg: TempPostgres, url: str) -> Iterator[Service]:
    """PostGraphile 4 (npm, installed outside the repository) over the same database, one node process."""
    cli = ensure_postgraphile()
    port = free_port()
    database = urllib.parse.urlsplit(url).path.lstrip("/") or "postgres"
    conn = f"postgres://postgres@{urllib.parse.quote(pg.socket_dir, safe='')}/{database}"
    cmd = [
        "node",
        str(cli),
        "-c",
        conn,
        "-s",
        "public",
        "--host",
        HOST,
        "--port",
        str(port),
        "--disable-graphiql",
        "--disable-query-log",
    ]
    service = Service("postgraphile", cmd, clean_env(NODE_ENV="production"), NODE_DIR, pg.workdir / "pg.log", port)
    probe = {"query": "{ __typename }"}
    try:
        service.start(lambda: http(service.base + "/graphql", probe, timeout=2)[0] == 200)
        yield service
    finally:
        service.stop()
