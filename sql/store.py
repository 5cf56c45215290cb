"""The ingest write path: one listing, its papers, entries and rejects, in one transaction."""

from __future__ import annotations

import datetime as dt
import hashlib

import asyncpg
import msgspec

from ingest.identity import listing_public_id
from ingest.normalize import Candidate, candidates, merge_dates, prefer_abstract
from schema.ingest import ListingResult, ParsedListing

# Conflicts with a concurrent ingest of overlapping papers: the whole transaction is retried.
_RETRYABLE = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
MAX_TRIES = 5


class ListingInput(msgspec.Struct, frozen=True):
    """One raw input, parsed, with its resolved date: everything needed to store it."""

    source: str
    raw: bytes
    parsed: ParsedListing
    listed_on: dt.date | None

    @property
    def sha256(self) -> str:
        """The content hash that makes ingest idempotent."""
        return hashlib.sha256(self.raw).hexdigest()


class _Paper(msgspec.Struct):
    key: int
    fingerprint: str
    title: str
    abstract: str
    from_arxiv: bool
    arxiv_id: str | None
    first_listed: dt.date | None
    last_listed: dt.date | None
    old_abstract: str | None = None
    changed: bool = False


async def existing_listing(conn: asyncpg.Connection, sha256: str) -> str | None:
    """The public id of the listing already stored with this content, if any."""
    return await conn.fetchval("SELECT public_id FROM listings WHERE content_sha256 = $1", sha256)


async def store_listing(conn: asyncpg.Connection, item: ListingInput) -> ListingResult:
    """Store one listing atomically; the same content stored twice changes nothing."""
    for attempt in range(1, MAX_TRIES + 1):
        try:
            async with conn.transaction():
                return await _store(conn, item)
        except _RETRYABLE:
            if attempt == MAX_TRIES:
                raise
    raise AssertionError("unreachable")


async def _store(conn: asyncpg.Connection, item: ListingInput) -> ListingResult:
    parsed, public_id = item.parsed, listing_public_id(item.sha256)
    listing_key = await conn.fetchval(
        """INSERT INTO listings (public_id, source, kind, date_label, listed_on, heading, content_sha256, raw)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (content_sha256) DO NOTHING RETURNING listing_key""",
        public_id, item.source, parsed.kind, parsed.date_label, item.listed_on, parsed.heading, item.sha256, item.raw,
    )  # fmt: skip
    if listing_key is None:
        return ListingResult(item.source, public_id, unchanged=True)
    found, owners = candidates(parsed.entries, item.listed_on)
    existing = await _lock_existing(conn, found)
    keys, new = await _resolve(conn, found, existing)
    await _write_papers(conn, [existing[k] for k in set(keys.values()) if k in existing])
    papers = existing | new
    await _write_entries(conn, listing_key, item, [papers[keys[fp]] for fp in owners])
    await _write_rejects(conn, listing_key, item)
    await conn.execute(
        "UPDATE listings SET entry_count = $2, reject_count = $3 WHERE listing_key = $1",
        listing_key, len(parsed.entries), len(parsed.rejects),
    )  # fmt: skip
    return ListingResult(
        item.source,
        public_id,
        entries=len(parsed.entries),
        papers_new=len(new),
        papers_updated=sum(p.changed for p in existing.values()),
        rejected=len(parsed.rejects),
    )


async def _lock_existing(conn: asyncpg.Connection, found: dict[str, Candidate]) -> dict[int, _Paper]:
    """Load and row-lock the stored papers this listing touches, in key order to avoid deadlocks."""
    rows = await conn.fetch(
        """SELECT paper_key, fingerprint, title, abstract, abstract_from_arxiv, arxiv_id, first_listed, last_listed
           FROM papers WHERE fingerprint = ANY($1::text[]) OR arxiv_id = ANY($2::text[])
           ORDER BY paper_key FOR UPDATE""",
        list(found), [c.arxiv_id for c in found.values() if c.arxiv_id],
    )  # fmt: skip
    papers = {}
    for row in rows:
        papers[row["paper_key"]] = _Paper(
            row["paper_key"], row["fingerprint"], row["title"], row["abstract"], row["abstract_from_arxiv"],
            row["arxiv_id"], row["first_listed"], row["last_listed"],
        )  # fmt: skip
    return papers


async def _resolve(
    conn: asyncpg.Connection, found: dict[str, Candidate], papers: dict[int, _Paper]
) -> tuple[dict[str, int], dict[int, _Paper]]:
    """Map each candidate to a stored paper (by fingerprint, then arXiv id) or insert it; return the map and new papers."""
    key_by_fp = {p.fingerprint: k for k, p in papers.items()}
    key_by_arxiv = {p.arxiv_id: k for k, p in papers.items() if p.arxiv_id}
    resolved: dict[str, int] = {}
    new: list[Candidate] = []
    inserted: dict[int, _Paper] = {}
    for fingerprint, cand in found.items():
        key = key_by_fp.get(fingerprint) or (key_by_arxiv.get(cand.arxiv_id) if cand.arxiv_id else None)
        if key is None:
            new.append(cand)
        else:
            resolved[fingerprint] = key
            _merge(papers[key], cand, cand.arxiv_id not in key_by_arxiv)
    if new:
        rows = await conn.fetch(
            """INSERT INTO papers (public_id, fingerprint, title, abstract, abstract_from_arxiv, arxiv_id,
                                   first_listed, last_listed)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[],
                                    $7::date[], $8::date[])
               RETURNING paper_key, fingerprint""",
            *zip(*[(c.public_id, c.fingerprint, c.title, c.abstract, c.from_arxiv, c.arxiv_id,
                    c.first_listed, c.last_listed) for c in new]),
        )  # fmt: skip
        for row in rows:
            resolved[row["fingerprint"]] = row["paper_key"]
        for cand in new:
            inserted[resolved[cand.fingerprint]] = _Paper(
                resolved[cand.fingerprint], cand.fingerprint, cand.title, cand.abstract, cand.from_arxiv, cand.arxiv_id,
                cand.first_listed, cand.last_listed,
            )  # fmt: skip
    return resolved, inserted


def _merge(paper: _Paper, cand: Candidate, arxiv_free: bool) -> None:
    """Fold what a listing says into a stored paper; mark it changed when a public field changes."""
    if prefer_abstract((cand.abstract, cand.from_arxiv), (paper.abstract, paper.from_arxiv)):
        paper.old_abstract = paper.old_abstract or paper.abstract
        paper.abstract, paper.from_arxiv, paper.changed = cand.abstract, cand.from_arxiv, True
    if paper.arxiv_id is None and cand.arxiv_id and arxiv_free:
        paper.arxiv_id, paper.changed = cand.arxiv_id, True
    paper.first_listed, paper.last_listed = merge_dates(
        (paper.first_listed, paper.last_listed), (cand.first_listed, cand.last_listed)
    )


async def _write_papers(conn: asyncpg.Connection, papers: list[_Paper]) -> None:
    """Write back merged papers, and keep a replaced canonical abstract on the entries that printed it."""
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
        *zip(*[(p.key, p.abstract, p.from_arxiv, p.arxiv_id, p.first_listed, p.last_listed) for p in papers]),
    )  # fmt: skip
    replaced = [p for p in papers if p.old_abstract is not None]
    if replaced:
        await conn.execute(
            """UPDATE listing_entries e
               SET abstract_variant = CASE WHEN e.abstract_variant IS NULL THEN u.old
                                           WHEN e.abstract_variant = u.new THEN NULL
                                           ELSE e.abstract_variant END
               FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(paper_key, old, new)
               WHERE e.paper_key = u.paper_key AND (e.abstract_variant IS NULL OR e.abstract_variant = u.new)""",
            *zip(*[(p.key, p.old_abstract, p.abstract) for p in replaced]),
        )  # fmt: skip


async def _write_entries(conn: asyncpg.Connection, listing_key: int, item: ListingInput, owners: list[_Paper]) -> None:
    """Copy in the listing's entries; texts that differ from the paper's canonical ones stay as variants."""
    records = []
    for entry, paper in zip(item.parsed.entries, owners):
        records.append((
            listing_key, entry.rank, paper.key,
            entry.title if entry.title != paper.title else None,
            entry.abstract if entry.abstract != paper.abstract else None,
            entry.listed_on, entry.line_start, entry.line_end,
        ))  # fmt: skip
    await conn.copy_records_to_table(
        "listing_entries",
        records=records,
        columns=["listing_key", "rank", "paper_key", "title_variant", "abstract_variant", "listed_on",
                 "line_start", "line_end"],
    )  # fmt: skip


async def _write_rejects(conn: asyncpg.Connection, listing_key: int, item: ListingInput) -> None:
    if item.parsed.rejects:
        await conn.copy_records_to_table(
            "ingest_rejects",
            records=[(listing_key, r.line_start, r.line_end, r.reason, r.raw) for r in item.parsed.rejects],
            columns=["listing_key", "line_start", "line_end", "reason", "raw"],
        )
