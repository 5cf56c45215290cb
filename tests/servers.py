"""The API as a user runs it: `papers serve` in a subprocess on a free local port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def serving(database_url: str, *command: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """`papers serve` (or `papers <command>`) on a free local port over database_url: yields (base URL, process,
    its output file) once /readyz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Output goes to a file, not a pipe: a pipe nobody drains fills after ~64 KB of access-log lines and the
    # server then blocks on its next log write, which a test under load sees as requests that never answer.
    fd, name = tempfile.mkstemp(prefix="papers-serve-", suffix=".log")
    os.close(fd)
    log = Path(name)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *(command or ("serve",)), "--port", str(port)],
            env={**os.environ, "DATABASE_URL": database_url, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: granian's workers (and a demo's) go with it
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"the server did not become ready: {log.read_text()}") from None
                time.sleep(0.2)
        yield base, proc, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.unlink(missing_ok=True)
