"""A local HTTP server that replays recorded answers, for `papers pull` tests (tests never use the network).

Each path (with its query) has a list of answers, given in order; the last one repeats. Every
request is recorded with its headers, so tests see what the client sent.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import NamedTuple


class Answer(NamedTuple):
    """One recorded answer."""

    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None


class Request(NamedTuple):
    """One request the server saw."""

    path: str
    headers: dict[str, str]


class Replay:
    """The recorded answers by path, and the requests seen."""

    def __init__(self, answers: dict[str, list[Answer]]) -> None:
        self.answers = {path: list(seq) for path, seq in answers.items()}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.base = ""

    def next_answer(self, path: str) -> Answer:
        with self.lock:
            queue = self.answers.get(path)
            if not queue:
                return Answer(404, b"no recorded answer for " + path.encode())
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@contextlib.contextmanager
def replaying(answers: dict[str, list[Answer]]) -> Iterator[Replay]:
    """Serve the recorded answers on a free local port; yields the Replay with its base URL set."""
    replay = Replay(answers)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with replay.lock:
                replay.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}))
            answer = replay.next_answer(self.path)
            self.send_response(answer.status)
            for name, value in (answer.headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    replay.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
