"""Processes and pooling: `papers serve --workers 1` and `2`, straight to PostgreSQL and through PgBouncer in
transaction mode, side by side in one run; and whether the query-embedding cache is worth sharing.

    flock /tmp/papers-bench.lock .venv/bin/python -m bench.run --only processes     # about 8 minutes

A temporary embedded PostgreSQL gets a synthetic corpus through the ingest pipeline; one PgBouncer 1.18+
(Debian's `pgbouncer`, 20 server connections: two processes' pools of 10) stands in front of it for the whole
run. Each round starts each of the four servers in turn (the order reverses every round), runs wrk on every
endpoint (a warm-up whose figures are dropped, then the measured run) and stops it. CPU is read from /proc:
the server's process tree, PostgreSQL, wrk, and everything else (PgBouncer's share is in "other").

The cache part times what a miss costs (the ONNX int8 model embedding one query text, as the API does) against
what a shared cache would cost on every lookup (a GET of a 384-float vector from a local Redis), and computes,
for a query stream drawn from a Zipf law, the miss rates of per-process LRU caches (the API's: 1,024 texts
each, requests spread round robin) against one cache shared by all processes.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import report
from bench.harness.corpus import generate, load
from bench.harness.load import Load, medians, write_requests, wrk
from bench.harness.meter import measured, wait_quiet
from bench.harness.postgres import TempPostgres, sql, temp_postgres
from bench.harness.service import Service, http, papers_server
from bench.harness.tools import log

TITLE = "Processes and pooling"
# (database route, granian workers); `pgbouncer, pool 32` gives the one process a client pool of 32 instead of
# PAPERS_POOL_MAX's 10: client connections to PgBouncer are cheap, and each query through it waits longer.
CONFIGS = (("direct", 1), ("direct", 2), ("pgbouncer", 1), ("pgbouncer", 2), ("pgbouncer, pool 32", 1))
ROUNDS = 3
LOAD = Load(threads=2, connections=32, seconds=8)
WARMUP_S = 2
PAPERS = 2_000
CACHE_SIZE = 1024  # api.services.search.QueryEmbeddings' default
ZIPF_S, DISTINCT, STREAM = 1.1, 20_000, 50_000


def _requests(pg: TempPostgres, paper_ids: list[str], words: list[str]) -> dict[str, str]:
    """endpoint -> request file (GET paths)."""
    files = {
        "paper": [f"/v1/papers/{i}" for i in paper_ids],
        "keyword": [f"/v1/search?q={w}&mode=keyword&limit=10" for w in words],
    }
    return {name: str(write_requests(pg.workdir / f"proc-{name}.txt", lines)) for name, lines in files.items()}


def _measure(service: Service, pg: TempPostgres, requests: str) -> dict[str, Any]:
    path = Path(requests)
    status, _ = http(service.base + path.read_text().split("\n")[0])
    if status != 200:
        raise SystemExit(f"{path.name}: HTTP {status} before the load")
    wrk(service.base, path, "GET", LOAD, seconds=WARMUP_S)
    wait_quiet()
    return measured(lambda: wrk(service.base, path, "GET", LOAD), {"server": service.pid, "postgres": pg.pid})


def _serving(pg: TempPostgres, url: str) -> list[dict[str, Any]]:
    from tests.pgbouncer import pgbouncer

    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        raise SystemExit("pgbouncer is not installed (Debian package `pgbouncer`)")
    loaded = asyncio.run(load(url, generate(PAPERS), vectors=False))
    titles = asyncio.run(sql(url, "SELECT string_agg(title, ' ') FROM (SELECT title FROM papers LIMIT 200) t"))[0]
    words = sorted({w.lower() for w in titles.split() if w.isalpha() and len(w) > 4})[:100]
    files = _requests(pg, loaded.paper_ids, words)
    runs: list[dict[str, Any]] = []
    with pgbouncer(url, pool_size=20, binary=binary) as (bounced, _):
        for round_ in range(1, ROUNDS + 1):
            for route, workers in CONFIGS if round_ % 2 else CONFIGS[::-1]:
                pooled = route.startswith("pgbouncer")
                env = {"PAPERS_EMBEDDER": "none"} | ({"PAPERS_DB_POOLER": "pgbouncer"} if pooled else {})
                env |= {"PAPERS_POOL_MAX": "32"} if route.endswith("pool 32") else {}
                target = bounced if pooled else url
                with papers_server(pg, target, workers=workers, **env) as service:
                    for endpoint, requests in files.items():
                        run = _measure(service, pg, requests)
                        runs.append({"round": round_, "route": route, "workers": workers, "endpoint": endpoint, **run})
                        log("processes", f"round {round_} {route} x{workers} {endpoint}: {run['rps']:,.0f} req/s")
    return runs


def _embed_ms() -> tuple[float, float]:
    """Median ms to embed one query text with the local ONNX model, and the model's vector size in bytes."""
    from ingest.embedder import OnnxEmbedder

    embedder = OnnxEmbedder(Path(tempfile.mkdtemp(prefix="papers-models-")))
    embedder.encode(["warm up"])  # exports the model once (about 13 s), then loads it
    times = []
    for k in range(200):
        started = time.perf_counter()
        vector = embedder.encode([f"query {k} about chain of thought reasoning in language models"])
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times), float(vector.astype(np.float32).nbytes)


def _redis_ms(size: int) -> float | None:
    """Median ms of one GET of a vector from a local Redis, through coredis (the client `limits` uses)."""
    import coredis

    from tests.redis_server import redis_server

    if shutil.which("redis-server") is None:
        return None

    async def timed(url: str) -> float:
        client = coredis.Redis.from_url(url)
        await client.set("q", b"\0" * size)
        times = []
        for _ in range(500):
            started = time.perf_counter()
            await client.get("q")
            times.append(1000 * (time.perf_counter() - started))
        return statistics.median(times)

    with redis_server() as url:
        return asyncio.run(timed(url))


def _limit_check_us() -> dict[str, Any]:
    """CPU µs this process spends counting one request against the default limits, in memory and in Redis."""
    from api.http.ratelimit import RateLimits
    from schema.settings import DEFAULT_RATE_LIMIT, Settings
    from tests.redis_server import redis_server

    scope: Any = {"type": "http", "headers": [], "client": ("203.0.113.1", 1)}

    async def cpu(storage: str) -> float:
        # Limits far above what the loop reaches, so every request is counted and allowed, as most are.
        high = ";".join(f"{int(i.split('/')[0]) * 10**6}/{i.split('/')[1]}" for i in DEFAULT_RATE_LIMIT.split(";"))
        limits = RateLimits(Settings(rate_limit=high, rate_limit_storage=storage))
        for _ in range(200):
            await limits.check(scope)
        started = time.process_time()
        for _ in range(2000):
            await limits.check(scope)
        return round((time.process_time() - started) / 2000 * 1e6, 1)

    found: dict[str, Any] = {"limits": DEFAULT_RATE_LIMIT, "memory": asyncio.run(cpu("memory://")), "redis": None}
    if shutil.which("redis-server") is not None:
        with redis_server() as url:
            found["redis"] = asyncio.run(cpu(url))
    return found


def _miss_rates() -> dict[str, float]:
    """Miss rates of per-process LRU caches (1, 2, 4 processes, round robin) on a Zipf stream; 1 is a shared one."""
    rng = np.random.default_rng(7)
    ranks = np.arange(1, DISTINCT + 1)
    weights = ranks**-ZIPF_S
    stream = rng.choice(DISTINCT, size=STREAM, p=weights / weights.sum())
    rates = {}
    for processes in (1, 2, 4):
        caches = [collections.OrderedDict[int, None]() for _ in range(processes)]
        misses = 0
        for i, query in enumerate(stream.tolist()):
            cache = caches[i % processes]
            if query in cache:
                cache.move_to_end(query)
                continue
            misses += 1
            cache[query] = None
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        rates[f"{processes} per process" if processes > 1 else "1 (= shared)"] = round(misses / STREAM, 4)
    return rates


def run(full: bool) -> dict:
    """The four servers on both endpoints, ROUNDS rounds; then the query-cache figures."""
    with temp_postgres("papers-bench-processes-") as pg:
        url = asyncio.run(pg.fresh_database())
        runs = _serving(pg, url)
    summary = {}
    for endpoint in ("paper", "keyword"):
        for route, workers in CONFIGS:
            mine = [r for r in runs if (r["endpoint"], r["route"], r["workers"]) == (endpoint, route, workers)]
            summary[f"{endpoint}/{route}/{workers}"] = {**medians(mine), "rps_runs": [round(r["rps"]) for r in mine]}
    embed_ms, size = _embed_ms()
    return {
        "medians": summary,
        "runs": runs,
        "papers": PAPERS,
        "load": LOAD.describe(),
        "rounds": ROUNDS,
        "limit_check_us": _limit_check_us(),
        "cache": {"embed_ms": round(embed_ms, 3), "redis_get_ms": _redis_ms(int(size)), "miss": _miss_rates()},
    }


def _serving_tables(result: dict) -> list[str]:
    m = result["medians"]
    rows = []
    for endpoint in ("paper", "keyword"):
        for route, workers in CONFIGS:
            r = m.get(f"{endpoint}/{route}/{workers}")
            if r is None:  # a configuration added after these results were measured
                continue
            rows.append(
                [
                    endpoint,
                    route,
                    workers,
                    round(r["rps"]),
                    ", ".join(f"{x:,}" for x in r["rps_runs"]),
                    r["p50_ms"],
                    r["p99_ms"],
                    round(r["server_cpu_pct"]),
                    round(r["postgres_cpu_pct"]),
                    round(r["other_cpu_pct"]),
                    r["errors"],
                ]
            )
    headers = ["Endpoint", "Database", "Workers", "req/s", "Rounds", "p50 ms", "p99 ms", "Server %", "PG %"]
    return [report.table([*headers, "Other %", "Errors"], rows, "lllrlrrrrrr")]


def _ratios(result: dict) -> str:
    m = result["medians"]
    parts = []
    for endpoint in ("paper", "keyword"):
        two = m[f"{endpoint}/direct/2"]["rps"] / m[f"{endpoint}/direct/1"]["rps"]
        bounced = [m[f"{endpoint}/pgbouncer/{w}"]["rps"] / m[f"{endpoint}/direct/{w}"]["rps"] for w in (1, 2)]
        wide = m.get(f"{endpoint}/pgbouncer, pool 32/1")
        parts.append(
            f"`{endpoint}`: 2 workers serve {two:.2f}× what 1 does (direct); through PgBouncer "
            f"{bounced[0]:.2f}× (1 worker) and {bounced[1]:.2f}× (2 workers) of direct"
            + (
                f", {wide['rps'] / m[f'{endpoint}/direct/1']['rps']:.2f}× with a client pool of 32 (1 worker)"
                if wide
                else ""
            )
        )
    others = sorted(r["other_cpu_pct"] for r in result["runs"])
    noise = (
        f" Other processes used {others[0]:.0f} to {others[-1]:.0f}% of a core during the measured runs (PgBouncer's "
        "share included), so differences within the spread of the rounds are the machine's, not the code's."
    )
    return "; ".join(parts) + "." + noise


def _cache_text(result: dict) -> list[str]:
    c = result["cache"]
    miss = c["miss"]
    one, two = miss["1 (= shared)"], miss["2 per process"]
    extra = (two - one) * 1000 * c["embed_ms"]  # model ms per 1,000 queries that separate caches add
    lines = [
        f"Query-embedding cache: a miss costs {c['embed_ms']:.2f} ms of model time (ONNX int8, one query text, "
        f"median of 200); a lookup in a shared Redis would cost "
        + (f"{c['redis_get_ms']:.3f} ms" if c["redis_get_ms"] is not None else "(not measured: no redis-server)")
        + f" on every query. Miss rates on a Zipf(s={ZIPF_S}) stream of {STREAM:,} queries over {DISTINCT:,} texts, "
        f"LRU of {CACHE_SIZE:,} per process:",
        "",
        report.table(["Processes", "Miss rate"], [[k, v] for k, v in miss.items()]),
        "",
    ]
    if c["redis_get_ms"] is not None:
        shared = 1000 * c["redis_get_ms"]
        verdict = "keep one cache per process" if extra < shared else "share the cache"
        lines.append(
            f"**Conclusion: {verdict}.** Per 1,000 queries, two separate caches add {extra:.0f} ms of model time "
            f"over one shared cache; a shared cache adds {shared:.0f} ms of round trips (plus a dependency on its "
            "store for every semantic query)."
        )
    return lines


def _limit_text(result: dict) -> list[str]:
    found = result.get("limit_check_us")
    if not found or found["redis"] is None:
        return []
    return [
        f"Counting one request against the default limits (`{found['limits']}`: two limits, each a hit and a window "
        f"read) costs the API process {found['memory']:.0f} µs of CPU in memory and {found['redis']:.0f} µs with "
        "Redis (limits' async storage through coredis; the CPU of redis-server itself not counted): the price of "
        "one limit shared by every process, paid on every request.",
    ]


def render(result: dict) -> str:
    """The processes section of docs/benchmarks.md."""
    return "\n".join(
        [
            "## Processes and pooling",
            "",
            f"`papers serve --workers 1` and `--workers 2`, straight to PostgreSQL and through PgBouncer (transaction "
            f"mode, `PAPERS_DB_POOLER=pgbouncer`), over {result['papers']:,} synthetic papers, `PAPERS_EMBEDDER=none`. "
            f"`paper` is `GET /v1/papers/{{id}}` (100 random ids), `keyword` `GET /v1/search?mode=keyword` "
            f"(100 title words). `wrk {result['load']}`, {result['rounds']} rounds, medians; the order of the "
            "servers reverses every round. CPU in % of one core (2 cores); PgBouncer's is in Other.",
            "",
            *_serving_tables(result),
            "",
            f"**Conclusion:** {_ratios(result)}",
            "",
            *_limit_text(result),
            "",
            *_cache_text(result),
        ]
    )
