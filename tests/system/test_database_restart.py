"""PostgreSQL stopped for ~5 s under load and started again: 503 problem+json while down, then 200, same process."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sql import db
from sql.embedded import EmbeddedPostgres
from sql.migrate import migrate
from tests.system.harness import Hit, Request, corpus, hammer, load, sample, serving, unhandled

pytestmark = pytest.mark.slow

PAPERS = 2000
CONCURRENCY = 8
BASELINE_S = 3.0
DOWN_S = 5.0


@pytest.fixture
async def private_pg(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL of this test's own (the test stops it), migrated and loaded with the corpus."""
    server = EmbeddedPostgres(tmp_path / "db")
    url = await asyncio.to_thread(server.start)
    try:
        async with db.connection(url, vector=False) as conn:
            await migrate(conn)
        await load(url, corpus(PAPERS))
        yield server, url
    finally:
        await asyncio.to_thread(server.stop)


async def wait_recovered(hits: list[Hit], since: float, timeout: float = 60.0) -> None:
    """Return once every request of the last 3 s, all sent after `since`, answered 200 (or after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = time.monotonic()
        recent = [h for h in hits if h.start >= since and h.end >= now - 3.0]
        if now - since > 3.0 and recent and all(h.status == 200 for h in recent):
            return


async def restart_under_load(pg: EmbeddedPostgres, url: str, hits: list[Hit]) -> dict[str, float]:
    """Stop PostgreSQL, keep it down DOWN_S, start it; return when each step happened (time.monotonic())."""
    marks = {}
    await asyncio.sleep(BASELINE_S)
    marks["stop_called"] = time.monotonic()
    await asyncio.to_thread(pg.stop)
    marks["down"] = time.monotonic()
    await asyncio.sleep(DOWN_S)
    marks["start_called"] = time.monotonic()
    assert await asyncio.to_thread(pg.start) == url, "PostgreSQL came back at another address"
    marks["up"] = time.monotonic()
    await wait_recovered(hits, since=marks["up"])
    await asyncio.sleep(2.0)
    marks["end"] = time.monotonic()
    return marks


async def test_database_restart_under_load_gives_503_then_200_from_the_same_process(
    private_pg: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    pg, url = private_pg
    ids, _, _ = await sample(url)

    def pick(rng: random.Random) -> Request:
        if rng.random() < 0.5:
            return ("page", "GET", "/v1/papers?limit=20", None)
        return ("by_id", "GET", f"/v1/papers/{rng.choice(ids)}", None)

    hits: list[Hit] = []
    stop_load = asyncio.Event()
    log = tmp_path / "serve.log"
    with serving(url, log) as (base, proc):
        pid = proc.pid
        load_task = asyncio.create_task(hammer(base, pick, concurrency=CONCURRENCY, stop=stop_load, hits=hits))
        try:
            marks = await restart_under_load(pg, url, hits)
        finally:
            stop_load.set()
            await load_task
        alive = proc.poll() is None and proc.pid == pid
    assert_503_while_down_then_200(hits, marks)
    assert alive, "the API process died"
    assert unhandled(log) == []


def assert_503_while_down_then_200(hits: list[Hit], marks: dict[str, float]) -> None:
    before = [h for h in hits if h.end < marks["stop_called"]]
    assert before, "no request before the stop"
    assert all(h.status == 200 for h in before), collections.Counter(h.status for h in before)
    down = [h for h in hits if h.start >= marks["down"] and h.end <= marks["start_called"]]
    assert down, "no request was answered while the database was down"
    print(f"{len(hits)} requests {dict(collections.Counter(h.status for h in hits))}, {len(down)} while down")
    assert all(h.status == 503 and h.problem for h in down), collections.Counter((h.status, h.problem) for h in down)
    # no 500, no other status, no timeout (a hang) and no dropped connection at any time
    assert collections.Counter(h.status for h in hits if h.status not in (200, 503)) == {}
    assert all(h.problem for h in hits if h.status == 503), "a 503 without problem+json or Retry-After"
    assert any(h.status == 200 for h in hits if h.start >= marks["up"]), "no 200 after the restart"
    last = [h for h in hits if h.start >= marks["end"] - 3.0]
    assert last, "no request in the last 3 s"
    assert all(h.status == 200 for h in last), collections.Counter(h.status for h in last)
