"""Storing one listing: its papers resolved and merged, its entries and rejects, in one transaction."""

from __future__ import annotations

import asyncpg

from ingest.normalize import candidates, merge_into
from schema.identity import listing_public_id
from schema.ingest import EntryRow, ListingInput, ListingResult, PaperRecord
from sql import store

MAX_TRIES = 5


async def store_listing(conn: asyncpg.Connection, item: ListingInput) -> ListingResult:
    """Store one listing atomically; the same content stored twice changes nothing."""
    for attempt in range(1, MAX_TRIES + 1):
        try:
            async with conn.transaction():
                return await _store(conn, item)
        except store.RETRYABLE:
            # A concurrent ingest added or locked an overlapping paper first: start over and find it.
            if attempt == MAX_TRIES:
                raise
    raise AssertionError("unreachable")


async def _store(conn: asyncpg.Connection, item: ListingInput) -> ListingResult:
    parsed, public_id = item.parsed, listing_public_id(item.sha256)
    listing_key = await store.insert_listing(conn, item, public_id)
    if listing_key is None:
        return ListingResult(item.source, public_id, unchanged=True, listing_ids=[public_id], listings_unchanged=1)
    found, owners = candidates(parsed.entries, item.listed_on)
    stored = await store.lock_papers(conn, list(found), [c.arxiv_id for c in found.values() if c.arxiv_id])
    papers, new = _resolve(found, stored)
    new_keys = await store.insert_papers(conn, new)
    for paper in new:
        paper.key = new_keys[paper.fingerprint]
    # Every stored paper the listing names is written back: its listed dates and last_seen move too.
    named = {p.key for p in papers.values()}
    await store.update_papers(conn, [p for p in stored if p.key in named])
    await store.copy_entries(conn, listing_key, _entry_rows(item, [papers[fp] for fp in owners]))
    await store.copy_rejects(conn, listing_key, parsed.rejects)
    await store.set_counts(conn, listing_key, len(parsed.entries), len(parsed.rejects))
    return ListingResult(
        item.source,
        public_id,
        entries=len(parsed.entries),
        papers_new=len(new),
        papers_updated=sum(p.changed for p in stored),
        rejected=len(parsed.rejects),
        listing_ids=[public_id],
        listings_new=1,
    )


def _resolve(
    found: dict[str, PaperRecord], stored: list[PaperRecord]
) -> tuple[dict[str, PaperRecord], list[PaperRecord]]:
    """Map each candidate to the stored paper it is (by fingerprint, then arXiv id), merging into it.

    The candidates that are no stored paper are new.
    """
    by_fingerprint = {p.fingerprint: p for p in stored}
    by_arxiv = {p.arxiv_id: p for p in stored if p.arxiv_id}
    resolved: dict[str, PaperRecord] = {}
    new: list[PaperRecord] = []
    for fingerprint, cand in found.items():
        paper = by_fingerprint.get(fingerprint) or (by_arxiv.get(cand.arxiv_id) if cand.arxiv_id else None)
        if paper is None:
            new.append(cand)
            paper = cand
        else:
            merge_into(paper, cand, arxiv_free=cand.arxiv_id not in by_arxiv)
        resolved[fingerprint] = paper
    return resolved, new


def _entry_rows(item: ListingInput, owners: list[PaperRecord]) -> list[EntryRow]:
    """Each entry with its paper; texts that differ from the paper's canonical ones stay as variants."""
    rows = []
    for entry, paper in zip(item.parsed.entries, owners, strict=True):
        assert paper.key is not None  # stored or just inserted
        rows.append(
            EntryRow(
                entry.rank,
                paper.key,
                entry.title if entry.title != paper.title else None,
                entry.abstract if entry.abstract != paper.abstract else None,
                entry.listed_on,
                entry.line_start,
                entry.line_end,
            )
        )
    return rows
