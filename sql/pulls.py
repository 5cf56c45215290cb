"""Pull bookkeeping: the validators each URL last answered with, and the schedule's claimed slots."""

from __future__ import annotations

import asyncpg
import msgspec


class UrlState(msgspec.Struct, frozen=True):
    """What a URL answered last: the validators for a conditional request, and the body's hash."""

    etag: str | None
    last_modified: str | None
    content_sha256: str | None


async def state(conn: asyncpg.Connection, url: str) -> UrlState | None:
    """The last answer recorded for url, if any."""
    row = await conn.fetchrow("SELECT etag, last_modified, content_sha256 FROM pull_state WHERE url = $1", url)
    return UrlState(row["etag"], row["last_modified"], row["content_sha256"]) if row else None


async def record(conn: asyncpg.Connection, url: str, status: int, new: UrlState | None) -> None:
    """Record an answer: a 200's validators and hash replace the old ones; a 304 only touches the time."""
    await conn.execute(
        """INSERT INTO pull_state (url, etag, last_modified, content_sha256, status) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (url) DO UPDATE SET status = excluded.status, fetched_at = now(),
               etag = CASE WHEN $6 THEN excluded.etag ELSE pull_state.etag END,
               last_modified = CASE WHEN $6 THEN excluded.last_modified ELSE pull_state.last_modified END,
               content_sha256 = CASE WHEN $6 THEN excluded.content_sha256 ELSE pull_state.content_sha256 END""",
        url,
        new.etag if new else None,
        new.last_modified if new else None,
        new.content_sha256 if new else None,
        status,
        new is not None,
    )


async def claim_slot(conn: asyncpg.Connection, name: str, slot: int) -> bool:
    """Claim one interval of a scheduled pull; exactly one caller per (name, slot) gets True."""
    inserted = await conn.fetchval(
        "INSERT INTO pull_runs (name, slot) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true", name, slot
    )
    return bool(inserted)


async def note_job(conn: asyncpg.Connection, name: str, slot: int, job_id: str) -> None:
    """Remember which job runs a claimed slot."""
    await conn.execute("UPDATE pull_runs SET job_id = $3 WHERE name = $1 AND slot = $2", name, slot, job_id)
