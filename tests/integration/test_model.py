"""The real embedding model (offline MiniLM, default ONNX int8 backend) on the real seeds: the end-to-end promise."""

from __future__ import annotations

import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from ingest.embed import embed_pending
from ingest.embedder import LOCAL_DIM, OnnxEmbedder
from ingest.pipeline import Source, ingest_source
from tests.apps import settings

pytest.importorskip("onnxruntime", reason="the local embedder's dependencies are not installed")

# Reworded descriptions (no title words in order) and the seed paper each should find.
REWORDED = {
    "compress the reasoning steps of LLMs into shorter explanations without losing accuracy": (
        "C3oT: Generating Shorter Chain-of-Thought without Compromising Effectiveness"
    ),
    "training a team of LLM agents (generator, verifier, refiner) jointly so they reason better together": (
        "MALT: Improving Reasoning with Multi-Agent LLM Training"
    ),
}


@pytest.fixture(scope="module")
def model(onnx_models) -> OnnxEmbedder:
    embedder = OnnxEmbedder(onnx_models)
    embedder.load()
    return embedder


async def test_model_gives_normalized_384d_vectors(model):
    vectors = await model.embed(["a paper about graphs", "another about proteins"])
    assert vectors.shape == (2, LOCAL_DIM)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    same = await model.embed(["a paper about graphs"])
    assert np.allclose(same[0], vectors[0], atol=1e-5)


async def test_reworded_description_finds_the_seed_paper_in_top_5(conn, fresh_db, seeds, model):
    for path in sorted(seeds.iterdir()):
        await ingest_source(conn, Source(path.name, path.read_bytes()))
    report = await embed_pending(conn, model)
    assert (report.embedded, report.failed) == (559, 0)
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=model)) as client:
        for query, title in REWORDED.items():
            for mode in ("semantic", "hybrid"):
                items = (await client.get("/v1/search", params={"q": query, "mode": mode, "limit": 5})).json()["items"]
                assert title in [i["title"] for i in items], (mode, query, [i["title"] for i in items])
            pid = (await client.get("/v1/papers/match", params={"title": title})).json()["paper"]["id"]
            similar = (await client.get(f"/v1/papers/{pid}/similar")).json()["items"]
            assert len(similar) == 10
            assert pid not in [i["id"] for i in similar]
