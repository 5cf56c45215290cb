"""Read replicas: a read-heavy REST/GraphQL mix with 1 and 2 API processes over primary + hot standby against the
primary alone, side by side in one run; then how long a killed replica takes to leave rotation and to come back.

    flock /tmp/papers-bench.lock .venv/bin/python -m bench.run --only replicas     # about 5 minutes

A temporary embedded PostgreSQL (the primary) gets a synthetic corpus through the ingest pipeline; a hot
standby is made from it with the embedded binaries (`pg_basebackup -R`, bench/harness/replication.py), on the
same machine. Each round runs the four set-ups (processes x databases) one after another, in an order that
alternates between rounds; each is a warm-up, then a measured wrk run of the mix with the CPU of the server,
the primary and the standby read from /proc. Failover: `papers serve` (one process, the default check
interval and lag bound) under a steady read load from four client threads; the standby is killed
(`pg_ctl stop -m immediate`), then started again, while /readyz is polled every 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.harness import report
from bench.harness.corpus import generate, load
from bench.harness.load import Load, medians, write_requests, wrk
from bench.harness.meter import measured, wait_quiet
from bench.harness.postgres import TempPostgres, temp_postgres
from bench.harness.replication import Standby, standbys
from bench.harness.service import Service, http, papers_server
from bench.harness.tools import ASSETS, log
from schema.settings import ReplicaSettings
from sql.db import connection

TITLE = "Read replicas"
PAPERS = 5_000
ROUNDS = 2
LOAD = Load(threads=2, connections=32, seconds=10)
WARMUP_S = 3
MAX_OTHER = 15.0  # % of one core used by other processes during a run before it is measured again (once)
FAILOVER_ROUNDS = 3
FAILOVER_CLIENTS = 4
KEY = "bench-key"
SETUPS = (("primary", 1), ("primary+replica", 1), ("primary", 2), ("primary+replica", 2))
DEFAULTS = ReplicaSettings()
# Failover targets: no request fails, and a dead replica leaves rotation within one check (plus its timeout).
NO_FAILURES = report.Target(at_most=0)
OUT_WITHIN = report.Target(at_most=DEFAULTS.check_interval + 2.0)
AUTH = [f"Authorization: Bearer {KEY}"]  # for the submissions of the mix; reads ignore it
MIX = {"paper": 30, "papers20": 15, "search": 10, "graphql_paper": 25, "graphql_papers20": 18, "submit": 2}


def _abstract(i: int) -> str:
    return f"Submission {i} of the benchmark mix. " + "It restates what was measured and why it matters. " * 6


def _mix_lines(paper_ids: list[str], words: list[str]) -> list[str]:
    """100 requests in the MIX proportions (`METHOD PATH [BODY]`, for mixed.lua)."""
    rng = random.Random(7)
    paper_q = "query($id: String!) { paper(id: $id) { id title listings { id rank } } }"
    papers_q = "{ papers(first: 20) { edges { node { id title listings { id rank } } } } }"
    make = {
        "paper": lambda i: f"GET /v1/papers/{rng.choice(paper_ids)}",
        "papers20": lambda i: "GET /v1/papers?limit=20",
        "search": lambda i: f"GET /v1/search?q={rng.choice(words)}&mode=keyword&limit=10",
        "graphql_paper": lambda i: (
            "POST /graphql " + json.dumps({"query": paper_q, "variables": {"id": rng.choice(paper_ids)}})
        ),
        "graphql_papers20": lambda i: "POST /graphql " + json.dumps({"query": papers_q}),
        "submit": lambda i: (
            "POST /v1/listings?source=bench "
            + json.dumps([{"publishedAt": "2024-03-11", "paper": {"title": f"Mix Paper {i}", "summary": _abstract(i)}}])
        ),
    }
    return [make[kind](i) for kind, count in MIX.items() for i in range(count)]


def _check_mix(base: str, lines: list[str]) -> None:
    """Each kind of request once before any load: a 2xx with a real answer, so wrk never times failures."""
    counts = list(MIX.values())
    for line in (lines[sum(counts[:i])] for i in range(len(counts))):  # the first of each kind
        _, path, *body = line.split(" ", 2)
        headers = {"Authorization": f"Bearer {KEY}"} if "listings" in path else {}
        status = _request(base + path, json.loads(body[0]) if body else None, headers)
        if status not in (200, 202):
            raise SystemExit(f"{line[:120]}: HTTP {status}")


def _request(url: str, body: Any, headers: dict[str, str]) -> int:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _replica(base: str) -> dict[str, Any] | None:
    """The replica's row of /readyz (None when the server does not answer)."""
    status, body = http(base + "/readyz", timeout=2)
    return body["databases"][1] if status == 200 and len(body["databases"]) > 1 else None


def _until(test: Any, timeout: float = 60, every: float = 0.05) -> float:
    """Poll test() until true; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting on the replica")
        time.sleep(every)
    return time.monotonic()


def _pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


@contextlib.contextmanager
def _server(pg: TempPostgres, url: str, workers: int, replica: str | None, **env: str) -> Iterator[Service]:
    extra = {"DATABASE_REPLICA_URLS": replica} if replica else {}
    name = f"papers serve x{workers}" + (" + replica" if replica else "")
    with papers_server(
        pg, url, workers=workers, name=name, PAPERS_EMBEDDER="none", PAPERS_API_KEY=KEY, **extra, **env
    ) as s:
        if replica:
            _until(lambda: (_replica(s.base) or {}).get("healthy", False))
        yield s


def _throughput(
    pg: TempPostgres, url: str, standby: Standby, replica_url: str, mix: Path, lines: list[str]
) -> list[dict]:
    runs: list[dict[str, Any]] = []
    for round_ in range(1, ROUNDS + 1):
        for databases, workers in SETUPS if round_ % 2 else SETUPS[::-1]:
            replica = replica_url if databases == "primary+replica" else None
            with _server(pg, url, workers, replica) as service:
                _check_mix(service.base, lines)
                wrk(service.base, mix, "MIX", LOAD, seconds=WARMUP_S, headers=AUTH, script=ASSETS / "mixed.lua")
                trees = {"server": service.pid, "primary": pg.pid, "replica": _pid(standby.pgdata)}
                for attempt in (1, 2):  # a run disturbed by other processes is measured again, once
                    wait_quiet()
                    run = measured(
                        lambda: wrk(service.base, mix, "MIX", LOAD, headers=AUTH, script=ASSETS / "mixed.lua"), trees
                    )
                    run["attempts"] = attempt
                    if run["other_cpu_pct"] <= MAX_OTHER:
                        break
                runs.append({"round": round_, "databases": databases, "workers": workers, **run})
                log(
                    "replicas",
                    f"round {round_} {databases} x{workers}: {run['rps']:,.0f} req/s, p99 {run['p99_ms']} ms",
                )
    return runs


class _Reader:
    """Client threads reading papers by id until stopped: (start time, seconds, HTTP status or error) each."""

    def __init__(self, base: str, paper_ids: list[str]) -> None:
        self.base, self.ids, self.stop = base, paper_ids, threading.Event()
        self.seen: list[tuple[float, float, int]] = []
        self.threads = [threading.Thread(target=self._read, args=(i,)) for i in range(FAILOVER_CLIENTS)]

    def _read(self, i: int) -> None:
        rng = random.Random(i)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status = _request(f"{self.base}/v1/papers/{rng.choice(self.ids)}", None, {})
            except OSError:
                status = 0
            self.seen.append((started, time.monotonic() - started, status))

    def __enter__(self) -> _Reader:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _failover_round(service: Service, standby: Standby, paper_ids: list[str]) -> dict[str, Any]:
    with _Reader(service.base, paper_ids) as reader:
        time.sleep(2)
        killed = time.monotonic()
        standby.stop("immediate")
        out = _until(lambda: (_replica(service.base) or {}).get("state") == "unreachable")
        time.sleep(2)
        starting = time.monotonic()
        standby.start()
        accepting = time.monotonic()
        back = _until(lambda: (_replica(service.base) or {}).get("healthy", False))
        time.sleep(1)
    before = [s for s in reader.seen if s[0] < killed]
    window = [s for s in reader.seen if killed <= s[0] < killed + 2]
    failed = [s for s in reader.seen if s[2] != 200]
    return {
        "requests": len(reader.seen),
        "failed": len(failed),
        "last_failure_after_kill_s": round(max(s[0] for s in failed) - killed, 3) if failed else 0.0,
        "out_of_rotation_s": round(out - killed, 3),
        "standby_start_s": round(accepting - starting, 3),
        "back_in_rotation_s": round(back - accepting, 3),
        "restart_to_rotation_s": round(back - starting, 3),
        "p99_before_ms": round(1000 * _pct([s[1] for s in before], 99), 1),
        "p99_after_kill_ms": round(1000 * _pct([s[1] for s in window], 99), 1),
        "max_after_kill_ms": round(1000 * max((s[1] for s in window), default=0.0), 1),
    }


async def _words(url: str) -> list[str]:
    """Title words of the corpus to search for (keyword search reads the BM25 postings on the replica)."""
    async with connection(url, vector=False) as conn:
        titles = await conn.fetch("SELECT title FROM papers ORDER BY paper_key LIMIT 500")
    words = {w.lower() for row in titles for w in row["title"].split() if w.isalpha() and len(w) >= 5}
    return sorted(words)[:60]


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * pct // 100)] if ordered else 0.0


def run(full: bool) -> dict:
    """The throughput rounds, then the failover rounds, on one primary and one standby."""
    with temp_postgres("papers-bench-replicas-") as pg:
        url = asyncio.run(pg.fresh_database())
        loaded = asyncio.run(load(url, generate(PAPERS), vectors=False))
        with standbys(pg.url, pg.workdir / "standbys") as [standby]:
            replica_url = standby.url(url.rsplit("?", 1)[0].rsplit("/", 1)[1])
            words = asyncio.run(_words(url))
            lines = _mix_lines(loaded.paper_ids, words)
            mix = write_requests(pg.workdir / "mix.txt", lines)
            runs = _throughput(pg, url, standby, replica_url, mix, lines)
            with _server(pg, url, 1, replica_url) as service:
                failovers = [_failover_round(service, standby, loaded.paper_ids) for _ in range(FAILOVER_ROUNDS)]
                for f in failovers:
                    log("replicas", f"failover: out after {f['out_of_rotation_s']} s, back {f['back_in_rotation_s']} s")
    summary = {f"{d}/x{w}": medians([r for r in runs if (r["databases"], r["workers"]) == (d, w)]) for d, w in SETUPS}
    return {
        "medians": summary,
        "runs": runs,
        "failover": failovers,
        "failover_medians": {k: statistics.median(f[k] for f in failovers) for k in failovers[0]},
        "papers": loaded.counts["papers"],
        "mix": MIX,
        "load": LOAD.describe(),
        "warmup_s": WARMUP_S,
        "rounds": ROUNDS,
        "cores": os.cpu_count(),
        "check_interval_s": DEFAULTS.check_interval,
        "max_lag_s": DEFAULTS.max_lag,
    }


def _setup_rows(result: dict) -> list[list[Any]]:
    m = result["medians"]
    rows = []
    for databases, workers in SETUPS:
        r = m[f"{databases}/x{workers}"]
        alone = m[f"primary/x{workers}"]
        rows.append(
            [
                databases,
                workers,
                r["rps"],
                r["rps"] / alone["rps"],
                r["p50_ms"],
                r["p99_ms"],
                r["p99_ms"] / alone["p99_ms"],
                r["errors"],
                r["server_cpu_pct"],
                r["primary_cpu_pct"],
                r["replica_cpu_pct"],
                r["other_cpu_pct"],
            ]
        )
    return rows


def _compare(result: dict, workers: int) -> str:
    """Which set-up served more, said only when every round of one beat every round of the other."""

    def rates(databases: str) -> list[int]:
        return [round(r["rps"]) for r in result["runs"] if (r["databases"], r["workers"]) == (databases, workers)]

    alone, replica = rates("primary"), rates("primary+replica")
    if min(len(alone), len(replica)) >= 2 and min(replica) > max(alone):
        return "faster in every round"
    if min(len(alone), len(replica)) >= 2 and min(alone) > max(replica):
        return "slower in every round"
    return f"rounds overlap: {replica} against {alone} req/s, no difference shown"


def render(result: dict) -> str:
    """The section of docs/benchmarks.md."""
    rows = _setup_rows(result)
    mix = ", ".join(f"{k} {v}%" for k, v in result["mix"].items())
    f = result["failover_medians"]
    fail_rows = [
        [
            i,
            r["requests"],
            r["failed"],
            r["out_of_rotation_s"],
            r["standby_start_s"],
            r["back_in_rotation_s"],
            r["p99_before_ms"],
            r["p99_after_kill_ms"],
            r["max_after_kill_ms"],
        ]
        for i, r in enumerate(result["failover"], 1)
    ]
    failed = sum(r["failed"] for r in result["failover"])
    gain1, gain2 = (rows[1][3], rows[3][3])
    other = statistics.median(r["other_cpu_pct"] for r in result["runs"])
    disturbed = (
        f"\n\n**Disturbed run**: other processes on the machine used a median {other:.0f}% of a core during the"
        f" measured runs (more than {MAX_OTHER:g}%), so these rates say little; rerun the section on a quiet machine."
        if other > MAX_OTHER
        else ""
    )
    return f"""## {TITLE}

{result["papers"]:,} papers; one primary and one hot standby (`pg_basebackup -R` from the embedded binaries) on
the same {result["cores"]}-core machine. The mix ({mix}; the submissions are writes, on the primary) is drawn at
random by wrk `{result["load"]}` after a {result["warmup_s"]} s warm-up; medians of {result["rounds"]} rounds, the
four set-ups side by side in each round (order alternating). CPU is % of one core per process tree.

{
        report.table(
            [
                "databases",
                "API processes",
                "req/s",
                "× primary alone",
                "p50 ms",
                "p99 ms",
                "p99 × alone",
                "errors",
                "server CPU %",
                "primary CPU %",
                "replica CPU %",
                "other CPU %",
            ],
            rows,
        )
    }

With the replica, the mix ran at {gain1:.2f}× the primary-alone rate with one API process ({_compare(result, 1)})
and {gain2:.2f}× with two ({_compare(result, 2)}). The API processes, the primary and the standby all share
the same {result["cores"]} cores here: the replica takes PostgreSQL's reading work off the primary (see the CPU
columns) but adds no CPU, so these figures show what routing and replication cost, not the capacity a replica
on a machine of its own adds.{disturbed}

**Failover** (one API process, the default check every {result["check_interval_s"]:g} s and lag bound
{result["max_lag_s"]:g} s; {FAILOVER_CLIENTS} clients reading papers by id throughout; the standby killed with
`pg_ctl stop -m immediate`, started again 2 s after it left rotation):

{
        report.table(
            [
                "round",
                "requests",
                "failed",
                "out of rotation after kill s",
                "standby start s",
                "back in rotation after start s",
                "p99 before ms",
                "p99 2 s after kill ms",
                "max 2 s after kill ms",
            ],
            fail_rows,
        )
    }

Medians: out of rotation {f["out_of_rotation_s"]:.2f} s after the kill (target {OUT_WITHIN}:
{OUT_WITHIN.verdict(f["out_of_rotation_s"])}), back in rotation {f["back_in_rotation_s"]:.2f} s after the standby
accepted connections again ({f["restart_to_rotation_s"]:.2f} s from `pg_ctl start`). Failed requests over all
rounds: {failed} (target {NO_FAILURES}: {NO_FAILURES.verdict(failed)}): a read that meets the dead standby is
answered by the primary, and takes the standby out at once, before the next check does.
"""
