"""The worker under bad input and backlogs: input errors fail at once, embedding never starves jobs, stops are quick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

import ingest.worker
from api.services.submissions import job_status
from ingest.worker import STOP_GRACE_SECONDS, UNEXPECTED, Worker
from schema.errors import UNSTORABLE
from sql import jobs
from tests import factories
from tests.embedders import HashEmbedder
from tests.integration.test_worker import enqueue_pages, stored_job


class SlowEmbedder(HashEmbedder):
    """A model that takes its time per batch, and records when each batch was asked for."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.batches: list[float] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(time.monotonic())
        await asyncio.sleep(self.seconds)
        return await super().embed(texts)


async def test_input_errors_fail_at_once_with_a_public_message(conn, fresh_db, monkeypatch):
    [job_id] = await enqueue_pages(conn, 1)

    async def unstorable(*args, **kwargs):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(ingest.worker, "ingest_source", unstorable)
    await Worker(fresh_db, poll_seconds=0.01).run(once=True)
    job = await stored_job(conn, job_id)
    assert (job.status, job.attempts, job.last_error) == ("failed", 1, UNSTORABLE)


async def test_unexpected_errors_are_retried_without_showing_internals(conn, fresh_db, monkeypatch):
    [job_id] = await enqueue_pages(conn, 1)

    async def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail at 0x7f00")

    monkeypatch.setattr(ingest.worker, "ingest_source", broken)
    await Worker(fresh_db, poll_seconds=0.01, backoff_seconds=0.01).run(once=True)
    job = await stored_job(conn, job_id)
    assert job.status == "queued"  # retried later, with backoff
    assert job.last_error == UNEXPECTED
    assert "secret" not in (job.last_error or "")


async def test_an_embedding_backlog_does_not_keep_jobs_waiting(conn, fresh_db):
    backlog = factories.jsonl([{"title": factories.paper(i)[0], "abstract": factories.paper(i)[1]} for i in range(200)])
    await jobs.enqueue(conn, "backlog.jsonl", backlog.encode())
    await Worker(fresh_db, poll_seconds=0.01).run(once=True)  # no embedder: 200 papers wait for vectors
    embedder = SlowEmbedder(0.2)
    worker = Worker(fresh_db, poll_seconds=0.01, embedder=embedder)
    runner = asyncio.create_task(worker.run())
    while len(embedder.batches) < 2:  # the worker is working through the backlog
        await asyncio.sleep(0.01)
    [job_id] = await enqueue_pages(conn, 1)
    queued = time.monotonic()
    while (await stored_job(conn, job_id)).status != "done":
        await asyncio.sleep(0.01)
    done = time.monotonic()
    left = await conn.fetchval("SELECT count(*) FROM papers WHERE embedding IS NULL")
    worker.stop()
    await runner
    assert left > 0, "the job waited for the whole backlog"
    assert done - queued < 2.0
    assert len([t for t in embedder.batches if queued <= t <= done]) <= 2  # at most one batch before the job


async def test_a_stop_request_is_honoured_within_seconds_whatever_the_worker_does(conn, fresh_db, monkeypatch):
    await enqueue_pages(conn, 1)

    async def endless(*args, **kwargs):
        await asyncio.sleep(3600)

    monkeypatch.setattr(ingest.worker, "ingest_source", endless)
    worker = Worker(fresh_db, poll_seconds=0.01)
    runner = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)  # the job is running
    asked = time.monotonic()
    worker.stop()
    await asyncio.wait_for(runner, timeout=STOP_GRACE_SECONDS + 2)
    assert time.monotonic() - asked < STOP_GRACE_SECONDS + 1


async def test_a_job_says_whether_its_papers_are_embedded(conn, fresh_db):
    [job_id] = await enqueue_pages(conn, 1)
    await Worker(fresh_db, poll_seconds=0.01).run(once=True)
    assert (await job_status(conn, job_id)).papers_to_embed == 2
    await Worker(fresh_db, poll_seconds=0.01, embedder=HashEmbedder()).run(once=True)
    assert (await job_status(conn, job_id)).papers_to_embed == 0
    [queued] = await enqueue_pages(conn, 1)
    assert (await job_status(conn, queued)).papers_to_embed is None


async def test_a_job_of_several_listing_days_counts_the_papers_of_all_of_them(conn, fresh_db):
    import json

    items = [
        {"title": title, "abstract": abstract, "date": day}
        for (title, abstract), day in zip(
            [factories.paper(i) for i in (71, 72, 73)], ["2024-03-11", "2024-03-11", "2024-03-12"], strict=True
        )
    ]
    payload = "\n".join(json.dumps(item) for item in items).encode()
    job_id = await jobs.enqueue(conn, "two-days.jsonl", payload, fmt="jsonl")
    await Worker(fresh_db, poll_seconds=0.01).run(once=True)
    status = await job_status(conn, job_id)
    assert status.status == "done", status
    assert status.result is not None
    assert len(status.result["listing_ids"]) == 2
    assert status.papers_to_embed == 3  # both days' papers, not only the first listing's
