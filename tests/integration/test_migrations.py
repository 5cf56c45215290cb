"""Migrations: ordered, recorded, concurrent-safe, and edited files refused."""

from __future__ import annotations

import asyncio

import pytest

import sql.migrate
from sql import db
from sql.migrate import Migration, MigrationError, available, migrate, pending


async def test_applies_in_order_and_records(empty_db):
    async with db.connection(empty_db, vector=False) as conn:
        assert await pending(conn) == [m.name for m in available()]
        applied = await migrate(conn)
        assert applied == [m.name for m in available()]
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["checksum"]) for r in rows] == [(m.version, m.checksum) for m in available()]
        assert await migrate(conn) == []
        assert await pending(conn) == []
        extensions = {r[0] for r in await conn.fetch("SELECT extname FROM pg_extension")}
        assert {"vector", "pg_trgm"} <= extensions


async def test_concurrent_runs_apply_once(empty_db):
    conns = [await db.connect(empty_db, vector=False) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    # Each migration is applied once, by whichever run took the lock for it (the lock is per transaction now, so
    # the runs may share the work).
    assert sorted(name for names in results for name in names) == [m.name for m in available()]


async def test_edited_migration_is_refused(empty_db, monkeypatch):
    async with db.connection(empty_db, vector=False) as conn:
        await migrate(conn)
        first = available()[0]
        edited = first._replace(sql=first.sql + "\n-- edited", checksum="0" * 64)
        monkeypatch.setattr(sql.migrate, "available", lambda: [edited, *available()[1:]])
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(conn)


async def test_failed_migration_rolls_back(empty_db, monkeypatch):
    broken = Migration("999", "999_broken.sql", "CREATE TABLE half_done (x int); SELECT 1/0;", "f" * 64)
    real = available()
    monkeypatch.setattr(sql.migrate, "available", lambda: [*real, broken])
    async with db.connection(empty_db, vector=False) as conn:
        with pytest.raises(Exception, match="division by zero"):
            await migrate(conn)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await pending(conn) == ["999_broken.sql"]


@pytest.mark.parametrize(
    ("model", "space"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", ("torch", "fp32")),  # the only local backend before 007
        ("bge-small", ("openai", "remote")),
    ],
)
async def test_a_space_recorded_before_backends_were_named_keeps_its_meaning(empty_db, monkeypatch, model, space):
    before = [m for m in available() if m.version < "007"]
    monkeypatch.setattr(sql.migrate, "available", lambda: before)
    async with db.connection(empty_db, vector=False) as conn:
        await migrate(conn)
        await conn.execute("INSERT INTO embedding_space (model, dim) VALUES ($1, 384)", model)
        monkeypatch.undo()
        assert "007_embedding_backend.sql" in await migrate(conn)
        row = await conn.fetchrow("SELECT model, dim, backend, quantization FROM embedding_space")
    assert row is not None
    assert tuple(row) == (model, 384, *space)
