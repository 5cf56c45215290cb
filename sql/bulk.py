"""Bulk-load statements: defer the per-row index work of an ingest, then build it once (docs/design.md, "Bulk load").

The caller (ingest/bulk.py) runs `defer`, the ordinary ingest statements, `write_keyword_index` and `restore` in ONE
transaction, so a crash rolls back the dropped indexes and disabled triggers with the papers: nothing is ever
committed half-built.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import asyncpg

# Triggers whose work `write_keyword_index` redoes for every paper (keyword postings and counts, title words). Any other
# trigger a later migration adds stays enabled: it runs per row as in the normal path.
TRIGGERS = ("papers_keyword_insert", "papers_keyword_update", "papers_keyword_delete", "papers_title_words")
# Every table the load rewrites (`write_keyword_index` truncates the last three), locked before anything is written;
# their secondary indexes and foreign keys are dropped for the load and created again after it.
TABLES = ("papers", "keyword_postings", "paper_title_words", "keyword_terms")
# A reader holding one of TABLES while it waits for another the load holds is a deadlock PostgreSQL breaks after
# deadlock_timeout by failing one side; when it fails the load's lock, that is retried, nothing being written yet.
LOCK_TRIES = 20
# Indexes kept: constraints (the merge finds papers by fingerprint and arXiv id, listings by content hash) and
# those on the embedding (a load writes no vectors, so they cost nothing now and rebuilding HNSW costs minutes).
_DEFERRABLE = """
    SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
    WHERE t.relname = ANY($1::text[]) AND t.relnamespace = current_schema()::regnamespace
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
      AND pg_get_indexdef(i.indexrelid) NOT LIKE '%embedding%'
    ORDER BY c.relname"""
# Foreign keys from the tables the load writes: PostgreSQL checks each inserted row with a lookup in the referenced
# table (11 million title words at a million papers); adding the constraint again checks all rows in one join.
_FOREIGN_KEYS = """
    SELECT k.conname AS name, k.conrelid::regclass::text AS owner, pg_get_constraintdef(k.oid) AS definition
    FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
    WHERE k.contype = 'f' AND t.relname = ANY($1::text[]) AND t.relnamespace = current_schema()::regnamespace
    ORDER BY k.conname"""


# Every paper's postings; keyword_impacts (migration 010) reads each paper's tsvector once.
POSTINGS = "SELECT i.term, i.impact, p.paper_key FROM papers p, keyword_impacts(p.search) i"
# Every paper's title words: what paper_title_words_sync (migration 008) writes per row.
TITLE_WORDS = """SELECT DISTINCT w, p.paper_key
    FROM papers p, regexp_split_to_table(lower(p.title), '[^[:alnum:]]+') AS w WHERE w <> ''"""


class Deferred(NamedTuple):
    """What `defer` took away, for `restore` to put back: index definitions by name, foreign keys by name."""

    indexes: dict[str, str]
    foreign_keys: dict[str, tuple[str, str]]  # name: (table, definition)


async def defer(conn: asyncpg.Connection) -> Deferred:
    """Lock the tables, drop their deferrable indexes and foreign keys, disable the triggers; inside a transaction."""
    # Writers and readers of papers wait until the load commits (DROP INDEX needs this lock anyway); locking all of
    # them first, in a fixed order, means the load never waits for a lock while it holds written rows.
    await _lock(conn)
    rows = await conn.fetch(_DEFERRABLE, list(TABLES))
    for row in rows:
        await conn.execute(f'DROP INDEX "{row["name"]}"')
    keys = await conn.fetch(_FOREIGN_KEYS, list(TABLES))
    for key in keys:
        await conn.execute(f'ALTER TABLE {key["owner"]} DROP CONSTRAINT "{key["name"]}"')
    await conn.execute(f"ALTER TABLE papers {', '.join(f'DISABLE TRIGGER {t}' for t in TRIGGERS)}")
    return Deferred(
        {row["name"]: row["definition"] for row in rows},
        {key["name"]: (key["owner"], key["definition"]) for key in keys},
    )


async def _lock(conn: asyncpg.Connection) -> None:
    """Take every table of TABLES exclusively, again if a deadlock with a reader failed the attempt."""
    for attempt in range(1, LOCK_TRIES + 1):
        try:
            async with conn.transaction():  # a savepoint: its rollback gives back the locks taken so far
                await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
            return
        except asyncpg.DeadlockDetectedError:
            if attempt == LOCK_TRIES:
                raise
            await asyncio.sleep(0.05 * attempt)  # the reader that won finishes its statement meanwhile


async def write_keyword_index(conn: asyncpg.Connection) -> None:
    """The postings, document frequencies and title words of every paper, written anew (their indexes dropped)."""
    # The same functions the triggers call (migration 006), over all papers at once; TRUNCATE is transactional.
    await conn.execute("TRUNCATE keyword_postings, keyword_terms, paper_title_words")
    await conn.execute(f"INSERT INTO keyword_postings (term, impact, paper_key) {POSTINGS}")
    await conn.execute(
        """INSERT INTO keyword_terms (term, df)
           SELECT term, count(*) FROM (
               SELECT unnest(tsvector_to_array(search)) AS term FROM papers UNION ALL SELECT '' FROM papers) s
           GROUP BY term"""
    )
    await conn.execute(f"INSERT INTO paper_title_words (word, paper_key) {TITLE_WORDS}")


async def restore(conn: asyncpg.Connection, deferred: Deferred, *, memory: str = "1GB") -> None:
    """Create the dropped indexes and foreign keys again from their definitions and enable the triggers."""
    # Sorting in memory rather than in temporary files: several times faster for the GIN and btree builds.
    await conn.execute(f"SET LOCAL maintenance_work_mem = '{memory}'")
    for definition in deferred.indexes.values():
        await conn.execute(definition)
    for name, (owner, definition) in deferred.foreign_keys.items():
        await conn.execute(f'ALTER TABLE {owner} ADD CONSTRAINT "{name}" {definition}')
    await conn.execute(f"ALTER TABLE papers {', '.join(f'ENABLE TRIGGER {t}' for t in TRIGGERS)}")
