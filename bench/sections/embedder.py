"""Embedder: torch fp32 against ONNX Runtime int8 on the same texts and the same two cores, and model load time.

    .venv/bin/python -m bench.run --only embedder

Texts: title + abstract of the seed papers (`../shared/seeds`, read in place) when present, else the synthetic
corpus. Each backend's `encode` runs over all of them, the backends alternating, `REPEATS` times; the figure is
the median, with the CPU of this process per paper (less sensitive to other work on the machine than wall
time). Load time is a fresh interpreter's import + load + one encoded text, as at a server's start: torch,
ONNX from its cache, and ONNX on an empty data directory (the one-time export).

The ONNX embedder runs one text per model call, as many calls at once as cores; the row *one call at a time* is
the same model and texts run the way the embedder did before (calls in turn, each spread over both cores by ONNX
Runtime's intra-op threads), kept for the side-by-side comparison.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import report
from bench.harness.corpus import generate
from bench.harness.load import medians
from bench.harness.meter import measured, wait_quiet
from bench.harness.service import ROOT, clean_env
from bench.harness.tools import log

TITLE = "Embedder"
REPEATS = 5
LOADS = 3
SPEEDUP = report.Target(at_least=3.0)  # ONNX papers/s over torch's, at the shipped token length
BUSY_PCT = 30  # other work above this share of a core (median) makes the wall-clock ratios unreliable
# The seed listings beside the repository; PAPERS_BENCH_SEEDS names them for a checkout elsewhere (a worktree).
SEEDS = Path(os.environ.get("PAPERS_BENCH_SEEDS", ROOT.parent / "shared" / "seeds"))
_LOAD = """
import sys, time
started = time.perf_counter()
from pathlib import Path
from ingest.embedder import LocalEmbedder, OnnxEmbedder
e = LocalEmbedder() if sys.argv[1] == "torch" else OnnxEmbedder(Path(sys.argv[2]))
e.encode(["a first text"])
print(time.perf_counter() - started, getattr(e, "exported", False))
"""


def texts() -> tuple[str, list[str]]:
    """The texts to embed and where they come from."""
    from ingest.embedder import embedding_text

    if SEEDS.is_dir():
        from ingest.parsers import parse

        entries = [e for path in sorted(SEEDS.iterdir()) for e in parse(path.read_text(encoding="utf-8")).entries]
        unique = sorted({embedding_text(e.title, e.abstract) for e in entries})
        return f"the {len(unique)} distinct seed papers", unique
    return "the synthetic corpus (no seeds found)", [embedding_text(p.title, p.abstract) for p in generate(600).papers]


def _load_seconds(backend: str, cache: Path) -> tuple[float, bool]:
    out = subprocess.run(
        [sys.executable, "-c", _LOAD, backend, str(cache)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    seconds, exported = out.stdout.split()
    return float(seconds), exported == "True"


def loads(cache: Path) -> dict[str, Any]:
    """Seconds from a fresh interpreter to a first vector: torch, ONNX cached, ONNX exporting (once)."""
    with tempfile.TemporaryDirectory(prefix="papers-models-") as empty:
        export_s, exported = _load_seconds("onnx", Path(empty))
    if not exported:
        raise SystemExit("an empty model cache did not export")
    torch_s, onnx_s = [], []
    for _ in range(LOADS):
        torch_s.append(_load_seconds("torch", cache)[0])
        seconds, exported = _load_seconds("onnx", cache)
        if exported:
            raise SystemExit("a cached model was exported again")
        onnx_s.append(seconds)
    return {"torch": torch_s, "onnx": onnx_s, "onnx_export": export_s}


class OneCallAtATime:
    """The ONNX embedder as it ran before: one text per call, calls in turn, each on both cores (intra-op threads)."""

    def __init__(self, cache: Path, max_tokens: int) -> None:
        import onnxruntime

        from ingest.onnx_model import OnnxModel, ensure_model

        path, _ = ensure_model(cache)
        self.model = OnnxModel(path, max_tokens)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.model.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> Any:
        """Vectors of the texts, one call each, in turn."""
        import numpy as np

        return np.stack([self.model.vector(ids) for ids in self.model.tokenize(texts)])


def _encode(embedder: Any, batch: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    embedder.encode(batch)
    seconds = time.perf_counter() - started
    return {"rps": len(batch) / seconds, "seconds": seconds}


def run(full: bool) -> dict[str, Any]:
    """Throughput of each backend (alternating) and load times."""
    from ingest.embedder import MAX_TOKENS, THREADS, LocalEmbedder, OnnxEmbedder

    source, batch = texts()
    cache = Path(tempfile.mkdtemp(prefix="papers-models-"))
    variants: dict[str, Any] = {
        f"torch fp32, {MAX_TOKENS} tokens": LocalEmbedder(),
        f"onnx int8, {MAX_TOKENS} tokens": OnnxEmbedder(cache),
        f"onnx int8, {MAX_TOKENS} tokens, one call at a time (before)": None,
        "onnx int8, 128 tokens": OnnxEmbedder(cache, max_tokens=128),
    }
    for name, embedder in variants.items():
        if embedder is None:  # after the first ONNX one has exported into the cache
            embedder = variants[name] = OneCallAtATime(cache, MAX_TOKENS)
        embedder.encode(batch[:8])  # loads and warms up
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(REPEATS):
        for name, embedder in variants.items():
            wait_quiet()
            runs[name].append(measured(functools.partial(_encode, embedder, batch), {"bench": os.getpid()}))
            log("embedder", f"{name}: {runs[name][-1]['rps']:.1f} papers/s")
    return {
        "source": source,
        "texts": len(batch),
        "max_tokens": MAX_TOKENS,
        "torch_batch": variants[f"torch fp32, {MAX_TOKENS} tokens"].batch_size,
        "onnx_threads": THREADS,
        "throughput": {
            name: medians(r) | {"seconds_runs": [round(x["seconds"], 1) for x in r], "rps_runs": [x["rps"] for x in r]}
            for name, r in runs.items()
        },
        "load_s": loads(cache),
    }


def render(result: dict[str, Any]) -> str:
    """The section: papers/s side by side, the speed-up against the target, load times."""
    through = result["throughput"]
    names = list(through)
    base = through[names[0]]
    rows = [
        [
            name,
            ", ".join(f"{s:.1f}" for s in t["seconds_runs"]),
            t["rps"],
            t["bench_us_per_req"] / 1e3,
            t["rps"] / base["rps"],
            base["bench_us_per_req"] / t["bench_us_per_req"],
            round(t["other_cpu_pct"]),
        ]
        for name, t in through.items()
    ]
    shipped = through[names[1]]
    # Each round ran torch then ONNX back to back: the median of the rounds' ratios cancels slow drift in the
    # machine's load better than the ratio of medians taken from different rounds.
    # (Results saved before the rounds were kept have only the medians.)
    if "rps_runs" in shipped:
        speedup = statistics.median(o / t for o, t in zip(shipped["rps_runs"], base["rps_runs"], strict=True))
        how = "the median over the rounds of ONNX papers/s over torch's in the same round"
    else:
        speedup, how = shipped["rps"] / base["rps"], "median papers/s over median papers/s"
    cpu_speedup = base["bench_us_per_req"] / shipped["bench_us_per_req"]
    before = next((t for name, t in through.items() if name.endswith("(before)")), None)
    earlier = ""
    if before is not None:
        ratio = statistics.median(b / t for b, t in zip(before["rps_runs"], base["rps_runs"], strict=True))
        earlier = f" One call at a time, as before: {ratio:.2f}× by the same rule."
    other = statistics.median(t["other_cpu_pct"] for t in through.values())
    if other > BUSY_PCT:
        earlier += (
            f" The rest of the machine used a median {other:.0f}% of a core meanwhile: torch's two threads wait on each"
            " other when a core is taken away, so wall-clock ratios here overstate those of a quiet machine; the CPU"
            " per paper ratio is the steadier figure."
        )
    load = result["load_s"]
    med = {k: statistics.median(v) for k, v in load.items() if isinstance(v, list)}
    headers = ["Backend", "Seconds (runs)", "Papers/s", "CPU ms/paper", "× papers/s", "× CPU/paper", "Other CPU %"]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"`encode` over {result['source']} (title + abstract), each backend in turn, median of "
            f"{len(base['seconds_runs'])}; torch in batches of {result['torch_batch']} sorted by length, ONNX one "
            f"text per call, {result.get('onnx_threads', 1)} calls at a time (*one call at a time*: each call on both"
            " cores, as before), all on the machine's 2 cores. × columns are against torch fp32; *Other CPU %* is"
            " what the rest of the machine used meanwhile (in % of one core). Quality of each backend (the same"
            " vectors however the calls are scheduled): docs/similarity.md.",
            "",
            report.table(headers, rows, "lrrrrrr"),
            "",
            f"**Target: ONNX int8 at {result['max_tokens']} tokens ≥ 3× torch's papers/s: "
            f"{SPEEDUP.verdict(speedup)}** ({speedup:.2f}×, {how}; {cpu_speedup:.2f}× by this process's CPU per "
            f"paper).{earlier}",
            "",
            f"Model load, a fresh interpreter to its first vector (median of {len(load['torch'])}): torch "
            f"{med['torch']:.1f} s, ONNX from its cache {med['onnx']:.1f} s; ONNX on an empty data directory "
            f"(exports once, then loads) {load['onnx_export']:.1f} s.",
        ]
    )


if __name__ == "__main__":
    print(render(run(False)))
