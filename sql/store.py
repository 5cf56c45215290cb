"""The ingest write statements: a listing row, locked paper rows, new and merged papers, entries, rejects.

The caller (ingest/store.py) runs them in one transaction and decides what to write; nothing here
knows a merge rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from schema.ingest import EntryRow, ListingInput, PaperRecord, Reject

# Conflicts with a concurrent ingest of overlapping papers: the caller retries the whole transaction.
RETRYABLE = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


async def existing_listing(conn: asyncpg.Connection, sha256: str) -> str | None:
    """The public id of the listing already stored with this content, if any."""
    return await conn.fetchval("SELECT public_id FROM listings WHERE content_sha256 = $1", sha256)


async def insert_listing(conn: asyncpg.Connection, item: ListingInput, public_id: str) -> int | None:
    """Insert the listing row; None when the same content is already stored."""
    parsed = item.parsed
    return await conn.fetchval(
        """INSERT INTO listings (public_id, source, kind, date_label, listed_on, heading, content_sha256, raw)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (content_sha256) DO NOTHING RETURNING listing_key""",
        public_id,
        item.source,
        parsed.kind,
        parsed.date_label,
        item.listed_on,
        parsed.heading,
        item.sha256,
        item.raw,
    )


async def lock_papers(
    conn: asyncpg.Connection, fingerprints: Sequence[str], arxiv_ids: Sequence[str]
) -> list[PaperRecord]:
    """Load and row-lock the stored papers with these fingerprints or arXiv ids, in key order (no deadlocks)."""
    rows = await conn.fetch(
        """SELECT paper_key, public_id, fingerprint, title, abstract, abstract_from_arxiv, arxiv_id,
                  first_listed, last_listed
           FROM papers WHERE fingerprint = ANY($1::text[]) OR arxiv_id = ANY($2::text[])
           ORDER BY paper_key FOR UPDATE""",
        list(fingerprints),
        list(arxiv_ids),
    )
    return [
        PaperRecord(
            r["fingerprint"],
            r["public_id"],
            r["title"],
            r["abstract"],
            r["abstract_from_arxiv"],
            r["arxiv_id"],
            r["first_listed"],
            r["last_listed"],
            key=r["paper_key"],
        )
        for r in rows
    ]


async def insert_papers(conn: asyncpg.Connection, papers: Sequence[PaperRecord]) -> dict[str, int]:
    """Insert new papers; return their keys by fingerprint."""
    if not papers:
        return {}
    rows = await conn.fetch(
        """INSERT INTO papers (public_id, fingerprint, title, abstract, abstract_from_arxiv, arxiv_id,
                               first_listed, last_listed)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[],
                                $7::date[], $8::date[])
           RETURNING paper_key, fingerprint""",
        *_columns(
            papers,
            "public_id",
            "fingerprint",
            "title",
            "abstract",
            "from_arxiv",
            "arxiv_id",
            "first_listed",
            "last_listed",
        ),
    )
    return {row["fingerprint"]: row["paper_key"] for row in rows}


async def update_papers(conn: asyncpg.Connection, papers: Sequence[PaperRecord]) -> None:
    """Write back merged papers; a replaced canonical abstract stays on the entries that printed it."""
    if not papers:
        return
    await conn.execute(
        """UPDATE papers p SET abstract = u.abstract, abstract_from_arxiv = u.from_arxiv, arxiv_id = u.arxiv_id,
                  first_listed = u.first_listed, last_listed = u.last_listed, last_seen = now(),
                  -- a new canonical abstract makes the old vector stale: embed it again
                  embedding = CASE WHEN p.abstract = u.abstract THEN p.embedding END,
                  embedding_model = CASE WHEN p.abstract = u.abstract THEN p.embedding_model END,
                  embedding_attempts = CASE WHEN p.abstract = u.abstract THEN p.embedding_attempts ELSE 0 END
           FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::text[], $5::date[], $6::date[])
                AS u(paper_key, abstract, from_arxiv, arxiv_id, first_listed, last_listed)
           WHERE p.paper_key = u.paper_key""",
        *_columns(papers, "key", "abstract", "from_arxiv", "arxiv_id", "first_listed", "last_listed"),
    )
    replaced = [p for p in papers if p.old_abstract is not None]
    if replaced:
        await conn.execute(
            """UPDATE listing_entries e
               SET abstract_variant = CASE WHEN e.abstract_variant IS NULL THEN u.old
                                           WHEN e.abstract_variant = u.new THEN NULL
                                           ELSE e.abstract_variant END
               FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(paper_key, old, new)
               WHERE e.paper_key = u.paper_key AND (e.abstract_variant IS NULL OR e.abstract_variant = u.new)""",
            *_columns(replaced, "key", "old_abstract", "abstract"),
        )


def _columns(papers: Sequence[PaperRecord], *names: str) -> list[list[object]]:
    return [[getattr(p, name) for p in papers] for name in names]


async def copy_entries(conn: asyncpg.Connection, listing_key: int, entries: Sequence[EntryRow]) -> None:
    """Copy in a listing's entries."""
    await conn.copy_records_to_table(
        "listing_entries",
        records=[(listing_key, *entry) for entry in entries],
        columns=["listing_key", *EntryRow._fields],
    )


async def copy_rejects(conn: asyncpg.Connection, listing_key: int, rejects: Sequence[Reject]) -> None:
    """Copy in what could not be read, with its reason and raw text."""
    if rejects:
        await conn.copy_records_to_table(
            "ingest_rejects",
            records=[(listing_key, r.line_start, r.line_end, r.reason, r.raw) for r in rejects],
            columns=["listing_key", "line_start", "line_end", "reason", "raw"],
        )


async def set_counts(conn: asyncpg.Connection, listing_key: int, entries: int, rejects: int) -> None:
    """Record how many entries and rejects a listing has."""
    await conn.execute(
        "UPDATE listings SET entry_count = $2, reject_count = $3 WHERE listing_key = $1", listing_key, entries, rejects
    )
