"""Counts over the stored data."""

from __future__ import annotations

import asyncpg
import msgspec


class Counts(msgspec.Struct, frozen=True):
    """How much is stored."""

    listings: int
    entries: int
    papers: int
    rejects: int
    embedded: int


async def counts(conn: asyncpg.Connection) -> Counts:
    """Count listings, entries, papers, rejects and embedded papers."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM listings) AS listings,
                  (SELECT count(*) FROM listing_entries) AS entries,
                  (SELECT count(*) FROM papers) AS papers,
                  (SELECT count(*) FROM ingest_rejects) AS rejects,
                  (SELECT count(*) FROM papers WHERE embedding IS NOT NULL) AS embedded"""
    )
    return Counts(**dict(row))
