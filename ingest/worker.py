"""The ingest worker: takes queued jobs, ingests them, retries failures with backoff, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

import asyncpg
import msgspec

from ingest.embed import embed_pending
from ingest.embedder import Embedder, EmbeddingError
from ingest.pipeline import Source, ingest_source
from schema.errors import DatabaseUnavailableError, SpaceMismatchError
from sql import jobs
from sql.db import CONNECTION_LOST, connect

log = logging.getLogger("papers.worker")


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=5)
    except (TimeoutError, *CONNECTION_LOST):
        conn.terminate()


class Worker:
    """Processes `ingest_jobs` one at a time; several workers can run side by side."""

    def __init__(
        self,
        url: str,
        *,
        poll_seconds: float = 1.0,
        backoff_seconds: float = 2.0,
        name: str | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.url = url
        self.embedder = embedder
        self.poll_seconds = poll_seconds
        self.backoff_seconds = backoff_seconds
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask the worker to finish its current job and exit."""
        self._stop.set()

    async def run(self, *, once: bool = False) -> int:
        """Process jobs until stopped (or, with once, until the queue is empty); return how many ran."""
        done = 0
        while not self._stop.is_set():
            try:
                conn = await connect(self.url)
            except DatabaseUnavailableError as exc:
                if once:
                    raise
                log.warning("%s; retrying", exc)
                await self._sleep()
                continue
            try:
                done += await self._drain(conn, once)
                if once or self._stop.is_set():
                    break
            except CONNECTION_LOST as exc:
                # A job left 'running' by a lost session is taken over once its advisory lock is gone.
                log.warning("database connection lost (%s); reconnecting", exc)
                await self._sleep()
            finally:
                await _close_quietly(conn)
        return done

    async def _drain(self, conn: asyncpg.Connection, once: bool) -> int:
        done = 0
        while not self._stop.is_set():
            job = await jobs.claim(conn, self.name)
            if job is None:
                if once:
                    break
                await self._sleep()
                continue
            await self._run_job(conn, job)
            done += 1
        return done

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=self.poll_seconds)

    async def _run_job(self, conn: asyncpg.Connection, job: jobs.Job) -> None:
        try:
            result = await ingest_source(conn, Source(job.source, job.payload), fmt=job.format, year=job.year)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded on the job and retried with backoff
            log.warning("job %s failed (attempt %d): %s", job.public_id, job.attempts, exc)
            await jobs.fail(conn, job, f"{type(exc).__name__}: {exc}", backoff_seconds=self.backoff_seconds)
            return
        if result.error is not None:
            # Input that is not a listing will not parse on retry either.
            await jobs.fail(conn, job, result.error.message, result=msgspec.to_builtins(result), final=True)
        else:
            await jobs.complete(conn, job, msgspec.to_builtins(result))
        log.info("job %s done: %s", job.public_id, result)
        await self._embed(conn)

    async def _embed(self, conn: asyncpg.Connection) -> None:
        """Embed what the job added; a failure is recorded on the papers and retried after the next job."""
        if self.embedder is not None:
            try:
                report = await embed_pending(conn, self.embedder)
            except (EmbeddingError, SpaceMismatchError) as exc:
                log.warning("embedding skipped: %s", exc)
            else:
                log.info("embedded %d papers (%d failed)", report.embedded, report.failed)


def install_signal_handlers(worker: Worker) -> None:
    """Stop gracefully on SIGTERM and SIGINT."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
