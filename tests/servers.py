"""The API as a user runs it: `papers serve` in a subprocess on a free local port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator


@contextlib.contextmanager
def serving(database_url: str, *command: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`papers serve` (or `papers <command>`) on a free local port over database_url: yields (base URL, process)
    once /readyz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", *(command or ("serve",)), "--port", str(port)],
        env={**os.environ, "DATABASE_URL": database_url, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: granian's workers (and a demo's) go with it
    )
    assert proc.stderr is not None  # stderr=PIPE
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"the server did not become ready: {proc.stderr.read()}") from None
                time.sleep(0.2)
        yield base, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
