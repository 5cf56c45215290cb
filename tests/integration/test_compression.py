"""Compressed answers: REST, GraphQL (both lanes), streams and the explorers' assets, by Accept-Encoding."""

from __future__ import annotations

import gzip

import brotli
import pytest
import zstandard
from litestar.testing import AsyncTestClient

from api.app import create_app
from tests.apps import settings
from tests.integration.test_rest import CORPUS, load

DECODE = {"zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b), "br": brotli.decompress}
DECODE["gzip"] = gzip.decompress
PAPER_QUERY = "{ papers(first: 16) { edges { node { id title abstract } } } }"


@pytest.fixture
async def client(fresh_db):
    await load(fresh_db, CORPUS)
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db)) as c:
        yield c


async def raw(client, method: str, url: str, accept: str, **kwargs) -> tuple[dict, bytes]:
    """The answer's headers and its bytes as sent (the test client would otherwise decode them)."""
    headers = {"Accept-Encoding": accept, **kwargs.pop("headers", {})}
    async with client.stream(method, url, headers=headers, **kwargs) as response:
        assert response.status_code == 200
        return dict(response.headers), b"".join([chunk async for chunk in response.aiter_raw()])


@pytest.mark.parametrize("encoding", ["zstd", "br", "gzip"])
@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        ("GET", "/v1/papers?limit=16", {}),
        ("GET", "/v1/export?format=csv", {}),  # a stream: compressed chunk by chunk
        ("POST", "/graphql", {"json": {"query": PAPER_QUERY}}),
    ],
)
async def test_large_answers_are_compressed_as_asked(client, encoding, method, url, kwargs):
    _, plain = await raw(client, method, url, "identity", **kwargs)
    assert len(plain) > 1024
    for _ in range(2):  # GraphQL: the second time the document is known and takes the known-read lane
        headers, body = await raw(client, method, url, f"{encoding}, identity;q=0.5", **kwargs)
        assert headers["content-encoding"] == encoding
        assert "accept-encoding" in headers["vary"].lower()
        assert DECODE[encoding](body) == plain
        assert len(body) < len(plain) / 2


async def test_small_answers_and_unasked_encodings_stay_plain(client):
    headers, body = await raw(client, "GET", "/healthz", "zstd, br, gzip")
    assert "content-encoding" not in headers
    assert body == b'{"status":"ok"}'
    headers, _ = await raw(client, "GET", "/v1/papers?limit=16", "identity")
    assert "content-encoding" not in headers


async def test_etag_survives_compression(client):
    paper = (await client.get("/v1/papers?limit=1")).json()["items"][0]
    url = f"/v1/papers/{paper['id']}"
    headers, _ = await raw(client, "GET", url, "br")
    assert headers["etag"].startswith('W/"')
    again = await client.get(url, headers={"If-None-Match": headers["etag"], "Accept-Encoding": "gzip"})
    assert again.status_code == 304
    strong = headers["etag"].removeprefix("W/")  # a client that dropped the W/ still matches, weakly
    assert (await client.get(url, headers={"If-None-Match": strong})).status_code == 304


async def test_explorer_assets_are_compressed(client):
    headers, body = await raw(client, "GET", "/explorer/graphiql/graphiql.min.js", "zstd")
    assert headers["content-encoding"] == "zstd"
    assert len(body) < 1_000_000
