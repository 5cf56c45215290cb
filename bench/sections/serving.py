"""Serving: facet counts, title autocomplete, export and response compression at 100k papers.

    .venv/bin/python -m bench.run --only serving          # 100k papers, about 5 minutes
    .venv/bin/python -m bench.sections.serving 5000       # smoke run at 5,000 papers: printed, not saved

A temporary embedded PostgreSQL gets the synthetic corpus (`bench.harness.corpus`, listings of 150 papers a day)
through the ingest pipeline, then `VACUUM ANALYZE`. Measured:

- in process, through the service layer (`api.services.browse`), one call at a time after a warm-up: every
  facet, unfiltered and under a keyword filter (median of 5 calls), and autocomplete over AUTOCOMPLETE typed texts
  (prefixes of 3 to 12 characters of random titles, and single title words), p50/p99;
- over HTTP against `papers serve` (one worker) with wrk: autocomplete at 1 and 8 connections, each facet at 4;
- compression: the bytes of four answers in each encoding, the CPU time to compress each in process with the
  server's own facades, and `GET /v1/papers?limit=100` under wrk with each Accept-Encoding side by side;
- export: every paper as JSON Lines and as CSV, read as fast as the client can, the server's RSS sampled
  throughout; and an export of ~10% of the papers, so the peaks can be compared.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

from bench.harness import report
from bench.harness.corpus import generate, load
from bench.harness.load import Load, write_requests, wrk
from bench.harness.meter import RssSampler, tree_rss, wait_quiet
from bench.harness.postgres import sql, temp_postgres
from bench.harness.service import papers_server
from bench.harness.tools import log

TITLE = "Serving"
PAPERS = 100_000
AUTOCOMPLETE = 400
AUTOCOMPLETE_P99 = report.Target(at_most=10.0)
FACET_MEDIAN = report.Target(at_most=100.0)
FACETS = ("listing", "listed_month", "listed_year", "has_arxiv")
ENCODINGS = ("identity", "zstd", "br", "gzip")
SECONDS = 6
ANSWERS = {
    "papers limit=100 (REST)": ("GET", "/v1/papers?limit=100", None),
    "papers limit=20 (REST)": ("GET", "/v1/papers?limit=20", None),
    "papers first: 100 (GraphQL)": (
        "POST",
        "/graphql",
        b'{"query":"{ papers(first: 100) { edges { node { id title abstract firstListed } } } }"}',
    ),
    "facets by listing (REST)": ("GET", "/v1/papers?group_by=listing", None),
}


def _typed(titles: list[str]) -> list[str]:
    """What users type: prefixes of titles (3-12 characters) and single words from inside them."""
    rng = random.Random(5)
    picked = rng.sample(titles, AUTOCOMPLETE)
    half = AUTOCOMPLETE // 2
    prefixes = [t[: rng.randint(3, 12)] for t in picked[:half]]
    words = [rng.choice([w for w in t.split() if w.isalpha()] or [t[:5]]) for t in picked[half:]]
    return prefixes + words


def _pct(samples: list[float], pct: int) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, len(ordered) * pct // 100)], 3)


async def _in_process(url: str, typed: list[str], keyword: str) -> dict[str, Any]:
    """Facet and autocomplete latencies through the service layer, one call at a time."""
    from api.services import browse
    from schema.api import PaperFilter
    from sql.db import connection

    out: dict[str, Any] = {"facets": {}}
    async with connection(url) as conn:
        for by in FACETS:
            for name, flt in (("all", PaperFilter()), (f"q={keyword}", PaperFilter(q=keyword))):
                times, groups = [], 0
                for _ in range(6):
                    started = time.perf_counter()
                    groups = len(await browse.facets(conn, flt, by))
                    times.append((time.perf_counter() - started) * 1000)
                out["facets"][f"{by} {name}"] = {"median_ms": round(statistics.median(times[1:]), 2), "groups": groups}
        for text in typed[:50]:  # warm-up
            await browse.autocomplete(conn, text)
        times, found = [], []
        for text in typed:
            started = time.perf_counter()
            found.append(len(await browse.autocomplete(conn, text)))
            times.append((time.perf_counter() - started) * 1000)
    out["autocomplete"] = {
        "p50_ms": _pct(times, 50),
        "p99_ms": _pct(times, 99),
        "max_ms": round(max(times), 3),
        "mean_suggestions": round(statistics.mean(found), 1),
    }
    return out


def _fetch(base: str, method: str, path: str, body: bytes | None, encoding: str) -> bytes:
    headers = {"Accept-Encoding": encoding, "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=body, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def _compression(base: str) -> dict[str, Any]:
    """Each answer's size per encoding, and the CPU time the server's facades take to compress it."""
    from io import BytesIO

    from litestar.middleware.compression.gzip_facade import GzipCompression

    from api.http.compression import COMPRESSION, NegotiatedFacade

    out = {}
    for name, (method, path, body) in ANSWERS.items():
        plain = _fetch(base, method, path, body, "identity")
        row: dict[str, Any] = {"identity_bytes": len(plain)}
        for encoding in ENCODINGS[1:]:
            row[f"{encoding}_bytes"] = len(_fetch(base, method, path, body, encoding))
            facade = GzipCompression if encoding == "gzip" else NegotiatedFacade
            times = []
            for _ in range(20):
                buffer = BytesIO()
                started = time.process_time()
                compressor = facade(buffer, encoding, COMPRESSION)
                compressor.write(plain)
                compressor.close()
                times.append((time.process_time() - started) * 1e6)
            row[f"{encoding}_us"] = round(statistics.median(times))
        out[name] = row
    return out


def _export(base: str, pid: int, path: str) -> dict[str, Any]:
    """One export read to the end as fast as possible: time, bytes, rows and the server's RSS before and at peak."""
    before, _ = tree_rss(pid)
    size, lines = 0, 0
    with RssSampler(pid, every=0.05).running() as sampler:
        started = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=600) as response:
            while chunk := response.read(1 << 16):
                size += len(chunk)
                lines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "mb": round(size / 1e6, 1),
        "rows_per_s": round(lines / seconds),
        "rows": lines,
        "rss_before_mb": round(before / 1e6, 1),
        "rss_peak_mb": round(sampler.peak / 1e6, 1),
    }


def _http(base: str, pid: int, workdir: Any, typed: list[str], keyword: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    paths = [f"/v1/autocomplete?q={urllib.parse.quote(t)}" for t in typed]
    requests = write_requests(workdir / "autocomplete.txt", paths)
    for connections in (1, 8):
        wrk(base, requests, "GET", Load(1, connections, 3))  # warm-up
        wait_quiet()
        out[f"autocomplete c{connections}"] = wrk(
            base, requests, "GET", Load(min(2, connections), connections, SECONDS)
        )
    for by in FACETS:
        lines = [f"/v1/papers?group_by={by}", f"/v1/papers?group_by={by}&q={keyword}"]
        facets = write_requests(workdir / f"facets-{by}.txt", lines)
        wait_quiet()
        out[f"facets {by} c4"] = wrk(base, facets, "GET", Load(2, 4, SECONDS))
    page = write_requests(workdir / "papers100.txt", ["/v1/papers?limit=100"])
    for encoding in ENCODINGS:
        wait_quiet()
        out[f"papers100 {encoding}"] = wrk(
            base, page, "GET", Load(2, 8, SECONDS), headers=[f"Accept-Encoding: {encoding}"]
        )
    return out


def run(full: bool) -> dict[str, Any]:
    """Load the corpus, then measure facets, autocomplete, compression and export."""
    with temp_postgres("papers-bench-serving-") as pg:
        url = asyncio.run(pg.fresh_database())
        corpus = generate(PAPERS)
        log("serving", f"loading {PAPERS:,} papers")
        loaded = asyncio.run(load(url, corpus, vectors=False))
        asyncio.run(sql(url, "VACUUM ANALYZE"))
        titles = [p.title for p in corpus.papers]
        keyword = titles[0].split()[0].lower()
        typed = _typed(titles)
        result: dict[str, Any] = {"papers": PAPERS, "keyword": keyword, "load_s": loaded.seconds}
        log("serving", "in process")
        result["in_process"] = asyncio.run(_in_process(url, typed, keyword))
        matched = asyncio.run(
            sql(url, f"SELECT count(*) FROM papers p WHERE p.search @@ websearch_to_tsquery('english', '{keyword}')")
        )
        result["keyword_matches"] = matched[0]
        with papers_server(pg, url, PAPERS_EMBEDDER="none") as server:
            log("serving", "over HTTP")
            result["http"] = _http(server.base, server.pid, pg.workdir, typed, keyword)
            result["compression"] = _compression(server.base)
            log("serving", "export")
            tenth = corpus.papers[PAPERS // 10].listed_on.isoformat()
            result["export"] = {
                "jsonl, all": _export(server.base, server.pid, "/v1/export?format=jsonl"),
                "csv, all": _export(server.base, server.pid, "/v1/export?format=csv"),
                "jsonl, ~10%": _export(server.base, server.pid, f"/v1/export?format=jsonl&listed_to={tenth}"),
            }
    return result


def _facet_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for by in FACETS:
        timed = result["in_process"]["facets"]
        every, keyword = timed[f"{by} all"], timed[f"{by} q={result['keyword']}"]
        wire = result["http"][f"facets {by} c4"]
        rows.append(
            [
                by,
                every["groups"],
                every["median_ms"],
                keyword["median_ms"],
                wire["rps"],
                wire["p50_ms"],
                wire["p99_ms"],
                FACET_MEDIAN.verdict(max(every["median_ms"], keyword["median_ms"])),
            ]
        )
    return rows


def _autocomplete_rows(result: dict[str, Any]) -> list[list[Any]]:
    inner = result["in_process"]["autocomplete"]
    rows = [
        [
            "service call, one at a time",
            None,
            inner["p50_ms"],
            inner["p99_ms"],
            AUTOCOMPLETE_P99.verdict(inner["p99_ms"]),
        ]
    ]
    for connections in (1, 8):
        wire = result["http"][f"autocomplete c{connections}"]
        verdict = AUTOCOMPLETE_P99.verdict(wire["p99_ms"]) if connections == 1 else "(saturated: queueing)"
        rows.append([f"HTTP, {connections} connection(s)", wire["rps"], wire["p50_ms"], wire["p99_ms"], verdict])
    return rows


def _compression_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, row in result["compression"].items():
        plain = row["identity_bytes"]
        cells: list[Any] = [name, plain]
        for encoding in ENCODINGS[1:]:
            cells += [f"{row[f'{encoding}_bytes']:,} ({row[f'{encoding}_bytes'] / plain:.0%})", row[f"{encoding}_us"]]
        rows.append(cells)
    return rows


def _wire_rows(result: dict[str, Any]) -> list[list[Any]]:
    base = result["http"]["papers100 identity"]
    rows = []
    for encoding in ENCODINGS:
        wire = result["http"][f"papers100 {encoding}"]
        rows.append([encoding, wire["rps"], f"{wire['rps'] / base['rps']:.2f}×", wire["p50_ms"], wire["p99_ms"]])
    return rows


def render(result: dict[str, Any]) -> str:
    """The serving section of docs/benchmarks.md."""
    export = [
        [name, e["rows"], e["mb"], e["seconds"], e["rows_per_s"], e["rss_before_mb"], e["rss_peak_mb"]]
        for name, e in result["export"].items()
    ]
    lines = [
        "## Serving: facets, autocomplete, compression, export",
        "",
        f"{result['papers']:,} synthetic papers in {result['papers'] // 150:,} daily listings (ingested in"
        f" {result['load_s'].get('ingest', '?')} s), `papers serve` with one worker and `PAPERS_EMBEDDER=none`."
        f" The keyword filter is `q={result['keyword']}` ({result['keyword_matches']:,} papers match).",
        "",
        "### Facets (`GET /v1/papers?group_by=...`, `paperFacets`)",
        "",
        f"Service call median of 5 after a warm-up, unfiltered and under the keyword; HTTP: wrk -t2 -c4"
        f" -d{SECONDS}s over both. Target: median ≤ {FACET_MEDIAN.at_most:g} ms.",
        "",
        report.table(
            ["group_by", "groups", "all: ms", "keyword: ms", "HTTP req/s", "p50 ms", "p99 ms", "verdict"],
            _facet_rows(result),
        ),
        "",
        "### Autocomplete (`GET /v1/autocomplete?q=`)",
        "",
        f"{AUTOCOMPLETE} typed texts: prefixes of 3-12 characters of random titles and single title words"
        f" (mean {result['in_process']['autocomplete']['mean_suggestions']} suggestions each). Target: p99"
        f" {AUTOCOMPLETE_P99} ms one request at a time.",
        "",
        report.table(["measured", "req/s", "p50 ms", "p99 ms", "verdict"], _autocomplete_rows(result)),
        "",
        "### Compression",
        "",
        "Bytes sent per Accept-Encoding (share of the plain size) and the CPU time (µs, median of 20) the server's"
        " own compressors take for that answer, in process:",
        "",
        report.table(
            ["answer", "plain bytes", "zstd", "µs", "br", "µs", "gzip", "µs"], _compression_rows(result), "lrrrrrrr"
        ),
        "",
        f"`GET /v1/papers?limit=100` under wrk -t2 -c8 -d{SECONDS}s with each Accept-Encoding, side by side:",
        "",
        report.table(["encoding", "req/s", "vs identity", "p50 ms", "p99 ms"], _wire_rows(result)),
        "",
        "### Export (`GET /v1/export`)",
        "",
        "Read to the end as fast as one client can, uncompressed; the server's RSS (process tree) sampled every"
        " 50 ms. Constant memory shows as the same peak for all papers and for a tenth of them.",
        "",
        report.table(["export", "rows", "MB", "s", "rows/s", "RSS before MB", "RSS peak MB"], export),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    # A smoke run (python -m bench.sections.serving N): N papers, short loads, printed, never saved.
    PAPERS = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    AUTOCOMPLETE, SECONDS = 100, 2
    print(render(run(False)))
