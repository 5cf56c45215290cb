"""The HNSW index tuned to the collection: size-ruled rebuilds, measured ef_search, and the servers that use it."""

from __future__ import annotations

import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from ingest.embed import embed_pending
from schema import limits
from schema.errors import InvalidInputError
from sql import hnsw, search
from tests import factories
from tests.apps import settings
from tests.embedders import HashEmbedder
from tests.integration.test_cli import papers
from tests.integration.test_similarity import load_pages

# A sparse graph over 400 papers: a narrow beam misses neighbours, a wide one finds them.
SPARSE = hnsw.Build(4, 8)
LADDER = (1, 2, 4, 8, 16, 32, 64, 128, 256)


async def _embedded(conn, n: int = 400) -> None:
    pages = {
        f"p{k}.txt": factories.page([factories.paper(k * 50 + i) for i in range(50)], label=f"Mar {k + 1}")
        for k in range(n // 50)
    }
    await load_pages(conn, pages)
    await embed_pending(conn, HashEmbedder())


def test_the_build_follows_the_collections_size():
    assert hnsw.build_for(0) == hnsw.build_for(hnsw.LARGE_COLLECTION - 1) == hnsw.Build(16, 64)
    assert hnsw.build_for(hnsw.LARGE_COLLECTION) == hnsw.build_for(10**7) == hnsw.Build(24, 128)
    assert hnsw.LADDER[0] == limits.EF_SEARCH  # tuning only raises the default


async def test_the_exact_neighbours_are_postgresqls_exact_neighbours(conn):
    await _embedded(conn, 150)
    queries = await hnsw._sample(conn, 12)
    async with conn.transaction():
        truth = await hnsw._exact(conn, queries, chunk=7)  # many chunks: the running top 10 is merged each time
        await conn.execute("SET LOCAL enable_indexscan = off")
        for vector, found in zip(queries, truth, strict=True):
            rows = await conn.fetch("SELECT paper_key FROM papers ORDER BY embedding <=> $1 LIMIT 10", vector)
            assert found == {r["paper_key"] for r in rows}


async def test_tuning_stores_the_first_ef_search_that_reaches_the_target(conn):
    await _embedded(conn)
    await hnsw.rebuild(conn, SPARSE, memory="64MB")
    assert await hnsw.current_build(conn) == SPARSE
    tuning = await hnsw.tune(conn, queries=40, target=0.9, ladder=LADDER)
    recalls = [s.recall for s in tuning.steps]
    assert recalls[0] < 0.9 <= recalls[-1], recalls  # it had to climb, and stopped where it got there
    assert all(r < 0.9 for r in recalls[:-1])
    assert tuning.ef_search == tuning.steps[-1].ef_search > 1
    assert (tuning.papers, tuning.build) == (400, SPARSE)
    assert await hnsw.tuned_ef_search(conn) == tuning.ef_search
    row = await conn.fetchrow("SELECT queries, papers, m, ef_construction FROM hnsw_tuning")
    assert tuple(row) == (40, 400, *SPARSE)


async def test_a_target_no_ef_search_reaches_stores_nothing(conn):
    await _embedded(conn, 100)
    tuning = await hnsw.tune(conn, queries=10, target=1.01, ladder=(1, 2))
    assert tuning.ef_search is None
    assert len(tuning.steps) == 2
    assert await hnsw.tuned_ef_search(conn) is None


async def test_a_tuning_measured_on_another_build_is_not_used(conn):
    await _embedded(conn, 100)
    await hnsw.tune(conn, queries=10, target=0.0)
    assert await hnsw.tuned_ef_search(conn) == limits.EF_SEARCH
    # An operator's own rebuild with other options: the stored value was measured on a graph that is gone.
    await conn.execute(f"DROP INDEX {hnsw.INDEX}")
    await conn.execute(f"CREATE INDEX {hnsw.INDEX} ON papers USING hnsw (embedding vector_cosine_ops) WITH (m = 8)")
    assert await hnsw.current_build(conn) == hnsw.Build(8, 64)
    assert await hnsw.tuned_ef_search(conn) is None
    # `rebuild` forgets it outright.
    await hnsw.rebuild(conn, hnsw.Build(16, 64), memory="64MB")
    assert await conn.fetchval("SELECT count(*) FROM hnsw_tuning") == 0


async def test_a_rebuild_refuses_bad_options_before_building(conn):
    await _embedded(conn, 50)
    with pytest.raises(InvalidInputError, match="at least twice m"):
        await hnsw.rebuild(conn, hnsw.Build(16, 20), memory="64MB")
    with pytest.raises(InvalidInputError, match="maintenance_work_mem 'lots'"):
        await hnsw.rebuild(conn, hnsw.Build(16, 64), memory="lots")
    assert await hnsw.current_build(conn) == hnsw.Build(16, 64)  # the migration's index, untouched
    assert await conn.fetchval("SELECT to_regclass('papers_embedding_hnsw_next')") is None


async def test_one_rebuild_at_a_time(conn, fresh_db):
    from sql import db

    await _embedded(conn, 50)
    async with db.connection(fresh_db) as other:
        await other.execute("SELECT pg_advisory_lock($1, $2)", *hnsw._REBUILD_LOCK)  # a rebuild in progress
        with pytest.raises(hnsw.RebuildRunningError, match="another HNSW rebuild is running"):
            await hnsw.rebuild(conn, hnsw.Build(8, 16), memory="64MB")
        await other.execute("SELECT pg_advisory_unlock($1, $2)", *hnsw._REBUILD_LOCK)
    await hnsw.rebuild(conn, hnsw.Build(8, 16), memory="64MB")  # and the lock is not kept after a rebuild
    await hnsw.rebuild(conn, hnsw.Build(16, 64), memory="64MB")
    assert await hnsw.current_build(conn) == hnsw.Build(16, 64)
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2"
    assert await conn.fetchval(held, *hnsw._REBUILD_LOCK) == 0


async def test_tuning_needs_an_index_and_vectors(conn):
    with pytest.raises(hnsw.NoIndexError, match="run `papers embed` first"):
        await hnsw.tune(conn)
    await conn.execute(f"DROP INDEX {hnsw.INDEX}")
    with pytest.raises(hnsw.NoIndexError, match="`papers hnsw rebuild` builds one"):
        await hnsw.tune(conn)


async def test_a_server_uses_the_tuned_ef_search_unless_one_is_configured(conn, fresh_db, monkeypatch):
    monkeypatch.setattr(search, "EF_SEARCH", search.EF_SEARCH)  # the process's setting: restored after the test
    await _embedded(conn, 100)
    await conn.execute(
        """INSERT INTO hnsw_tuning (ef_search, recall, queries, papers, m, ef_construction)
           VALUES (237, 0.97, 10, 100, 16, 64)"""
    )
    for configured, expected in ((None, 237), (41, 41)):
        app = create_app(settings(ef_search=configured), database_url=fresh_db, embedder=HashEmbedder())
        async with AsyncTestClient(app) as client:
            assert expected == search.EF_SEARCH
            body = (await client.get("/v1/search", params={"q": "decoding", "mode": "semantic"})).json()
            assert body["items"]
    await conn.execute("DELETE FROM hnsw_tuning")
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=HashEmbedder())):
        assert search.EF_SEARCH == limits.EF_SEARCH


async def test_a_large_untuned_collection_is_pointed_at_the_rebuild(conn, fresh_db, monkeypatch, caplog):
    monkeypatch.setattr(search, "EF_SEARCH", search.EF_SEARCH)
    await _embedded(conn, 100)
    await conn.execute("ANALYZE papers")
    assert (await hnsw.process_ef_search(conn, None)).advice is None
    monkeypatch.setattr(hnsw, "LARGE_COLLECTION", 100)  # this collection is "large" now
    chosen = await hnsw.process_ef_search(conn, None)
    assert chosen.ef_search == limits.EF_SEARCH
    assert "about 100 papers and no HNSW tuning" in (chosen.advice or "")
    with caplog.at_level("WARNING", logger="papers.api"):
        async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=HashEmbedder())):
            pass
    assert any("`papers hnsw rebuild` builds and tunes it" in r.getMessage() for r in caplog.records)
    await hnsw.tune(conn, queries=10, target=0.0)  # once tuned, nothing to say
    assert await hnsw.process_ef_search(conn, None) == (limits.EF_SEARCH, "`papers hnsw tune`", None)


def test_the_command_rebuilds_tunes_and_names_what_it_needs(fresh_db):
    env = {"DATABASE_URL": fresh_db}
    empty = papers("hnsw", "tune", env=env)
    assert empty.returncode == 1
    assert "no paper has an embedding yet" in empty.stderr, empty.stderr
    bad = papers("hnsw", "rebuild", "--m", "16", "--ef-construction", "8", env=env)
    assert bad.returncode == 1
    assert "ef_construction must be at least twice m (32), got 8" in bad.stderr
    usage = papers("hnsw", "rebuild", "--m", "101", env=env)
    assert usage.returncode == 2
    assert "argument --m: expected a whole number from 2 to 100, got '101'" in usage.stderr
    assert "Traceback" not in bad.stderr + empty.stderr + usage.stderr


async def test_the_command_rebuilds_for_the_size_and_stores_what_it_measured(conn, fresh_db):
    await _embedded(conn, 100)
    done = papers(
        "hnsw", "rebuild", "--m", "8", "--ef-construction", "16", "--memory", "64MB", env={"DATABASE_URL": fresh_db}
    )
    assert done.returncode == 0, done.stderr
    assert "built HNSW m=8 ef_construction=16 for 100 papers in" in done.stdout
    assert "ef_search  100: recall 1.000" in done.stdout  # 100 candidates among 100 papers: all of them
    assert "stored ef_search 100" in done.stdout
    assert await hnsw.current_build(conn) == hnsw.Build(8, 16)
    assert await hnsw.tuned_ef_search(conn) == 100


def test_recall_is_measured_against_unit_vectors():
    matrix = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    assert np.allclose(hnsw._unit(matrix), [[0.6, 0.8], [0.0, 0.0]])  # a zero vector stays zero, no NaN
