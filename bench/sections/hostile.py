"""Hostile input: what the worst anonymous requests cost, whether probes stay fast meanwhile, memory under
many distinct documents, parse time by listing size, and how quickly a busy worker stops.

    .venv/bin/python -m bench.run --only hostile       # about 5 minutes

A temporary embedded PostgreSQL gets a synthetic corpus (papers without vectors, so recommendations from
them would need the model); `papers serve --workers 1` runs with the local model and no rate limits
(what is measured is the cost of one request, not the limiter). Each hostile request is sent serially
REPEATS times; its cost is the server's CPU per request (read from /proc). Then HOSTILE_CLIENTS clients
send the costliest of them in a loop while wrk measures /healthz, next to /healthz alone. A thousand
distinct valid documents of about 7 KB each are sent and the server's RSS compared before and after. A
daily-papers listing of 10k, 20k and 40k items is parsed in this process (no database). Last, a
`papers worker` with thousands of papers waiting for vectors is sent SIGTERM mid-batch and timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from typing import Any

from bench.harness import corpus, report
from bench.harness.load import Load, write_requests, wrk
from bench.harness.meter import measured, tree_rss, wait_quiet
from bench.harness.postgres import TempPostgres, temp_postgres
from bench.harness.service import VENV_BIN, Service, clean_env, http, papers_server
from bench.harness.tools import log

TITLE = "Hostile input"
PAPERS = 5_000
REPEATS = 20
HOSTILE_CLIENTS = 4
DOCUMENTS = 1_000
PARSE_SIZES = (10_000, 20_000, 40_000)
TARGETS = {"cpu_ms": report.Target(at_most=50.0), "healthz_p99_ratio": report.Target(at_most=3.0),
           "stop_s": report.Target(at_most=5.0), "rss_growth_mib": report.Target(at_most=100.0)}  # fmt: skip


def _cases(ids: list[str]) -> dict[str, tuple[str, str, bytes]]:
    """Each hostile request: (method, path, body)."""
    gql = lambda q: json.dumps({"query": q}).encode()  # noqa: E731
    nested = "entries(first: 100) { edges { node { paper { listings { listing { id } } } } } }"
    return {
        "GraphQL: one field repeated 490 times (8 KB)": (
            "POST", "/graphql", gql("{ stats { " + "papers " * 490 + "} }")),
        "GraphQL: 2 KB asking for millions of objects": (
            "POST", "/graphql", gql("{ listings(first: 100) { edges { node { " + nested + " } } } }")),
        "GraphQL: 15 recommend aliases with texts": ("POST", "/graphql", gql("{ " + " ".join(
            f'r{i}: recommend(text: "topic {i} of many", first: 5) {{ id }}' for i in range(15)) + " }")),
        "REST: recommend from 50 papers without vectors": (
            "POST", "/v1/recommendations", json.dumps({"positive": ids[:50], "limit": 5}).encode()),
        "REST: JSON nested 3,000 deep": ("POST", "/v1/papers/batch", b'{"ids": ' + b"[" * 3000 + b"]" * 3000 + b"}"),
        "REST: a forged cursor": ("GET", "/v1/papers?cursor=WyJwYXBlcnM6cmVjZW50IiwgIjIwMjQtMDEtMDEiLCAxZTQwXQ", b""),
    }  # fmt: skip


def _send(base: str, method: str, path: str, body: bytes) -> int:
    request = urllib.request.Request(base + path, data=body or None, method=method,
                                     headers={"content-type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _costs(server: Service, pg: TempPostgres, cases: dict[str, tuple[str, str, bytes]]) -> dict[str, Any]:
    """CPU per request of each hostile request, sent serially, and the status it got."""
    out = {}
    for name, (method, path, body) in cases.items():
        statuses: list[int] = []

        def run(m: str = method, p: str = path, b: bytes = body, seen: list[int] = statuses) -> dict[str, Any]:
            started = time.perf_counter()
            seen.extend(_send(server.base, m, p, b) for _ in range(REPEATS))
            return {"rps": REPEATS / (time.perf_counter() - started)}

        wait_quiet()
        cost = measured(run, {"server": server.pid, "postgres": pg.pid})
        out[name] = {"cpu_ms": round(cost["server_us_per_req"] / 1000, 2), "status": sorted(set(statuses))}
        log("hostile", f"{name}: {out[name]}")
    return out


def _probe_under_attack(server: Service, pg: TempPostgres, case: tuple[str, str, bytes]) -> dict[str, Any]:
    """/healthz p99 alone, then while HOSTILE_CLIENTS clients send the costliest hostile request in a loop."""
    probes = write_requests(pg.workdir / "healthz.txt", ["/healthz"])
    load = Load(threads=1, connections=4, seconds=10)
    alone = wrk(server.base, probes, "GET", load)
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            _send(server.base, *case)

    attackers = [threading.Thread(target=attack, daemon=True) for _ in range(HOSTILE_CLIENTS)]
    for thread in attackers:
        thread.start()
    try:
        under = wrk(server.base, probes, "GET", load)
    finally:
        stop.set()
        for thread in attackers:
            thread.join(timeout=60)
    return {"alone_p99_ms": alone["p99_ms"], "attacked_p99_ms": under["p99_ms"], "attacked_rps": under["rps"]}


def _memory(server: Service) -> dict[str, Any]:
    """RSS of the server's processes before and after DOCUMENTS distinct valid documents of about 7 KB."""
    before = tree_rss(server.pid)[0]
    filler = "#" + "x" * 6_900 + "\n"
    for i in range(DOCUMENTS):
        http(server.base + "/graphql", {"query": f"{filler}query Q{i} {{ stats {{ papers }} }}"}, timeout=30)
    after = tree_rss(server.pid)[0]
    return {"before_mib": round(before / 2**20), "after_mib": round(after / 2**20),
            "growth_mib": round((after - before) / 2**20)}  # fmt: skip


def _parse_times() -> list[dict[str, Any]]:
    """Parse time of a daily-papers listing by its number of items (linear parsing: time per item flat)."""
    from ingest.parsers import parse

    out = []
    for n in PARSE_SIZES:
        items = [{"paper": {"id": None, "title": f"Paper {i}", "summary": "An abstract of the paper. " * 20},
                  "publishedAt": "2024-03-11T00:00:00Z"} for i in range(n)]  # fmt: skip
        text = json.dumps(items, indent=2)
        started = time.process_time()
        parse(text)
        seconds = time.process_time() - started
        out.append(
            {
                "items": n,
                "mb": round(len(text) / 1e6, 1),
                "s": round(seconds, 2),
                "us_per_item": round(1e6 * seconds / n, 1),
            }
        )
    return out


def _worker_stop(pg: TempPostgres, url: str) -> dict[str, Any]:
    """Seconds from SIGTERM to exit for a worker busy embedding a backlog with the local model."""
    env = clean_env(DATABASE_URL=url, PAPERS_EMBEDDER="local")
    proc = subprocess.Popen([str(VENV_BIN / "papers"), "worker"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(20)  # the model loads, batches start
        asked = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        return {"stop_s": round(time.monotonic() - asked, 2), "exit": proc.returncode}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def run(full: bool) -> dict[str, Any]:
    """Measure every hostile case; see the module docstring."""
    with temp_postgres("papers-bench-hostile-") as pg:
        url = asyncio.run(pg.fresh_database())
        loaded = asyncio.run(corpus.load(url, corpus.generate(PAPERS), vectors=False))
        with papers_server(pg, url, PAPERS_EMBEDDER="local") as server:
            while http(server.base + "/readyz", timeout=30)[0] != 200:  # the model loads
                time.sleep(0.5)
            cases = _cases(loaded.paper_ids)
            costs = _costs(server, pg, cases)
            worst = max(costs, key=lambda name: costs[name]["cpu_ms"])
            probe = _probe_under_attack(server, pg, cases[worst])
            memory = _memory(server)
        worker = _worker_stop(pg, url)
    return {"papers": PAPERS, "repeats": REPEATS, "costs": costs, "worst": worst, "probe": probe,
            "memory": memory, "parse": _parse_times(), "worker": worker}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    """The section's Markdown."""
    costs, probe, memory, worker = result["costs"], result["probe"], result["memory"], result["worker"]
    cpu = TARGETS["cpu_ms"]
    rows = [
        [name, x["cpu_ms"], ", ".join(map(str, x["status"])), cpu.verdict(x["cpu_ms"])] for name, x in costs.items()
    ]
    ratio = probe["attacked_p99_ms"] / max(probe["alone_p99_ms"], 1e-6)
    parse = [[p["items"], p["mb"], p["s"], p["us_per_item"]] for p in result["parse"]]
    flat = result["parse"][-1]["us_per_item"] / max(result["parse"][0]["us_per_item"], 1e-6)
    checks = [
        ["/healthz p99 under attack / alone", f"{ratio:.1f}×", str(TARGETS["healthz_p99_ratio"]),
         TARGETS["healthz_p99_ratio"].verdict(ratio)],
        ["server RSS growth after 1,000 distinct 7 KB documents (MiB)", memory["growth_mib"],
         str(TARGETS["rss_growth_mib"]), TARGETS["rss_growth_mib"].verdict(memory["growth_mib"])],
        ["worker stop with a backlog (s)", worker["stop_s"], str(TARGETS["stop_s"]),
         TARGETS["stop_s"].verdict(worker["stop_s"])],
    ]  # fmt: skip
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"One `papers serve` worker process with the local model over {result['papers']:,} papers without"
            f" vectors; each request sent {result['repeats']} times, serially. CPU is the server's per request.",
            "",
            report.table(["request", "server CPU ms", "status", f"CPU {cpu}"], rows, align="lrrl"),
            "",
            f"While {HOSTILE_CLIENTS} clients sent the costliest of them ({result['worst']}) in a loop, `/healthz`"
            f" answered with p99 {probe['attacked_p99_ms']} ms (alone: {probe['alone_p99_ms']} ms).",
            "",
            report.table(["check", "value", "target", "verdict"], checks, align="lrrl"),
            "",
            f"Server RSS {memory['before_mib']} → {memory['after_mib']} MiB. Parsing a daily-papers listing (CPU time,"
            f" in process); time per item at the largest size is {flat:.2f}× the smallest's (linear: about 1):",
            "",
            report.table(["items", "MB", "seconds", "µs per item"], parse),
        ]
    )
