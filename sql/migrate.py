"""Numbered plain-SQL migrations, applied in order, each in a transaction, under a transaction-scoped advisory lock."""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import NamedTuple

import asyncpg

# Two-key advisory lock namespace for migrations; jobs use another class id.
_LOCK = (7300, 1)
_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """A migration cannot be applied, or an applied one was changed afterwards."""


class Migration(NamedTuple):
    """One migration file: its version, name, SQL text and checksum."""

    version: str
    name: str
    sql: str
    checksum: str


def available() -> list[Migration]:
    """The migration files shipped in `sql/migrations`, in order."""
    found = []
    for entry in resources.files("sql").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            text = entry.read_text(encoding="utf-8")
            found.append(Migration(match.group(1), entry.name, text, hashlib.sha256(text.encode()).hexdigest()))
    return sorted(found)


_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def _applied(conn: asyncpg.Connection) -> dict[str, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


def _check(applied: dict[str, str], migrations: list[Migration]) -> list[Migration]:
    """Refuse edited migrations and return the ones still to apply."""
    for migration in migrations:
        checksum = applied.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was edited after it was applied; add a new migration instead"
            )
    return [m for m in migrations if m.version not in applied]


async def pending(conn: asyncpg.Connection) -> list[str]:
    """Names of the migrations not yet applied (raises if an applied one was edited)."""
    return [m.name for m in _check(await _applied(conn), available())]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every pending migration in order and return their names; safe to run concurrently.

    Each migration commits on its own, under a transaction-scoped advisory lock taken again for each: nothing
    outlives a transaction, so this runs the same through PgBouncer in transaction mode as on PostgreSQL.
    """
    applied: list[str] = []
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *_LOCK)
            await conn.execute(_TABLE)
            todo = _check(await _applied(conn), available())
            if not todo:
                return applied
            migration = todo[0]
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        applied.append(migration.name)
