"""Nothing assumes one process: API processes share one rate limit through Redis, and worker processes share the
queue without doing a job twice."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import ClassVar

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from ingest.pipeline import Source, ingest_source
from sql import jobs
from tests import apps, factories
from tests.embedders import HashEmbedder
from tests.redis_server import redis_server
from tests.servers import serving

LIMIT = 20


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(("storage", "allowed"), [("redis", LIMIT), ("memory://", 2 * LIMIT)])
def test_api_processes_behind_one_shared_store_enforce_one_limit(fresh_db, storage, allowed):
    """Two `papers serve` processes (one of them with two granian workers) count one client together in Redis;
    counting in memory, each process lets the client make the whole limit (the reason --workers refuses it)."""
    with redis_server() as redis:
        env = {
            "PAPERS_RATE_LIMIT": f"{LIMIT}/hour",
            "PAPERS_RATE_LIMIT_STORAGE": redis if storage == "redis" else storage,
        }
        first_command = ("serve", "--workers", "2") if storage == "redis" else ("serve",)
        with serving(fresh_db, *first_command, **env) as (a, _, _), serving(fresh_db, **env) as (b, _, _):
            statuses = [_status(f"{base}/v1/papers?limit=1") for _ in range(2 * LIMIT) for base in (a, b)]
    assert statuses.count(200) == allowed
    assert statuses.count(429) == 4 * LIMIT - allowed


def test_serve_refuses_several_workers_that_would_each_count_in_memory(fresh_db):
    env = {**os.environ, "DATABASE_URL": fresh_db, "PAPERS_RATE_LIMIT": "5/second", "PAPERS_RATE_LIMIT_STORAGE": ""}
    refused = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "PAPERS_RATE_LIMIT_STORAGE: memory:// counts in each process" in refused.stderr


async def test_an_unreachable_limit_store_lets_requests_through_uncounted(fresh_db, caplog):
    app = create_app(apps.settings(rate_limit="1/minute", rate_limit_storage=_refusing_url()), database_url=fresh_db)
    async with AsyncTestClient(app) as client:
        answers = [await client.get("/v1/papers?limit=1") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert "ratelimit" not in answers[0].headers
    assert "rate-limit store unavailable" in caplog.text


def _refusing_url() -> str:
    """A redis:// URL of a local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}"


async def _sessions(conn, database: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
        )
    )


async def test_worker_processes_share_the_queue_and_never_run_a_job_twice(conn, fresh_db):
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--poll", "0.1"],
            env={**os.environ, "DATABASE_URL": fresh_db},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        database = await conn.fetchval("SELECT current_database()")
        deadline = time.monotonic() + 60
        while await _sessions(conn, database) < 2:  # both are up and polling before the work arrives
            assert time.monotonic() < deadline, "the workers did not connect"
            await asyncio.sleep(0.1)
        ids = [
            await jobs.enqueue(
                conn, f"p{k}.txt", factories.page([factories.paper(k)], label=f"May {k % 28 + 1}").encode()
            )
            for k in range(40)
        ]
        while await conn.fetchval("SELECT count(*) FROM ingest_jobs WHERE status <> 'done'"):
            assert time.monotonic() < deadline + 60, "the queue was not drained"
            await asyncio.sleep(0.1)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [w.wait(timeout=30) for w in workers] == [0, 0]
    rows = await conn.fetch("SELECT public_id, attempts, worker FROM ingest_jobs")
    assert sorted(r["public_id"] for r in rows) == sorted(ids)
    assert {r["attempts"] for r in rows} == {1}  # no job was claimed twice
    assert len({r["worker"] for r in rows}) == 2  # both made progress
    assert await conn.fetchval("SELECT count(*) FROM listings") == 40


class _Embeddings(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/embeddings that remembers every text it was asked to embed."""

    texts: ClassVar[list[str]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.lock:
            self.texts.extend(body["input"])
        vectors = [HashEmbedder().vector(text).tolist() for text in body["input"]]
        answer = json.dumps({"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        return None


async def test_worker_processes_share_the_embedding_backlog_without_embedding_a_paper_twice(conn, fresh_db):
    for k in range(6):
        page = factories.page([factories.paper(40 * k + i) for i in range(40)], label=f"Jun {k + 1}")
        await ingest_source(conn, Source(f"jun{k}.txt", page.encode()))
    papers = await conn.fetchval("SELECT count(*) FROM papers")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "DATABASE_URL": fresh_db,
        "PAPERS_EMBEDDER": "openai",
        "PAPERS_EMBEDDING_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "PAPERS_EMBEDDING_MODEL": "test/hash-bow",
        "PAPERS_EMBEDDING_DIM": "384",
    }
    try:
        command = [sys.executable, "-m", "api.cli", "worker", "--once", "--poll", "0.1"]
        workers = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in "ab"
        ]
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
    finally:
        server.shutdown()
    assert await conn.fetchval("SELECT count(*) FROM papers WHERE embedding IS NOT NULL") == papers
    assert len(_Embeddings.texts) == len(set(_Embeddings.texts)) == papers  # each paper embedded once, by one worker
