"""The ONNX Runtime embedder: the same MiniLM as torch, exported once, int8 weights, its own embedding space."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.embed import embed_pending
from ingest.embedder import LOCAL_DIM, LocalEmbedder, OnnxEmbedder, embedding_text, space_of
from ingest.onnx_model import MODEL_FILE, QUANTIZATION, cache_key
from ingest.parsers import parse
from schema.errors import SpaceMismatchError
from sql import embeddings
from tests import factories

pytest.importorskip("sentence_transformers", reason="the torch embedder's dependencies are not installed")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Cosine between the int8 and the torch fp32 vector of the same text. Measured on the 559 seed papers:
# min 0.987, mean 0.9935 with per-channel 7-bit weights (what is shipped; an AVX2-only host); one scale per weight
# tensor gives min 0.89, mean 0.935, which these bounds refuse. The exported fp32 graph alone agrees to 1.0000.
MIN_COSINE, MEAN_COSINE = 0.98, 0.99


def fixture_texts() -> list[str]:
    """Title + abstract of every paper in the test fixtures, then the titles alone (short texts)."""
    entries = [e for path in sorted(FIXTURES.iterdir()) for e in parse(path.read_text(encoding="utf-8")).entries]
    return [embedding_text(e.title, e.abstract) for e in entries] + [e.title for e in entries]


@pytest.fixture(scope="module")
def onnx(onnx_models) -> OnnxEmbedder:
    embedder = OnnxEmbedder(onnx_models)
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def torch_model() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.load()
    return embedder


def test_onnx_vectors_are_close_to_torch_ones_for_the_same_text(onnx, torch_model):
    texts = fixture_texts()
    assert len(texts) >= 20
    int8, fp32 = onnx.encode(texts), torch_model.encode(texts)
    assert int8.shape == fp32.shape == (len(texts), LOCAL_DIM)
    assert int8.dtype == np.float32
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cosines = (int8 * fp32).sum(axis=1)
    assert cosines.min() >= MIN_COSINE, cosines
    assert cosines.mean() >= MEAN_COSINE, cosines

    # Each text's nearest other text is the same in both spaces.
    def nearest(v: np.ndarray) -> list[int]:
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return list(sims.argmax(axis=1))

    assert nearest(int8) == nearest(fp32)


def _one_call(onnx: OnnxEmbedder, texts: list[str]) -> np.ndarray:
    """The texts' vectors from a single model call, padded to the longest (what one text per call avoids)."""
    model = onnx.load()
    ids = model.tokenize(texts)
    block = np.zeros((len(ids), max(len(i) for i in ids)), dtype=np.int64)
    mask = np.zeros_like(block)
    for row, text_ids in enumerate(ids):
        block[row, : len(text_ids)] = text_ids
        mask[row, : len(text_ids)] = 1
    return model.run(block, mask)


def test_a_text_gets_the_same_vector_alone_and_among_others(onnx, onnx_models):
    # Activations are quantized with one scale per model call, so texts sharing a call would shift each
    # other's vectors (cosine to the text alone down to 0.988 in batches of 32); one text per call avoids it.
    texts = fixture_texts()
    alone = np.stack([onnx.encode([t])[0] for t in texts])
    assert np.array_equal(onnx.encode(texts), alone)
    assert np.array_equal(onnx.encode(texts[::-1]), alone[::-1])
    batched = _one_call(onnx, texts)
    assert not np.array_equal(batched, alone)  # what one text per call is for
    assert (batched * alone).sum(axis=1).min() >= MIN_COSINE


def test_calls_on_several_threads_give_the_vectors_of_calls_in_turn(onnx_models):
    texts = fixture_texts()
    in_turn = OnnxEmbedder(onnx_models, threads=1).encode(texts)
    at_once = OnnxEmbedder(onnx_models, threads=3).encode(texts)
    assert np.array_equal(at_once, in_turn)
    assert np.allclose(np.linalg.norm(at_once, axis=1), 1.0, atol=1e-5)


def test_the_space_names_backend_and_quantization(onnx, torch_model):
    assert tuple(space_of(onnx)) == ("sentence-transformers/all-MiniLM-L6-v2", 384, "onnxruntime", QUANTIZATION)
    assert tuple(space_of(torch_model)) == ("sentence-transformers/all-MiniLM-L6-v2", 384, "torch", "fp32")
    assert space_of(onnx) != space_of(torch_model)


async def test_stored_torch_vectors_refuse_the_onnx_embedder_until_re_embedded(conn, onnx, torch_model):
    from ingest.embed import reembed_all
    from ingest.pipeline import Source, ingest_source

    page = factories.page([(t.split(". ")[0], t) for t in fixture_texts()[:3]], label="Mar 11")
    assert (await ingest_source(conn, Source("p.txt", page.encode()), year=2024)).error is None
    assert (await embed_pending(conn, torch_model)).embedded == 3
    assert await embeddings.current_space(conn) == space_of(torch_model)
    with pytest.raises(SpaceMismatchError, match=r"torch fp32.*onnxruntime int8"):
        await embed_pending(conn, onnx)
    assert (await reembed_all(conn, onnx)).embedded == 3
    assert await embeddings.current_space(conn) == space_of(onnx)
    stored = await conn.fetch("SELECT embedding FROM papers ORDER BY paper_key")
    assert len(stored) == 3
    assert all(row["embedding"] is not None for row in stored)


def test_int8_weights_fit_in_7_bits_so_no_cpu_saturates_their_products(onnx_models, onnx):
    # AVX2 without VNNI adds pairs of u8 activation x s8 weight products in 16 bits (at most 32,767): 255 x 64 x 2
    # fits, 255 x 127 x 2 does not. With 7-bit weights (symmetric, -64..64) every CPU computes the same integers.
    import onnx as onnx_format
    from onnx import numpy_helper

    graph = onnx_format.load(str(onnx_models / cache_key() / MODEL_FILE)).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx_format.TensorProto.INT8]
    assert len(weights) >= 36  # the 6 layers' query, key, value, output and two feed-forward matrices
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == 64


def test_a_second_start_reuses_the_cached_model(onnx_models, onnx):
    path = onnx_models / cache_key() / MODEL_FILE
    before = path.stat()
    again = OnnxEmbedder(onnx_models)
    again.load()
    assert not again.exported
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_ino == before.st_ino
    assert np.array_equal(again.encode(["a paper about graphs"]), onnx.encode(["a paper about graphs"]))


def test_loading_a_cached_model_imports_neither_torch_nor_transformers(onnx_models):
    # What makes a server's model load short: the export's heavy libraries stay out of the process.
    script = (
        "import sys; from pathlib import Path; from ingest.embedder import OnnxEmbedder;"
        f"e = OnnxEmbedder(Path({str(onnx_models)!r})); e.load(); e.encode(['a text']);"
        "print(e.exported, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "False", "False"], out.stderr


def test_a_forked_child_embeds_with_the_parents_embedder(onnx):
    """`papers demo` embeds, then granian forks its workers: the child's pool must have threads of its own."""
    import os

    onnx.encode(["started in the parent"])  # the pool's threads now exist, in this process only
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if it gets a vector within the alarm
        import signal

        signal.alarm(30)
        ok = False
        try:
            ok = onnx.encode(["embedded in the child"]).shape == (1, LOCAL_DIM)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), status  # not killed by the alarm: the child did not hang
    assert os.WEXITSTATUS(status) == 0


async def test_a_server_loads_its_model_in_the_background_and_then_searches_by_meaning(onnx_models, fresh_db):
    import asyncio

    from litestar.testing import AsyncTestClient

    from api.app import create_app
    from tests.apps import settings

    embedder = OnnxEmbedder(onnx_models)  # not loaded: the server's start loads it
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=embedder)) as client:
        for _ in range(300):
            if embedder.ready:
                break
            await asyncio.sleep(0.1)
        assert embedder.ready
        answer = await client.get("/v1/search", params={"q": "protein folding", "mode": "semantic"})
        assert answer.status_code == 200


async def test_a_model_that_fails_to_load_is_logged_and_searches_say_unavailable(tmp_path, fresh_db, caplog):
    import asyncio

    from litestar.testing import AsyncTestClient

    from api.app import create_app
    from tests.apps import settings

    class Broken(OnnxEmbedder):
        def _make(self):
            raise OSError("model file unreadable")

    embedder = Broken(tmp_path)
    with caplog.at_level("ERROR", logger="papers.api"):
        async with AsyncTestClient(create_app(settings(), database_url=fresh_db, embedder=embedder)) as client:
            for _ in range(100):
                if any("failed to load" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
            answer = await client.get("/v1/search", params={"q": "protein folding", "mode": "semantic"})
            assert answer.status_code == 503
            assert answer.json()["detail"] == "the embedding model failed to load; the server's log says why"
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert "failed to load" in ready.json()["detail"]
            keyword = await client.get("/v1/search", params={"q": "protein folding", "mode": "keyword"})
            assert keyword.status_code == 200  # the rest of the server goes on
    failed = [r for r in caplog.records if r.getMessage() == "the embedding model failed to load"]
    assert failed
    assert "model file unreadable" in str(failed[0].exc_info[1])


def test_the_quantizers_advice_to_its_authors_is_not_printed_at_a_first_start(caplog):
    import inspect
    import logging

    from onnxruntime.quantization import quantize_dynamic

    from ingest.onnx_model import _quiet_quantizer

    advice = "Please consider to run pre-processing before quantization"
    assert advice in inspect.getsource(quantize_dynamic)  # what ONNX Runtime logs on the root logger every export
    with caplog.at_level(logging.WARNING), _quiet_quantizer():
        logging.warning(advice + ". Refer to example: ...")
        logging.warning("anything else")
    logging.warning(advice + " (after the export)")
    assert [r.getMessage() for r in caplog.records] == ["anything else", advice + " (after the export)"]
