"""Soak: minutes of mixed REST and GraphQL reads against `papers serve` running the local embedding model.

PAPERS_SOAK_SECONDS sets how long the measured part runs (default 120 s; the documented long run is 300).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import random
import statistics
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from tests.system.harness import (
    Hit,
    Request,
    corpus,
    hammer,
    load,
    sample,
    serving,
    tree_rss_kib,
    unhandled,
    wait_semantic,
)

pytestmark = pytest.mark.slow

SOAK_S = float(os.environ.get("PAPERS_SOAK_SECONDS") or 120)
WARMUP_S = 15.0  # caches, the pool and the model's first batches settle before RSS is compared
PAPERS = 3000
CONCURRENCY = 8
RSS_EVERY_S = 5.0
RSS_GROWTH = 0.10

GRAPHQL = {
    "graphql_papers": "{ papers(first: 20) { edges { node { id title listings { id rank } } } } }",
    "graphql_paper": "query($id: String!) { paper(id: $id) {"
    " id title abstract firstListed listings { id rank date } } }",
    "graphql_listing": "query($id: String!) { listing(id: $id) { id entryCount entries(first: 20) {"
    " edges { node { rank paper { id title } } } pageInfo { hasNextPage endCursor } } } }",
    "graphql_similar": "query($id: String!) { paper(id: $id) { id similar(first: 10) { id title score } } }",
    "graphql_search": "query($q: String!) { search(q: $q, mode: HYBRID, first: 10) {"
    " edges { node { id score snippet } } } }",
    "graphql_stats": "{ stats { papers listings entries } }",
}


def graphql(label: str, **variables: str) -> Request:
    return (label, "POST", "/graphql", {"query": GRAPHQL[label], "variables": variables})


def mix(ids: list[str], titles: list[str], listings: list[str]) -> list[Request]:
    """The soak's requests: by id and by page, keyword, hybrid and similar, over REST and GraphQL."""
    rng = random.Random(7)
    words = sorted({w.lower() for t in titles for w in t.split() if len(w) > 5 and w.isalpha()})
    out: list[Request] = []
    for i in range(240):
        pid, lid, title = ids[i % len(ids)], listings[i % len(listings)], titles[i % len(titles)]
        q = " ".join(rng.sample(words, 2))
        rare: list[Request] = [
            ("rest_listing", "GET", f"/v1/listings/{lid}?limit=50", None),
            ("rest_similar", "GET", f"/v1/papers/{pid}/similar?limit=10", None),
            ("rest_hybrid", "GET", "/v1/search?" + urllib.parse.urlencode({"q": q, "mode": "hybrid"}), None),
            ("rest_keyword", "GET", "/v1/papers?" + urllib.parse.urlencode({"q": q, "limit": 20}), None),
            ("rest_listings", "GET", "/v1/listings?limit=20", None),
            ("rest_batch", "POST", "/v1/papers/batch", {"ids": ids[i : i + 20]}),
            graphql("graphql_listing", id=lid),
            graphql("graphql_similar", id=pid),
            graphql("graphql_search", q=q),
            ("rest_match", "GET", "/v1/papers/match?" + urllib.parse.urlencode({"title": title[:40]}), None),
            ("rest_stats", "GET", "/v1/stats", None),
            graphql("graphql_stats"),
        ]
        out += [
            ("rest_page", "GET", "/v1/papers?limit=20", None),
            ("rest_paper", "GET", f"/v1/papers/{pid}", None),
            graphql("graphql_paper", id=pid),
            graphql("graphql_papers"),
            rare[i % len(rare)],
        ]
    return out


@pytest.fixture
async def loaded(fresh_db: str) -> str:
    assert await load(fresh_db, corpus(PAPERS), vectors=True) == PAPERS
    return fresh_db


async def assert_every_kind_answers(base: str, requests: list[Request]) -> None:
    """One request of every kind answers 200 without GraphQL errors (else the soak would measure refusals)."""
    firsts = {r[0]: r for r in reversed(requests)}
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30) as client:
        for label, method, path, body in firsts.values():
            response = await client.request(method, path, json=body)
            assert response.status_code == 200, (label, response.text[:500])
            assert b'"errors"' not in response.content, (label, response.text[:500])


async def soak(
    base: str, requests: list[Request], seconds: float, pid: int
) -> tuple[list[Hit], list[tuple[float, int]]]:
    """Cycle through requests at fixed concurrency for seconds; return the hits and (seconds, server RSS KiB)."""
    hits: list[Hit] = []
    rss: list[tuple[float, int]] = []
    order = itertools.cycle(requests)
    stop_load = asyncio.Event()
    task = asyncio.create_task(hammer(base, lambda _: next(order), concurrency=CONCURRENCY, stop=stop_load, hits=hits))
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            rss.append((elapsed, tree_rss_kib(pid)))
            await asyncio.sleep(min(RSS_EVERY_S, seconds - elapsed))
        rss.append((time.monotonic() - started, tree_rss_kib(pid)))
    finally:
        stop_load.set()
        await task
    return hits, rss


def rss_growth(rss: list[tuple[float, int]], seconds: float) -> float:
    """How much the last minute's median RSS exceeds the first minute's (half the run each, if shorter)."""
    window = min(60.0, seconds / 2)
    first = [kib for t, kib in rss if t <= window]
    last = [kib for t, kib in rss if t >= rss[-1][0] - window]
    return statistics.median(last) / statistics.median(first) - 1


async def test_soak_of_mixed_reads_has_no_server_errors_and_stable_memory(
    loaded: str, tmp_path: Path, onnx_models: Path
) -> None:
    requests = mix(*await sample(loaded))
    log = tmp_path / "serve.log"
    with serving(loaded, log, PAPERS_EMBEDDER="local", PAPERS_DATA_DIR=str(onnx_models.parent)) as (base, proc):
        await wait_semantic(base)
        await assert_every_kind_answers(base, requests)
        warm, _ = await soak(base, requests, WARMUP_S, proc.pid)
        hits, rss = await soak(base, requests, SOAK_S, proc.pid)
        assert proc.poll() is None, "the server died"
    statuses = collections.Counter(h.status for h in warm + hits)
    assert not [s for s in statuses if isinstance(s, int) and s >= 500], statuses
    assert statuses.keys() == {200}, f"only 200s (no 4xx, timeouts or dropped connections): {statuses}"
    assert collections.Counter(h.label for h in warm + hits if h.graphql_errors) == {}
    assert len(hits) >= 10 * SOAK_S, f"only {len(hits)} requests in {SOAK_S:.0f} s"
    growth = rss_growth(rss, SOAK_S)
    print(f"{len(hits)} requests in {SOAK_S:.0f} s, RSS {growth:+.1%}: {[kib // 1024 for _, kib in rss]} MiB")
    assert growth < RSS_GROWTH, f"server RSS grew {growth:+.1%}: {[kib // 1024 for _, kib in rss]} MiB"
    assert unhandled(log) == []
