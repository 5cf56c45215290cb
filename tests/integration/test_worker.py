"""The job queue and worker: exactly-once processing, retries, takeover of dead workers, SIGTERM."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time

import ingest.worker
from ingest.worker import UNEXPECTED, Worker
from sql import db, jobs
from tests import factories


async def stored_job(conn, public_id: str) -> jobs.Job:
    """The job as stored; it must exist."""
    job = await jobs.get(conn, public_id)
    assert job is not None, public_id
    return job


async def enqueue_pages(conn, count: int) -> list[str]:
    ids = []
    for k in range(count):
        text = factories.page([factories.paper(k), factories.paper(1000 + k)], label=f"Mar {k + 1}")
        ids.append(await jobs.enqueue(conn, f"page{k}.txt", text.encode()))
    return ids


async def test_concurrent_workers_never_run_a_job_twice(conn, fresh_db, monkeypatch):
    ids = await enqueue_pages(conn, 12)
    runs: collections.Counter[str] = collections.Counter()
    real = ingest.worker.ingest_source

    async def counting(connection, source, **kwargs):
        runs[source.name] += 1
        await asyncio.sleep(0.01)  # widen the window in which a second worker could grab the same job
        return await real(connection, source, **kwargs)

    monkeypatch.setattr(ingest.worker, "ingest_source", counting)
    done = await asyncio.gather(*(Worker(fresh_db, poll_seconds=0.05).run(once=True) for _ in range(3)))
    assert sum(done) == 12
    assert set(runs.values()) == {1}
    assert len(runs) == 12
    statuses = {(await stored_job(conn, i)).status for i in ids}
    assert statuses == {"done"}
    assert await conn.fetchval("SELECT count(*) FROM listings") == 12


async def test_failure_is_retried_with_backoff_then_succeeds(conn, fresh_db, monkeypatch):
    [job_id] = await enqueue_pages(conn, 1)
    real, calls = ingest.worker.ingest_source, []

    async def flaky(connection, source, **kwargs):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("a transient failure")
        return await real(connection, source, **kwargs)

    monkeypatch.setattr(ingest.worker, "ingest_source", flaky)
    worker = Worker(fresh_db, poll_seconds=0.02, backoff_seconds=0.3)
    assert await worker.run(once=True) == 1
    job = await stored_job(conn, job_id)
    assert (job.status, job.attempts, job.last_error) == ("queued", 1, UNEXPECTED)
    await asyncio.sleep(0.35)
    assert await worker.run(once=True) == 1
    job = await stored_job(conn, job_id)
    assert job.result is not None
    assert (job.status, job.attempts, job.result["entries"]) == ("done", 2, 2)
    assert calls[1] - calls[0] >= 0.3


async def test_attempts_run_out(conn, fresh_db, monkeypatch):
    job_id = await jobs.enqueue(conn, "x.txt", b"irrelevant", max_attempts=2)

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest.worker, "ingest_source", broken)
    worker = Worker(fresh_db, poll_seconds=0.01, backoff_seconds=0.01)
    for _ in range(2):
        await worker.run(once=True)
        await asyncio.sleep(0.05)
    job = await stored_job(conn, job_id)
    assert (job.status, job.attempts, job.last_error) == ("failed", 2, UNEXPECTED)


async def test_input_that_is_not_a_listing_fails_at_once(conn, fresh_db):
    job_id = await jobs.enqueue(conn, "notes.txt", b"hello\nworld\n")
    await Worker(fresh_db).run(once=True)
    job = await stored_job(conn, job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.last_error is not None
    assert "no title and abstract pairs" in job.last_error


async def test_job_of_a_dead_worker_is_taken_over_but_a_live_one_is_not(conn, fresh_db):
    [job_id] = await enqueue_pages(conn, 1)
    live = await db.connect(fresh_db)
    claimed = await jobs.claim(live, "live-worker")
    assert claimed is not None
    assert claimed.public_id == job_id
    assert claimed.status == "running"
    other = await db.connect(fresh_db)
    try:
        assert await jobs.claim(other, "other") is None  # the live worker still holds it
    finally:
        await other.close()
    live.terminate()  # the worker's session dies without finishing the job
    await asyncio.sleep(0.2)
    assert await Worker(fresh_db).run(once=True) == 1
    job = await stored_job(conn, job_id)
    assert (job.status, job.attempts) == ("done", 2)


def test_worker_stops_gracefully_on_sigterm(fresh_db):
    env = {**os.environ, "DATABASE_URL": fresh_db}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker", "--poll", "0.1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None  # stderr=PIPE
    time.sleep(2.0)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "worker stopped after 0 job(s)" in proc.stderr.read()
