"""What every request gets whatever it asks: an id, an access-log line, HEAD like GET, one Allow, rate limits,
and readiness that tells the truth about the model."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import threading
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.http.observe import RequestIdFilter
from api.process import configure
from ingest.embedder import LocalEmbedder
from tests.apps import settings
from tests.embedders import HashEmbedder, LoadingEmbedder
from tests.integration.test_rest import CORPUS, KEY, assert_problem, load


@pytest.fixture
async def client(fresh_db):
    await load(fresh_db, CORPUS)
    async with AsyncTestClient(create_app(settings(api_key=KEY), database_url=fresh_db)) as c:
        yield c


async def test_request_ids_are_echoed_or_made(client):
    given = await client.get("/v1/stats", headers={"X-Request-ID": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    made = (await client.get("/v1/stats")).headers["x-request-id"]
    forged = (await client.get("/v1/stats", headers={"X-Request-ID": "bad id\nwith newline"})).headers["x-request-id"]
    assert len(made) == 32
    assert forged != "bad id\nwith newline"


async def test_one_access_log_line_per_request_even_for_404_and_405(client, caplog):
    with caplog.at_level(logging.INFO, logger="papers.access"):
        await client.get("/v1/stats", headers={"X-Request-ID": "r1"})
        await client.get("/nowhere", headers={"X-Request-ID": "r2"})
        await client.delete("/v1/papers", headers={"X-Request-ID": "r3"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "papers.access"]
    assert [(line["request_id"], line["method"], line["path"], line["status"]) for line in lines] == [
        ("r1", "GET", "/v1/stats", 200),
        ("r2", "GET", "/nowhere", 404),
        ("r3", "DELETE", "/v1/papers", 405),
    ]
    assert all(line["ms"] >= 0 and line["bytes"] > 0 for line in lines)


@pytest.fixture
def server_log():
    """The server process's logging set-up for one test, written to a buffer; the runner's restored after."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    papers_level = logging.getLogger("papers").level
    configure(request_ids=RequestIdFilter())
    buffer = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(buffer)
    yield buffer
    root.handlers[:] = saved
    root.setLevel(level)
    logging.getLogger("papers").setLevel(papers_level)


async def test_server_log_lines_carry_the_request_id(fresh_db, server_log):
    """The app leaves the process's logging alone (Litestar's default config would swap in its own format)."""
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db)) as c:
        await c.get("/v1/papers/nope", headers={"X-Request-ID": "trace-77"})
    lines = [line for line in server_log.getvalue().splitlines() if "papers.access" in line]
    assert len(lines) == 1
    assert " INFO papers.access [trace-77] {" in lines[0]
    assert json.loads(lines[0].partition("] ")[2])["status"] == 404


async def test_head_answers_like_get_without_a_body(client):
    get, head = await client.get("/v1/papers?limit=2"), await client.head("/v1/papers?limit=2")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert (await client.head("/v1/papers/nope")).status_code == 404


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/papers", "GET, HEAD, OPTIONS"),
        ("/v1/papers/pap_z77nqhjb6zugfnc4", "GET, HEAD, OPTIONS"),
        ("/v1/papers/batch", "OPTIONS, POST"),
        # Paths with two handlers: Litestar 2's own OPTIONS answer named only the first (GET); /graphql's 405
        # named its websocket route as a method.
        ("/v1/listings", "GET, HEAD, OPTIONS, POST"),
        ("/graphql", "GET, HEAD, OPTIONS, POST"),
    ],
)
async def test_405_and_options_name_the_same_methods(client, path, allowed):
    refused = await client.put(path)
    options = await client.options(path)
    assert refused.status_code == 405
    assert options.status_code == 204
    assert refused.headers["allow"] == options.headers["allow"] == allowed


async def test_rate_limits_answer_429_with_retry_after_and_spare_the_probes(fresh_db):
    app = create_app(settings(api_key=KEY, rate_limit="5/minute"), database_url=fresh_db)
    async with AsyncTestClient(app) as client:
        answers = [await client.get("/v1/stats") for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[0].headers["ratelimit-policy"] == '"60s";q=5;w=60'
        assert answers[0].headers["ratelimit"].startswith('"limit";r=4;t=')
        refused = assert_problem(answers[-1], 429)
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert "too many requests" in refused["detail"]
        assert (await client.get("/healthz")).status_code == 200  # probes are never limited
        # The API key's holder has a budget of its own, ten times as large.
        keyed = await client.get("/v1/stats", headers={"Authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 200
        assert keyed.headers["ratelimit-policy"] == '"60s";q=50;w=60'


async def test_behind_a_trusted_load_balancer_each_forwarded_client_has_its_own_limit(fresh_db):
    limited = {"rate_limit": "2/minute"}
    trusting = create_app(settings(**limited, trusted_proxies=("testclient",)), database_url=fresh_db)
    async with AsyncTestClient(trusting) as client:
        statuses = [
            (await client.get("/v1/stats", headers={"X-Forwarded-For": f"203.0.113.{k % 2}"})).status_code
            for k in range(4)
        ]
        assert statuses == [200, 200, 200, 200]  # two clients, two requests each
        assert (await client.get("/v1/stats", headers={"X-Forwarded-For": "203.0.113.1"})).status_code == 429
    # Not trusted, the header is anybody's to write: every request counts against the connecting address.
    async with AsyncTestClient(create_app(settings(**limited), database_url=fresh_db)) as client:
        statuses = [
            (await client.get("/v1/stats", headers={"X-Forwarded-For": f"203.0.113.{k}"})).status_code for k in range(3)
        ]
        assert statuses == [200, 200, 429]


async def test_not_ready_until_the_model_is_loaded_but_stored_vectors_work_meanwhile(fresh_db):
    await load(fresh_db, CORPUS)
    from ingest.embed import embed_pending
    from sql import db

    async with db.connection(fresh_db) as conn:
        await embed_pending(conn, HashEmbedder())
    loading = LoadingEmbedder()
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=loading)) as client:
        body = assert_problem(await client.get("/readyz"), 503)
        assert "loading" in body["detail"]
        paper = (await client.get("/v1/papers?limit=1")).json()["items"][0]["id"]
        assert (await client.get(f"/v1/papers/{paper}/similar?limit=3")).status_code == 200  # a stored vector
        assert (await client.get("/v1/search", params={"q": "paper", "mode": "keyword"})).status_code == 200
        assert_problem(await client.get("/v1/search", params={"q": "paper", "mode": "semantic"}), 503)
        loading.ready = True
        assert (await client.get("/readyz")).status_code == 200


class HeldModel(LocalEmbedder):
    """The local embedder's type (so the app loads it in the background); loading ends when the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.release, self.loaded = threading.Event(), threading.Event()

    def load(self) -> Any:
        """No model: the test is about what happens once loading ends."""
        self.release.wait(10)
        self.loaded.set()
        return object()


@pytest.mark.parametrize("freeze", [False, True])
async def test_a_server_process_freezes_its_start_up_heap_and_the_model(fresh_db, freeze):
    """Objects that live as long as the process leave the collector's reach (full collections paused ~300 ms)."""
    gc.unfreeze()
    model = HeldModel()
    try:
        app = create_app(settings(), database_url=fresh_db, embedder=model, freeze_heap=freeze)
        async with AsyncTestClient(app):
            frozen_at_start = gc.get_freeze_count()
            made_while_loading = [[i] for i in range(10_000)]
            model.release.set()
            assert await asyncio.to_thread(model.loaded.wait, 10)
            await asyncio.sleep(0.1)  # the loading task's callback runs on the loop
            frozen_after_load = gc.get_freeze_count()
        assert (frozen_at_start > 0) is freeze
        assert (frozen_after_load >= frozen_at_start + len(made_while_loading)) is freeze
    finally:
        model.release.set()
        gc.unfreeze()
