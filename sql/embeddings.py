"""Stored embeddings: the embedding space they belong to, what still needs embedding, writing vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg
import numpy as np
from pgvector import Vector

from schema.errors import SpaceMismatchError

MAX_ATTEMPTS = 5


class Space(NamedTuple):
    """An embedding space: model name, dimension, and the runtime and quantization that computed the vectors."""

    model: str
    dim: int
    backend: str
    quantization: str

    def __str__(self) -> str:
        return f"{self.model} ({self.dim}-d, {self.backend} {self.quantization})"


class Pending(NamedTuple):
    """A paper that needs an embedding."""

    key: int
    title: str
    abstract: str


# The stored vectors' space as one column of another statement (a text array, NULL before the first embedding).
SPACE_COLUMN = "(SELECT ARRAY[model, dim::text, backend, quantization] FROM embedding_space)"


def space_from(column: Sequence[str] | None) -> Space | None:
    """The Space a SPACE_COLUMN holds."""
    return Space(column[0], int(column[1]), column[2], column[3]) if column else None


async def current_space(conn: asyncpg.Connection) -> Space | None:
    """The space of the stored vectors, or None before the first embedding."""
    return space_from(await conn.fetchval(f"SELECT {SPACE_COLUMN}"))


async def column_dim(conn: asyncpg.Connection) -> int:
    """The dimension of the `papers.embedding` column."""
    return await conn.fetchval(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'papers'::regclass AND attname = 'embedding'"
    )


async def ensure_space(conn: asyncpg.Connection, space: Space) -> None:
    """Claim the space for a first embedder, or refuse one of another model, dimension, backend or quantization."""
    current = await current_space(conn)
    if current is None:
        if space.dim != await column_dim(conn):
            raise SpaceMismatchError(
                f"{space.model} makes {space.dim}-d vectors but the column holds {await column_dim(conn)}-d ones;"
                " run `papers embed --all` to switch the column to this model"
            )
        await conn.execute(
            """INSERT INTO embedding_space (model, dim, backend, quantization) VALUES ($1, $2, $3, $4)
               ON CONFLICT (singleton) DO NOTHING""",
            *space,
        )
        current = await current_space(conn)
        assert current is not None  # inserted above, or by a concurrent first embedder
    if current != space:
        raise SpaceMismatchError(
            f"stored embeddings are from {current} but the embedder is {space}; vectors of different spaces"
            " are never compared: run `papers embed --all` to re-embed"
        )


async def switch_space(conn: asyncpg.Connection, space: Space) -> None:
    """Drop every stored vector and make the column and index fit the new space, in one transaction."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE papers SET embedding = NULL, embedding_model = NULL, embedding_attempts = 0, embedding_error = NULL"
        )
        if space.dim != await column_dim(conn):
            # Built again as it was defined (migration 002's build, or one an operator rebuilt with other options).
            # NULL when there is none: to_regclass answers NULL for a missing name, and pg_get_indexdef is strict.
            index = await conn.fetchval("SELECT pg_get_indexdef(to_regclass('papers_embedding_hnsw_idx'))")
            await conn.execute("DROP INDEX IF EXISTS papers_embedding_hnsw_idx")
            await conn.execute(f"ALTER TABLE papers ALTER COLUMN embedding TYPE vector({int(space.dim)})")
            # A new type takes the type's storage again: in the row, as migration 009 set it.
            await conn.execute("ALTER TABLE papers ALTER COLUMN embedding SET STORAGE MAIN")
            if index is not None:
                await conn.execute(index)
        await conn.execute(
            """INSERT INTO embedding_space (model, dim, backend, quantization) VALUES ($1, $2, $3, $4)
               ON CONFLICT (singleton) DO UPDATE SET model = EXCLUDED.model, dim = EXCLUDED.dim,
                 backend = EXCLUDED.backend, quantization = EXCLUDED.quantization, updated_at = now()""",
            *space,
        )


async def pending(conn: asyncpg.Connection, *, after_key: int = 0, limit: int = 64) -> list[Pending]:
    """Papers without an embedding (and attempts left), in key order after `after_key`."""
    rows = await conn.fetch(
        """SELECT paper_key, title, abstract FROM papers
           WHERE embedding IS NULL AND embedding_attempts < $1 AND paper_key > $2
           ORDER BY paper_key LIMIT $3""",
        MAX_ATTEMPTS,
        after_key,
        limit,
    )
    return [Pending(r["paper_key"], r["title"], r["abstract"]) for r in rows]


async def claim_pending(conn: asyncpg.Connection, limit: int) -> list[Pending]:
    """Lock up to `limit` papers that need an embedding, skipping those another worker holds (in a transaction)."""
    rows = await conn.fetch(
        """SELECT paper_key, title, abstract FROM papers
           WHERE embedding IS NULL AND embedding_attempts < $1
           ORDER BY paper_key LIMIT $2 FOR UPDATE SKIP LOCKED""",
        MAX_ATTEMPTS,
        limit,
    )
    return [Pending(r["paper_key"], r["title"], r["abstract"]) for r in rows]


async def count_pending(conn: asyncpg.Connection) -> int:
    """How many papers still need an embedding."""
    return await conn.fetchval(
        "SELECT count(*) FROM papers WHERE embedding IS NULL AND embedding_attempts < $1", MAX_ATTEMPTS
    )


async def store(conn: asyncpg.Connection, keys: Sequence[int], vectors: np.ndarray, model: str) -> None:
    """Write vectors for papers (by key)."""
    await conn.execute(
        """UPDATE papers p SET embedding = u.v, embedding_model = $3, embedding_error = NULL
           FROM unnest($1::bigint[], $2::vector[]) AS u(k, v) WHERE p.paper_key = u.k""",
        list(keys),
        [Vector(v) for v in vectors],
        model,
    )


async def record_failure(conn: asyncpg.Connection, keys: Sequence[int], error: str) -> None:
    """Count a failed attempt; the papers stay (findable by keyword) and are retried later."""
    await conn.execute(
        """UPDATE papers SET embedding_attempts = embedding_attempts + 1, embedding_error = $2
           WHERE paper_key = ANY($1::bigint[])""",
        list(keys),
        error[:1000],
    )
