"""What the slow system checks share: an invented corpus, child processes in their own group, a load loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from ingest.embed import embed_pending
from ingest.embedder import LOCAL_MODEL, OnnxEmbedder
from ingest.onnx_model import QUANTIZATION
from ingest.pipeline import Source, ingest_source
from sql import db
from tests import factories
from tests.embedders import HashEmbedder

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
REQUEST_TIMEOUT_S = 10.0
# A 500 logged by the REST problem handler, or a GraphQL field that failed on the server.
UNHANDLED = re.compile(r"unhandled error on [A-Z]+ \S+|graphql: unexpected error at .*")

Listing = tuple[str, bytes]
Request = tuple[str, str, str, Any]  # label, method, path, JSON body or None


def corpus(papers: int, per_listing: int = 100, step: int = 50) -> list[Listing]:
    """JSONL listings over `papers` invented papers; neighbouring listings share per_listing - step papers."""
    listings = []
    for k, start in enumerate(range(0, papers, step)):
        day = (dt.date(2024, 1, 1) + dt.timedelta(days=k)).isoformat()
        rows = [
            {"title": title, "abstract": abstract, "listed_on": day}
            for title, abstract in (
                factories.paper(i, words=40) for i in range(start, min(start + per_listing, papers))
            )
        ]
        listings.append((f"listing{k:04d}.jsonl", factories.jsonl(rows).encode()))
    return listings


class StandInVectors(HashEmbedder):
    """Bag-of-words vectors filed under the local model's space, so similar papers and hybrid search work on a
    server running that model without embedding the corpus with it first (scores are meaningless, paths real)."""

    model = LOCAL_MODEL
    backend = OnnxEmbedder.backend
    quantization = QUANTIZATION


async def load(url: str, listings: list[Listing], *, vectors: bool = False) -> int:
    """Ingest the listings (and store stand-in vectors); return how many papers are stored."""
    async with db.connection(url) as conn:
        for name, raw in listings:
            result = await ingest_source(conn, Source(name, raw))
            assert result.error is None, result.error
        if vectors:
            await embed_pending(conn, StandInVectors())
        await conn.execute("ANALYZE")  # as autovacuum would soon after a bulk load: plans see real sizes
        return await conn.fetchval("SELECT count(*) FROM papers")


async def sample(url: str, n: int = 200) -> tuple[list[str], list[str], list[str]]:
    """Some paper ids, their titles and some listing ids of the loaded corpus (deterministic)."""
    async with db.connection(url, vector=False) as conn:
        papers = await conn.fetch("SELECT public_id, title FROM papers ORDER BY md5(public_id) LIMIT $1", n)
        listings = await conn.fetch("SELECT public_id FROM listings ORDER BY md5(public_id) LIMIT 20")
    return [r["public_id"] for r in papers], [r["title"] for r in papers], [r["public_id"] for r in listings]


# --- processes ---------------------------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: this one without proxies (everything is 127.0.0.1), plus extra."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    return {**env, "NO_PROXY": f"{HOST},localhost", "no_proxy": f"{HOST},localhost", **extra}


def start(args: list[str], log: Path, *, env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen:
    """A child in a process group of its own, its output appended to log (a pipe nobody reads would fill up)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen, grace: float = 15.0) -> int | None:
    """SIGTERM the child's group, SIGKILL whatever is left of it after grace; return the child's exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (granian's worker processes)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    return proc.returncode


@contextlib.contextmanager
def running(args: list[str], log: Path, *, env: dict[str, str], cwd: Path = ROOT) -> Iterator[subprocess.Popen]:
    """start() on entry, stop() on exit, whatever happened in between."""
    proc = start(args, log, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        stop(proc, grace=5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(database_url: str, log: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`papers serve` over database_url, logging to log: yields (base URL, process) once /readyz answers 200."""
    port = free_port()
    args = [sys.executable, "-m", "api.cli", "serve", "--host", HOST, "--port", str(port)]
    with running(args, log, env=child_env(DATABASE_URL=database_url, **env)) as proc:
        base = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 90
        while not _ready(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"papers serve did not become ready:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield base, proc


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


async def wait_semantic(base: str, timeout: float = 180.0) -> None:
    """Wait until the server's embedding model has loaded (a semantic search answers 200)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30) as client:
        while time.monotonic() < deadline:
            response = await client.get("/v1/search", params={"q": "sparse routing", "mode": "semantic", "limit": 1})
            if response.status_code == 200:
                return
            await asyncio.sleep(1.0)
    raise AssertionError(f"the embedding model did not load in {timeout:.0f} s")


def unhandled(log: Path) -> list[str]:
    """The distinct unhandled errors the server logged."""
    return sorted(set(UNHANDLED.findall(log.read_text(errors="replace"))))[:20]


def tree_rss_kib(pid: int) -> int:
    """Resident memory (KiB) of pid and all its descendants (granian serves from a child process)."""
    parents: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text(), re.M)
            total += int(match.group(1)) if match else 0
        todo.extend(parents.get(p, []))
    return total


# --- load --------------------------------------------------------------------------------------------------------


class Hit(NamedTuple):
    """One request of the load loop: when it started and ended (time.monotonic()) and what came back."""

    start: float
    end: float
    label: str
    status: int | str  # an HTTP status, or "timeout" / "transport"
    problem: bool  # a problem+json body whose status matches (with Retry-After on a 503)
    graphql_errors: bool


def is_problem(response: httpx.Response) -> bool:
    """Whether the response is RFC 9457 problem+json with a matching status (and Retry-After on a 503)."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    matches = isinstance(body, dict) and body.get("status") == response.status_code and "title" in body
    return matches and (response.status_code != 503 or bool(response.headers.get("retry-after")))


async def _send(client: httpx.AsyncClient, request: Request) -> Hit:
    label, method, path, body = request
    t0 = time.monotonic()
    status: int | str
    problem = gql = False
    try:
        response = await client.request(method, path, json=body)
        status, problem = response.status_code, is_problem(response)
        gql = label.startswith("graphql") and b'"errors"' in response.content
    except httpx.TimeoutException:
        status = "timeout"
    except httpx.TransportError:
        status = "transport"
        await asyncio.sleep(0.05)  # a refused connection returns at once: do not spin
    return Hit(t0, time.monotonic(), label, status, problem, gql)


async def hammer(
    base: str, pick: Callable[[random.Random], Request], *, concurrency: int, stop: asyncio.Event, hits: list[Hit]
) -> None:
    """Send requests from `concurrency` loops until stop is set, appending a Hit per request."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def loop(k: int) -> None:
            rng = random.Random(k)
            while not stop.is_set():
                hits.append(await _send(client, pick(rng)))

        await asyncio.gather(*(loop(k) for k in range(concurrency)))
