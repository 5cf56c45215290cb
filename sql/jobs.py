"""The ingest job queue: enqueue, claim (SKIP LOCKED plus a per-job advisory lock), complete, fail."""

from __future__ import annotations

import json
import uuid

import asyncpg

from schema.jobs import Job
from sql.embeddings import MAX_ATTEMPTS as EMBEDDING_ATTEMPTS

# Advisory-lock class id for jobs: a job's lock is held by the session of the worker running it,
# so a job whose worker died (its session ended) can be taken over, and a live one never is.
JOB_LOCK_CLASS = 7301
MAX_BACKOFF_SECONDS = 300.0
CHANNEL = "ingest_jobs"

_COLUMNS = """job_key AS key, public_id, source, format, year, payload, status, attempts, max_attempts,
              last_error, result, created_at, finished_at"""


def _job(row: asyncpg.Record) -> Job:
    data = dict(row)
    if isinstance(data["result"], str):
        data["result"] = json.loads(data["result"])
    return Job(**data)


def _lock_id(key: int) -> int:
    return key % 2_147_483_647


async def enqueue(
    conn: asyncpg.Connection,
    source: str,
    payload: bytes,
    *,
    fmt: str | None = None,
    year: int | None = None,
    max_attempts: int = 5,
) -> str:
    """Queue one raw input for the workers and return the job's public id."""
    public_id = "job_" + uuid.uuid4().hex[:20]
    await conn.execute(
        """INSERT INTO ingest_jobs (public_id, source, format, year, payload, max_attempts)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        public_id,
        source,
        fmt,
        year,
        payload,
        max_attempts,
    )
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, public_id)
    return public_id


async def get(conn: asyncpg.Connection, public_id: str) -> Job | None:
    """One job by public id."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM ingest_jobs WHERE public_id = $1", public_id)
    return _job(row) if row else None


async def claim(conn: asyncpg.Connection, worker: str) -> Job | None:
    """Take the next runnable job, or None; the caller must later complete() or fail() it on this connection."""
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT job_key, status, attempts, max_attempts FROM ingest_jobs
               WHERE (status = 'queued' AND run_after <= now()) OR status = 'running'
               ORDER BY run_after, job_key LIMIT 32 FOR UPDATE SKIP LOCKED"""
        )
        for row in rows:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", JOB_LOCK_CLASS, _lock_id(row["job_key"])):
                continue  # a live worker is running it
            if row["status"] == "running" and row["attempts"] >= row["max_attempts"]:
                await _finish(conn, row["job_key"], "failed", "the worker died during every attempt", None)
                continue
            job = await conn.fetchrow(
                f"""UPDATE ingest_jobs SET status = 'running', attempts = attempts + 1, worker = $2,
                           started_at = now(), run_after = now()
                    WHERE job_key = $1 RETURNING {_COLUMNS}""",
                row["job_key"],
                worker,
            )
            assert job is not None  # the row is locked FOR UPDATE above
            return _job(job)
    return None


async def _finish(conn: asyncpg.Connection, key: int, status: str, error: str | None, result: dict | None) -> None:
    await conn.execute(
        """UPDATE ingest_jobs SET status = $2, last_error = $3, result = $4::jsonb, finished_at = now()
           WHERE job_key = $1""",
        key,
        status,
        error,
        json.dumps(result) if result is not None else None,
    )
    await conn.execute("SELECT pg_advisory_unlock($1, $2)", JOB_LOCK_CLASS, _lock_id(key))


async def complete(conn: asyncpg.Connection, job: Job, result: dict) -> None:
    """Mark a claimed job done with its result."""
    await _finish(conn, job.key, "done", None, result)


async def fail(
    conn: asyncpg.Connection,
    job: Job,
    error: str,
    *,
    result: dict | None = None,
    final: bool = False,
    backoff_seconds: float = 2.0,
) -> None:
    """Record a failure: requeue with exponential backoff, or mark failed when final or out of attempts."""
    if final or job.attempts >= job.max_attempts:
        await _finish(conn, job.key, "failed", error, result)
        return
    delay = min(backoff_seconds * 2 ** (job.attempts - 1), MAX_BACKOFF_SECONDS)
    await conn.execute(
        """UPDATE ingest_jobs SET status = 'queued', last_error = $2,
                  run_after = now() + make_interval(secs => $3)
           WHERE job_key = $1""",
        job.key,
        error,
        delay,
    )
    await conn.execute("SELECT pg_advisory_unlock($1, $2)", JOB_LOCK_CLASS, _lock_id(job.key))


async def papers_to_embed(conn: asyncpg.Connection, listing_ids: list[str]) -> int:
    """How many papers of these listings still wait for an embedding (retries left)."""
    return int(
        await conn.fetchval(
            """SELECT count(DISTINCT p.paper_key) FROM listings l JOIN listing_entries e USING (listing_key)
               JOIN papers p USING (paper_key)
               WHERE l.public_id = ANY($1::text[]) AND p.embedding IS NULL AND p.embedding_attempts < $2""",
            listing_ids,
            EMBEDDING_ATTEMPTS,
        )
    )
