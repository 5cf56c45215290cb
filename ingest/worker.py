"""The ingest worker: queued jobs and embedding batches, interleaved, until it is told to stop.

Each step is one unit of work committed on its own: a job (one listing, one transaction) or one
batch of papers embedded. Jobs and batches alternate, so an embedding backlog never keeps queued
jobs waiting, and a stop request is honoured between steps, or, when a step is still running
after STOP_GRACE_SECONDS, by cancelling it (its transaction rolls back; a cancelled job is taken
over by the next worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

import asyncpg
import msgspec

from ingest.embed import embed_one_batch
from ingest.embedder import Embedder
from ingest.pipeline import Source, ingest_source
from ingest.pull import Fetcher, pull
from schema.errors import DatabaseUnavailableError, DomainError, UnavailableError
from schema.pull import PullSettings, PullTarget
from sql import jobs
from sql import pulls as sql_pulls
from sql.db import CONNECTION_LOST, as_domain_error, connect

log = logging.getLogger("papers.worker")
STOP_GRACE_SECONDS = 3.0
UNEXPECTED = "ingest failed unexpectedly; the worker's log has the details"
PULL_FORMAT = "pull"  # a job whose payload names a pull target instead of holding a listing


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except (TimeoutError, asyncio.CancelledError, *CONNECTION_LOST):
        conn.terminate()


class Worker:
    """Processes `ingest_jobs` and embeds pending papers; several workers can run side by side."""

    def __init__(
        self,
        url: str,
        *,
        poll_seconds: float = 1.0,
        backoff_seconds: float = 2.0,
        name: str | None = None,
        embedder: Embedder | None = None,
        pulls: PullSettings | None = None,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.embedder = embedder
        self.pulls = pulls or PullSettings()
        self._fetcher = fetcher
        self.clock = clock  # the wall clock that places a scheduled pull in its interval
        self.poll_seconds = poll_seconds
        self.backoff_seconds = backoff_seconds
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = asyncio.Event()
        self._task: asyncio.Task[int] | None = None

    def stop(self) -> None:
        """Stop after the current step, or cancel it when it is still running after the grace period."""
        self._stop.set()
        if self._task is not None:
            asyncio.get_running_loop().call_later(STOP_GRACE_SECONDS, self._task.cancel)

    async def run(self, *, once: bool = False) -> int:
        """Work until stopped (or, with once, until no job is queued and nothing waits to be embedded)."""
        self._task = asyncio.current_task()
        done = 0
        try:
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
                    if once:
                        break
                except CONNECTION_LOST as exc:
                    # A job left 'running' by a lost session is taken over once its advisory lock is gone.
                    log.warning("database connection lost (%s); reconnecting", exc)
                    await self._sleep()
                finally:
                    await _close_quietly(conn)
        except asyncio.CancelledError:
            if not self._stop.is_set():
                raise
            log.warning("stopped in the middle of a step; its work was rolled back")
        finally:
            if self._fetcher is not None:
                await self._fetcher.aclose()
                self._fetcher = None
        return done

    async def _drain(self, conn: asyncpg.Connection, once: bool) -> int:
        done = 0
        while not self._stop.is_set():
            await self.schedule_pulls(conn)
            job = await jobs.claim(conn, self.name)
            if job is not None:
                await self._run_job(conn, job)
                done += 1
            embedded = await self._embed_batch(conn) if not self._stop.is_set() else 0
            if job is None and not embedded:
                if once:
                    break
                await self._sleep()
        return done

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=self.poll_seconds)

    async def schedule_pulls(self, conn: asyncpg.Connection, now: float | None = None) -> list[str]:
        """Queue each scheduled pull whose current interval no worker has claimed yet; the job ids queued.

        The claim (one row per pull and interval) and the job commit together, so among any number of
        workers exactly one queues each interval's pull, and a crash in between queues nothing twice.
        """
        queued = []
        for scheduled in self.pulls.schedule:
            slot = int((self.clock() if now is None else now) // scheduled.every_seconds)
            name = scheduled.target.name
            async with conn.transaction():
                if await sql_pulls.claim_slot(conn, name, slot):
                    job_id = await jobs.enqueue(conn, f"pull {name}", name.encode(), fmt=PULL_FORMAT)
                    await sql_pulls.note_job(conn, name, slot, job_id)
                    queued.append(job_id)
        return queued

    async def _run_pull(self, conn: asyncpg.Connection, job: jobs.Job) -> None:
        """Run a queued pull; a site that does not answer makes the job retry with backoff."""
        if self._fetcher is None:
            self._fetcher = Fetcher(self.pulls)
        result = await pull(conn, self._fetcher, PullTarget.parse(job.payload.decode()))
        await jobs.complete(conn, job, msgspec.to_builtins(result))
        log.info("pull %s: %s", job.public_id, result.describe())

    async def _run_job(self, conn: asyncpg.Connection, job: jobs.Job) -> None:
        try:
            if job.format == PULL_FORMAT:
                await self._run_pull(conn, job)
                return
            result = await ingest_source(conn, Source(job.source, job.payload), fmt=job.format, year=job.year)
        except CONNECTION_LOST:
            raise  # transient: the job is retried when the worker is back (its advisory lock went with the session)
        except Exception as exc:  # noqa: BLE001 - recorded on the job: input errors at once, the rest with retries
            await self._failed(conn, job, exc)
            return
        if result.error is not None:
            # Input that is not a listing will not parse on retry either.
            await jobs.fail(conn, job, result.error.message, result=msgspec.to_builtins(result), final=True)
        else:
            await jobs.complete(conn, job, msgspec.to_builtins(result))
        log.info("job %s done: %s", job.public_id, result)

    async def _failed(self, conn: asyncpg.Connection, job: jobs.Job, exc: Exception) -> None:
        """Record a failed job: a client's error fails it at once with its message; anything else is retried."""
        known = as_domain_error(exc)
        if known is not None and not isinstance(known, UnavailableError):
            log.info("job %s refused: %s", job.public_id, known.message)
            await jobs.fail(conn, job, known.message, final=True)
            return
        log.warning("job %s failed (attempt %d)", job.public_id, job.attempts, exc_info=exc)
        message = known.message if isinstance(known, DomainError) else UNEXPECTED
        await jobs.fail(conn, job, message, backoff_seconds=self.backoff_seconds)

    async def _embed_batch(self, conn: asyncpg.Connection) -> int:
        """Embed one batch of pending papers; how many it took (failures are recorded and retried later)."""
        if self.embedder is None:
            return 0
        try:
            report = await embed_one_batch(conn, self.embedder)
        except DomainError as exc:  # a model that cannot load, stored vectors of another model
            log.warning("embedding skipped: %s", exc.message)
            return 0
        if report.embedded or report.failed:
            log.info("embedded %d papers (%d failed)", report.embedded, report.failed)
        return report.embedded + report.failed


def install_signal_handlers(worker: Worker) -> None:
    """Stop on SIGTERM and SIGINT."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
