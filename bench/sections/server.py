"""ASGI server: granian (what `papers serve` runs) against uvicorn with uvloop and httptools, both serving
`api.asgi:app` with one worker, side by side in one run.

    .venv/bin/python -m bench.run --only server         # 3 rounds of 4 endpoints x 2 servers, about 7 minutes
    .venv/bin/python -m bench.sections.server           # smoke run: 1 round of 2 s loads, printed, not saved

uvicorn, uvloop and httptools are pip-installed into this virtualenv when missing (granian's `auto` loop then
picks uvloop too, so both servers run on the same event loop). A temporary embedded PostgreSQL gets a synthetic
corpus through the ingest pipeline. Each round starts one server, runs wrk on every endpoint (a warm-up whose
numbers are dropped, then the measured run) and stops it, then does the same for the other server; the order
alternates between rounds so slow drift of the machine falls on both. Before each measured run the machine is
given a few seconds to go quiet, and a run during which other processes used more than MAX_OTHER % of a core
is measured again once. Reported: medians over rounds of req/s and p50/p99 from `wrk --latency`, and the CPU
of the server's process tree, of PostgreSQL, of wrk and of everything else, read from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

from bench.harness import report
from bench.harness.corpus import generate, load
from bench.harness.load import Load, medians, write_requests, wrk
from bench.harness.meter import measured, wait_quiet
from bench.harness.postgres import TempPostgres, temp_postgres
from bench.harness.service import HOST, ROOT, VENV_BIN, Service, clean_env, free_port, http, papers_server
from bench.harness.tools import log

TITLE = "ASGI server"
SERVERS = ("granian", "uvicorn")
ROUNDS = 3
LOAD = Load(threads=2, connections=32, seconds=10)
WARMUP_S = 3
MAX_OTHER = 15.0  # % of one core used by other processes during a run before it is measured again (once)
PAPERS = 2_000
GRAPHQL = "{ papers(first: 20) { edges { node { id title listings { id rank } } } } }"
UVICORN = ("uvicorn", "uvloop", "httptools")
CPU_KEYS = (
    "server_cpu_pct",
    "server_us_per_req",
    "postgres_cpu_pct",
    "postgres_us_per_req",
    "client_cpu_pct",
    "other_cpu_pct",
)


def _ensure_uvicorn() -> None:
    """uvicorn and its fast loop and parser, pip-installed into this virtualenv when missing."""
    missing = [name for name in UVICORN if importlib.util.find_spec(name) is None]
    if missing:
        log("server", f"pip-installing {' '.join(missing)} into {sys.prefix} (for the uvicorn side)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True, timeout=900)


@contextlib.contextmanager
def _uvicorn(pg: TempPostgres, url: str) -> Iterator[Service]:
    """uvicorn with uvloop and httptools over url, one worker, no access log; ready when /healthz answers."""
    port = free_port()
    cmd = [
        str(VENV_BIN / "uvicorn"),
        "api.asgi:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
    ]
    env = clean_env(DATABASE_URL=url, PAPERS_EMBEDDER="none")
    service = Service("uvicorn", cmd, env, ROOT, pg.workdir / f"uvicorn-{port}.log", port)
    try:
        service.start(lambda: http(service.base + "/healthz", timeout=2)[0] == 200)
        yield service
    finally:
        service.stop()


def _server(name: str, pg: TempPostgres, url: str) -> contextlib.AbstractContextManager[Service]:
    # No embedding model loading in the background: none of the endpoints compared embeds anything.
    return papers_server(pg, url, name=name, PAPERS_EMBEDDER="none") if name == "granian" else _uvicorn(pg, url)


def _endpoints(pg: TempPostgres, paper_ids: list[str]) -> dict[str, tuple[str, str, Callable[[Any], bool]]]:
    """name -> (URL path for wrk, method, check of one decoded answer); request files written to the workdir."""
    files = {
        "healthz": ["/healthz"],
        "paper": [f"/v1/papers/{i}" for i in paper_ids],
        "papers20": ["/v1/papers?limit=20"],
        "graphql20": [json.dumps({"query": GRAPHQL})],
    }
    for name, lines in files.items():
        write_requests(pg.workdir / f"{name}.txt", lines)
    return {
        "healthz": ("", "GET", lambda body: True),
        "paper": ("", "GET", lambda body: body["id"] in paper_ids),
        "papers20": ("", "GET", lambda body: len(body["items"]) == 20),
        "graphql20": (
            "/graphql",
            "POST",
            lambda body: not body.get("errors") and len(body["data"]["papers"]["edges"]) == 20,
        ),
    }


def _check(base: str, pg: TempPostgres, name: str, path: str, method: str, ok: Callable[[Any], bool]) -> None:
    """One request before the load: 200 and a real answer, so wrk does not time fast failures."""
    line = (pg.workdir / f"{name}.txt").read_text().split("\n")[0]
    status, body = http(base + path, json.loads(line)) if method == "POST" else http(base + line)
    if status != 200 or not ok(body):
        raise SystemExit(f"{name}: HTTP {status}, unexpected answer {str(body)[:300]}")


def _measure(service: Service, pg: TempPostgres, name: str, path: str, method: str) -> dict[str, Any]:
    """A warm-up, then the measured wrk run with the CPU of every process tree (again once if disturbed)."""
    requests = pg.workdir / f"{name}.txt"
    wrk(service.base + path, requests, method, LOAD, seconds=WARMUP_S)
    for attempt in (1, 2):
        wait_quiet()
        run = measured(
            lambda: wrk(service.base + path, requests, method, LOAD), {"server": service.pid, "postgres": pg.pid}
        )
        run["attempts"] = attempt
        if run["other_cpu_pct"] <= MAX_OTHER:
            break
    return run


def run(full: bool) -> dict:
    """ROUNDS rounds, alternating which server goes first, of every endpoint on both servers."""
    _ensure_uvicorn()
    runs: list[dict[str, Any]] = []
    with temp_postgres("papers-bench-server-") as pg:
        url = asyncio.run(pg.fresh_database())
        loaded = asyncio.run(load(url, generate(PAPERS), vectors=False))
        endpoints = _endpoints(pg, loaded.paper_ids)
        for round_ in range(1, ROUNDS + 1):
            for name in SERVERS if round_ % 2 else SERVERS[::-1]:
                with _server(name, pg, url) as service:
                    for endpoint, (path, method, ok) in endpoints.items():
                        _check(service.base, pg, endpoint, path, method, ok)
                        runs.append(
                            {
                                "round": round_,
                                "server": name,
                                "endpoint": endpoint,
                                **_measure(service, pg, endpoint, path, method),
                            }
                        )
                        log("server", f"round {round_} {name} {endpoint}: {runs[-1]['rps']:,.0f} req/s")
    summary = {}
    for e in endpoints:
        for s in SERVERS:
            mine = [r for r in runs if (r["endpoint"], r["server"]) == (e, s)]
            summary[f"{e}/{s}"] = {**medians(mine), "rps_runs": [round(r["rps"]) for r in mine]}
    loop = next((m for m in ("rloop", "uvloop") if importlib.util.find_spec(m)), "asyncio")
    return {
        "medians": summary,
        "runs": runs,
        "endpoints": list(endpoints),
        "papers": loaded.counts["papers"],
        "load": LOAD.describe(),
        "cores": os.cpu_count(),
        "warmup_s": WARMUP_S,
        "rounds": ROUNDS,
        "granian_loop": loop,
        "versions": {p: version(p) for p in ("granian", *UVICORN)},
    }


def _compare(result: dict, endpoint: str) -> tuple[float, str]:
    """The req/s ratio of the first server to the second, and which is faster: only when no round of the slower
    beat a round of the faster, over at least two rounds."""
    (a, b), m = SERVERS, result["medians"]
    ra, rb = m[f"{endpoint}/{a}"]["rps_runs"], m[f"{endpoint}/{b}"]["rps_runs"]
    ratio = m[f"{endpoint}/{a}"]["rps"] / m[f"{endpoint}/{b}"]["rps"]
    if min(len(ra), len(rb)) < 2:
        return ratio, "neither"
    if min(ra) > max(rb):
        return ratio, a
    if min(rb) > max(ra):
        return ratio, b
    return ratio, "neither"


def _conclusion(result: dict) -> str:
    """Which server is faster on which endpoint, by what ratio, and what the HTTP layer itself costs."""
    (a, b), m = SERVERS, result["medians"]
    by: dict[str, list[str]] = {a: [], b: [], "neither": []}
    for endpoint in result["endpoints"]:
        ratio, faster = _compare(result, endpoint)
        by[faster].append(f"`{endpoint}` ({ratio:.2f})")
    parts = [f"{s} is faster on {', '.join(by[s])}" for s in (a, b) if by[s]]
    if by["neither"]:
        parts.append(f"no clear difference on {', '.join(by['neither'])} (the rounds overlap, or fewer than two)")
    working = [e for e in result["endpoints"] if e != "healthz"]
    costs = [m[f"{e}/{s}"]["server_us_per_req"] for e in working for s in SERVERS]
    text = (
        f"**Conclusion (req/s {a}/{b}, medians of {result['rounds']} rounds): {'; '.join(parts)}.** `healthz` "
        f"does no work, so its server CPU per request is the HTTP layer plus the framework: {a} "
        f"{m[f'healthz/{a}']['server_us_per_req']:.0f} µs, {b} {m[f'healthz/{b}']['server_us_per_req']:.0f} µs, "
        f"against {min(costs):,.0f} to {max(costs):,.0f} µs on the endpoints that read the database."
    )
    return text


def _tables(result: dict) -> list[str]:
    (a, b), m = SERVERS, result["medians"]
    main, spread, cpu = [], [], []
    for e in result["endpoints"]:
        ma, mb = m[f"{e}/{a}"], m[f"{e}/{b}"]
        main.append(
            [
                e,
                round(ma["rps"]),
                round(mb["rps"]),
                ma["rps"] / mb["rps"],
                ma["p50_ms"],
                mb["p50_ms"],
                ma["p99_ms"],
                mb["p99_ms"],
                ma["errors"] + mb["errors"],
            ]
        )
        spread.append([e, ", ".join(f"{r:,}" for r in ma["rps_runs"]), ", ".join(f"{r:,}" for r in mb["rps_runs"])])
        for s, ms in ((a, ma), (b, mb)):
            cpu.append([e, s, *(round(ms[k]) for k in CPU_KEYS)])
    return [
        report.table(
            [
                "Endpoint",
                f"{a} req/s",
                f"{b} req/s",
                f"req/s {a}/{b}",
                f"{a} p50 ms",
                f"{b} p50 ms",
                f"{a} p99 ms",
                f"{b} p99 ms",
                "Errors",
            ],
            main,
        ),
        "",
        "Req/s of each round, in round order:",
        "",
        report.table(["Endpoint", a, b], spread, "lll"),
        "",
        f"CPU during the measured runs (medians, % of one core; the machine has {result['cores']} cores):",
        "",
        report.table(
            [
                "Endpoint",
                "Server",
                "Server %",
                "Server CPU µs/req",
                "PostgreSQL %",
                "PostgreSQL CPU µs/req",
                "wrk %",
                "Other %",
            ],
            cpu,
            "llrrrrrr",
        ),
    ]


def render(result: dict) -> str:
    """The server section of docs/benchmarks.md."""
    v = result["versions"]
    again = sum(r["attempts"] > 1 for r in result["runs"])
    noisy = sum(r["other_cpu_pct"] > MAX_OTHER for r in result["runs"])
    lines = [
        "## ASGI server: granian or uvicorn",
        "",
        f"`papers serve` (granian {v['granian']}, one worker, its `auto` event loop: {result['granian_loop']}) "
        f"against `uvicorn api.asgi:app --workers 1 --loop uvloop --http httptools --no-access-log` (uvicorn "
        f"{v['uvicorn']}, uvloop {v['uvloop']}, httptools {v['httptools']}), both over a temporary embedded "
        f"PostgreSQL holding {result['papers']:,} synthetic papers, with `PAPERS_EMBEDDER=none`. Endpoints: "
        "`healthz` (`GET /healthz`, no database), `paper` (`GET /v1/papers/{id}`, 100 random ids), "
        f"`papers20` (`GET /v1/papers?limit=20`) and `graphql20` (`POST /graphql` `{GRAPHQL}`). Each of "
        f"{result['rounds']} rounds starts one server, runs every endpoint (`wrk {result['load']}` after a "
        f"{result['warmup_s']} s warm-up) and stops it, then the other; the order alternates between rounds. "
        "CPU is read from /proc for the server's process tree, PostgreSQL, wrk and everything else (other).",
        "",
        *_tables(result),
        "",
        _conclusion(result),
        "",
        f"{again} of {len(result['runs'])} runs were measured again because other processes used more than "
        f"{MAX_OTHER:.0f}% of a core; {noisy} kept runs are still above that"
        + (
            ": with most runs disturbed, take the comparison as indicative." if 2 * noisy > len(result["runs"]) else "."
        ),
        "",
        "Limits of this test: loopback only; wrk, server and PostgreSQL share the same cores; one worker; "
        "closed-loop saturation (p99 is mostly queueing) rather than latency at a fixed request rate; a small "
        "database that fits in memory.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    # A smoke run (python -m bench.sections.server): one round of short loads, printed, never saved.
    ROUNDS, LOAD, WARMUP_S, PAPERS = 1, Load(threads=2, connections=16, seconds=2), 1, 300
    print(render(run(False)))
