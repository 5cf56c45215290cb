"""Fault, load and hostile-input checks against real processes: the slow half of issue 5's fault tests.

    .venv/bin/python -m bench.run --only faults          # about 15 minutes on 2 cores
    .venv/bin/python -m bench.faults [--only kill,restart,soak,schemathesis,fuzz]   # one or more checks

Every check gets its own temporary embedded PostgreSQL (stopped and removed at the end) loaded with
the synthetic corpus (bench/corpus.py, 10k papers), and talks only to 127.0.0.1:

1. kill -9 under load: the corpus listings are queued as ingest jobs, two `papers worker` processes
   drain the queue, and five times a worker that is running a job is killed with SIGKILL at a random
   moment (and restarted at once). Then every listing must be fully present (entry_count = stored
   entries), papers must not be duplicated, and every job must be done, its listing stored once.
2. PostgreSQL stop/restart under load: a bounded asyncio httpx loop at fixed concurrency hits
   `/v1/papers?limit=20` and `/v1/papers/{id}` on a `papers serve` process; the database is stopped
   for about 5 s and started again. While it is down only 503 problem+json bodies may come back (no
   500s, no hangs), and afterwards 200s again, from the same API process.
3. Soak: 5 minutes of wrk (Debian package `wrk`; a Python loop if it is missing) at 16 connections
   over a mix of REST and GraphQL reads, including similar papers and hybrid search (the server runs
   the local embedding model; the corpus' clustered vectors are stored as that model's vectors, so
   no paper has to be embedded first). Zero 5xx, zero GraphQL errors; server RSS every 10 s, "stable"
   when the last minute's median is less than 10% above the first minute's.
4. schemathesis (`--checks all`) against `/schema/openapi.json` and against `/graphql` (with the
   SDL printed from `api.graphql.schema`). schemathesis lives in its own virtualenv, not in the
   project's: `python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis` (or point
   PAPERS_SCHEMATHESIS at an `st` executable). Without it the check reports "not run".
5. Parser fuzzing: the hypothesis properties of tests/test_parsers.py run with the test suite; this
   section counts them.

Every process started here runs in its own session and is killed (SIGTERM, then SIGKILL to its
process group) when its check ends, also on errors. PAPERS_FAULTS_SOAK_SECONDS shortens the soak for
trying things out; the report says how long it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, NamedTuple

import httpx

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "faults_assets"
HOST = "127.0.0.1"
PY = sys.executable
PAPERS = 10_000
SEED = 7
ST_INSTALL = "python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis"
API_KEY = "faults-bench-key"

# 1. worker kills
KILLS = 5
WORKERS = 2
# 2. database restart
RESTART_CONCURRENCY = 8
RESTART_BASELINE_S = 5.0
RESTART_DOWN_S = 5.0
REQUEST_TIMEOUT_S = 10.0
# 3. soak
SOAK_SECONDS = int(os.environ.get("PAPERS_FAULTS_SOAK_SECONDS") or 300)
SOAK_WARMUP_S = 20
SOAK_CONNECTIONS = 16
SOAK_THREADS = 2
RSS_EVERY_S = 10
RSS_STABLE_GROWTH = 0.10
# 4. schemathesis
ST_MAX_EXAMPLES = 50
ST_MAX_TIME_S = int(os.environ.get("PAPERS_FAULTS_ST_SECONDS") or 180)

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _log(message: str) -> None:
    print(f"  faults: {message}", file=sys.stderr, flush=True)


def _env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no proxies (everything is 127.0.0.1), plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = f"{HOST},localhost"
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- processes -------------------------------------------------------------------------------------


class Procs:
    """The child processes of one check; each runs in its own session and is killed on exit."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.started: list[subprocess.Popen] = []

    def start(self, args: list[str], *, name: str, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> subprocess.Popen:  # fmt: skip
        log = open(self.logdir / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(args, cwd=cwd, env=env or _env(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        finally:
            log.close()
        self.started.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen, *, grace: float = 15.0) -> int | None:
        """SIGTERM the process (its group), then SIGKILL the group if it lingers; return its exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (granian's workers)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        return proc.returncode

    def close(self) -> None:
        for proc in self.started:
            self.stop(proc, grace=5.0)


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children[ppid].append(int(entry))
    return children


def tree_rss_kib(pid: int) -> dict[int, int]:
    """RSS (KiB) of pid and all its descendants, by pid."""
    children, todo, out = _proc_children(), [pid], {}
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        out[p] = int(match.group(1)) if match else 0
        todo.extend(children.get(p, []))
    return out


# --- database and server ---------------------------------------------------------------------------


class Cluster:
    """A temporary embedded PostgreSQL, migrated; stopped and removed on exit."""

    def __init__(self, tag: str) -> None:
        from sql import db

        self.root = Path(tempfile.mkdtemp(prefix=f"papers-faults-{tag}-"))
        self.pg = db.EmbeddedPostgres(self.root)
        self.url = ""
        self.procs = Procs(self.root)

    async def __aenter__(self) -> "Cluster":
        from sql import db
        from sql.migrate import migrate

        try:
            self.url = await asyncio.to_thread(self.pg.start)
            async with db.connection(self.url, vector=False) as conn:
                await migrate(conn)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self.procs.close)
        try:
            await asyncio.to_thread(self.pg.stop)
        except Exception as error:  # keep going: the directory still goes
            _log(f"stopping PostgreSQL under {self.root} failed: {error}")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.root / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


async def load_corpus(url: str, n: int = PAPERS, *, vectors: bool = False) -> dict[str, Any]:
    """Ingest the synthetic corpus (through ingest_source); with vectors, store its clustered vectors
    as the local model's embeddings, so similarity works without embedding anything."""
    from bench import corpus
    from ingest.embedder import LOCAL_MODEL
    from ingest.pipeline import Source, ingest_source
    from sql import db
    from sql.embeddings import Space, column_dim, ensure_space, store

    started = time.monotonic()
    generated = corpus.generate(n, seed=SEED)
    async with db.connection(url) as conn:
        for name, data in corpus.listings(generated):
            result = await ingest_source(conn, Source(name, data))
            if result.error is not None:
                raise RuntimeError(f"corpus listing {name} did not ingest: {result.error.message}")
        stored_vectors = 0
        if vectors:
            index = {p.title: i for i, p in enumerate(generated.papers)}
            rows = await conn.fetch("SELECT paper_key, title FROM papers ORDER BY paper_key")
            pairs = [(r["paper_key"], index[r["title"]]) for r in rows if r["title"] in index]
            await ensure_space(conn, Space(LOCAL_MODEL, await column_dim(conn)))
            for start in range(0, len(pairs), 1000):
                chunk = pairs[start : start + 1000]
                await store(conn, [k for k, _ in chunk], generated.vectors[[i for _, i in chunk]], LOCAL_MODEL)
            stored_vectors = len(pairs)
        await conn.execute("ANALYZE")  # as autovacuum would soon after a bulk load: plans see real sizes
        papers = await conn.fetchval("SELECT count(*) FROM papers")
    return {"papers": papers, "vectors": stored_vectors, "seconds": round(time.monotonic() - started, 1)}


class Server:
    """`papers serve` on 127.0.0.1 in its own session."""

    def __init__(self, cluster: Cluster, *, embedder: str = "none", api_key: str | None = None, name: str = "serve"):
        self.cluster, self.name = cluster, name
        self.port = _free_port()
        self.base = f"http://{HOST}:{self.port}"
        extra = {"DATABASE_URL": cluster.url, "PAPERS_EMBEDDER": embedder}
        if api_key:
            extra["PAPERS_API_KEY"] = api_key
        self.env = _env(**extra)
        self.proc: subprocess.Popen | None = None

    async def __aenter__(self) -> "Server":
        args = [PY, "-m", "ingest.cli", "serve", "--host", HOST, "--port", str(self.port)]
        self.proc = self.cluster.procs.start(args, name=self.name, env=self.env)
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=self.base, trust_env=False, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"papers serve exited with {self.proc.returncode}:\n{self.cluster.log_tail(self.name)}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        return self
                await asyncio.sleep(0.2)
        await self.__aexit__()
        raise RuntimeError(f"papers serve did not become ready in 90 s:\n{self.cluster.log_tail(self.name)}")

    async def __aexit__(self, *exc: Any) -> None:
        if self.proc is not None:
            await asyncio.to_thread(Procs.stop, self.proc)

    def rss_kib(self) -> dict[int, int]:
        return tree_rss_kib(self.proc.pid) if self.proc is not None else {}

    def unhandled(self) -> list[str]:
        """Distinct unhandled errors in the server's log: its 500s (`unhandled error on METHOD PATH`) and the
        exceptions behind them and behind masked GraphQL errors (`SomeError: message`)."""
        log = self.cluster.root / f"{self.name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.findall(r"unhandled error on [A-Z]+ /[^\s?]*", text)
        found += [line for line in re.findall(r"^(?:[\w.]+\.)?\w+(?:Error|Exception): .{0,160}", text, re.M)
                  if "UserError" not in line]  # a GraphQL client error, not a server one
        return sorted(set(found))[:30]

    async def wait_semantic(self, timeout: float = 180.0) -> float:
        """Wait until the embedding model is loaded (semantic search answers 200); return the seconds waited."""
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self.base, trust_env=False, timeout=30) as client:
            while time.monotonic() - started < timeout:
                response = await client.get("/v1/search", params={"q": "graph models", "mode": "semantic", "limit": 1})
                if response.status_code == 200:
                    return round(time.monotonic() - started, 1)
                await asyncio.sleep(1.0)
        raise RuntimeError(f"the embedding model did not load in {timeout:.0f} s")


async def sample_ids(url: str, n: int = 500) -> dict[str, list[str]]:
    """Some paper and listing ids and title words of the loaded corpus (deterministic)."""
    from sql import db

    async with db.connection(url, vector=False) as conn:
        papers = await conn.fetch("SELECT public_id, title FROM papers ORDER BY md5(public_id) LIMIT $1", n)
        listings = await conn.fetch("SELECT public_id FROM listings ORDER BY md5(public_id) LIMIT 50")
    return {"papers": [r["public_id"] for r in papers], "titles": [r["title"] for r in papers],
            "listings": [r["public_id"] for r in listings]}  # fmt: skip


# --- a bounded asyncio load loop -------------------------------------------------------------------


class Hit(NamedTuple):
    """One request of the load loop: when it started and ended (seconds from origin) and what came back."""

    start: float
    end: float
    label: str
    status: int | str  # an HTTP status, or "timeout" / "transport"
    problem: bool | None  # for 4xx/5xx: a problem+json body with a matching status (and Retry-After on 503)
    graphql_errors: bool = False


Request = tuple[str, str, str, Any]  # label, method, path, JSON body or None


async def hammer(base: str, pick: Callable[[random.Random], Request], *, concurrency: int, duration: float,
                 stop: asyncio.Event, origin: float, hits: list[Hit]) -> None:  # fmt: skip
    """Send requests from `concurrency` loops until stop is set or duration has passed; append to hits."""
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def loop(k: int) -> None:
            rng = random.Random(SEED * 1000 + k)
            while not stop.is_set() and time.monotonic() < deadline:
                label, method, path, body = pick(rng)
                t0 = time.monotonic()
                problem, gql = None, False
                try:
                    response = await client.request(method, path, json=body)
                    status: int | str = response.status_code
                    if response.status_code >= 400:
                        problem = _is_problem(response)
                    elif label.startswith("graphql"):
                        gql = b'"errors"' in response.content
                except httpx.TimeoutException:
                    status = "timeout"
                except httpx.TransportError:
                    status = "transport"
                    await asyncio.sleep(0.05)
                hits.append(Hit(t0 - origin, time.monotonic() - origin, label, status, problem, gql))

        await asyncio.gather(*(loop(k) for k in range(concurrency)))


def _is_problem(response: httpx.Response) -> bool:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict) or body.get("status") != response.status_code or "title" not in body:
        return False
    return response.status_code != 503 or bool(response.headers.get("retry-after"))


# --- 1. kill -9 workers under load -----------------------------------------------------------------


async def check_worker_kills(kills: int = KILLS, n: int = PAPERS) -> dict[str, Any]:
    """Queue the corpus, drain it with two workers, SIGKILL a busy worker `kills` times, then audit."""
    from bench import corpus
    from sql import db, jobs

    rng = random.Random(SEED)
    generated = corpus.generate(n, seed=SEED)
    listings = list(corpus.listings(generated))
    async with Cluster("kill") as cluster, contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(db.connection(cluster.url, vector=False))
        for name, data in listings:
            await jobs.enqueue(conn, name, data)
        env = _env(DATABASE_URL=cluster.url, PAPERS_EMBEDDER="none")
        spawned = 0

        def spawn() -> subprocess.Popen:
            nonlocal spawned
            spawned += 1
            return cluster.procs.start([PY, "-m", "ingest.cli", "worker", "--poll", "0.05"], name=f"worker{spawned}", env=env)

        host = socket.gethostname()
        started = time.monotonic()
        live = [spawn() for _ in range(WORKERS)]
        events: list[dict[str, Any]] = []
        deadline = started + 300
        for k in range(kills):
            await asyncio.sleep(rng.uniform(0.1, 0.5))
            victim, name = None, None
            # a worker that is running a job right now
            while time.monotonic() < deadline and victim is None:
                names = {f"{host}:{p.pid}": p for p in live if p.poll() is None}
                name = await conn.fetchval(
                    "SELECT worker FROM ingest_jobs WHERE status = 'running' AND worker = ANY($1::text[])"
                    " ORDER BY random() LIMIT 1", list(names))  # fmt: skip
                if name is not None:
                    victim = names[name]
                elif await conn.fetchval("SELECT count(*) FROM ingest_jobs WHERE status IN ('queued', 'running')") == 0:
                    break
                else:
                    await asyncio.sleep(0.005)
            if victim is None:
                events.append({"kill": k + 1, "skipped": "no worker was running a job (queue drained)"})
                break
            await asyncio.sleep(rng.uniform(0.0, 0.03))  # a random moment inside the job (jobs take ~50-100 ms)
            running = "SELECT public_id, attempts FROM ingest_jobs WHERE status = 'running' AND worker = $1"
            before = {r["public_id"]: r["attempts"] for r in await conn.fetch(running, name)}
            at = time.monotonic() - started
            os.kill(victim.pid, signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 10)
            await asyncio.sleep(0.02)  # let the server finish whatever the worker had already sent
            after = {r["public_id"]: r["attempts"] for r in await conn.fetch(running, name)}
            # the jobs the kill may have interrupted; the final attempts decide (an interrupted job is retried)
            events.append({"kill": k + 1, "at_s": round(at, 2), "pid": victim.pid, "exit": victim.returncode,
                           "candidates": {**before, **after}})  # fmt: skip
            live.remove(victim)
            live.append(spawn())
        # wait for the queue to drain
        while time.monotonic() < deadline:
            left = await conn.fetchval("SELECT count(*) FROM ingest_jobs WHERE status IN ('queued', 'running')")
            if left == 0:
                break
            await asyncio.sleep(0.1)
        drained_s = time.monotonic() - started
        exits = [await asyncio.to_thread(Procs.stop, p) for p in live]
        audit = await _audit_ingest(conn, n, len(listings))
        for event in events:
            for job, attempts_then in event.pop("candidates", {}).items():
                row = await conn.fetchrow("SELECT status, attempts, result FROM ingest_jobs WHERE public_id = $1", job)
                result = json.loads(row["result"]) if isinstance(row["result"], str) else (row["result"] or {})
                interrupted = row["attempts"] > attempts_then
                if interrupted or "job" not in event:
                    event["job"] = job
                    event["final"] = f"{row['status']} after {row['attempts']} attempt{'s' if row['attempts'] > 1 else ''}"
                    event["retried"] = row["status"] == "done" and interrupted
                    event["landed"] = ("between jobs (its job had just finished)" if not interrupted else
                                       "after the listing was committed, before the job was marked done"
                                       if result.get("unchanged") else "inside the job, before the listing was committed")
            event.setdefault("landed", "between jobs")
            event.setdefault("job", "")
            event.setdefault("final", "")
    made = [e for e in events if "skipped" not in e]
    interrupted = [e for e in made if e.get("retried") is not None and not e["landed"].startswith("between")]
    checks = {
        f"{kills} kills while the queue was being drained": len(made) == kills,
        "at least one kill interrupted a running job": bool(interrupted),
        "every listing complete (entry_count = stored entries)": audit["incomplete_listings"] == 0,
        "every listing present (all jobs done)": audit["listings"] == len(listings),
        "no duplicate papers (fingerprints unique, count = distinct titles = corpus)":
            audit["papers"] == audit["distinct_fingerprints"] == audit["distinct_titles"] == n,
        "every job done, its listing stored exactly once": audit["jobs_done"] == len(listings)
            and audit["jobs_not_one_listing"] == 0 and audit["results_mismatch"] == 0,
        "every interrupted job was retried to done (attempts recorded)": all(e["retried"] for e in interrupted),
        "workers stopped cleanly on SIGTERM": all(code == 0 for code in exits),
    }  # fmt: skip
    return {"papers": n, "jobs": len(listings), "workers": WORKERS, "kills": events, "interrupted": len(interrupted), "drain_seconds": round(drained_s, 1),
            "papers_per_s": round(n / drained_s), "workers_started": spawned, "audit": audit, "checks": checks,
            "passed": all(checks.values())}  # fmt: skip


async def _audit_ingest(conn: Any, n: int, jobs_count: int) -> dict[str, Any]:
    listing_rows = await conn.fetch(
        """SELECT l.public_id, l.entry_count, count(e.rank) AS stored FROM listings l
           LEFT JOIN listing_entries e ON e.listing_key = l.listing_key GROUP BY l.listing_key""")
    papers = await conn.fetchrow(
        "SELECT count(*) AS papers, count(DISTINCT fingerprint) AS fps, count(DISTINCT lower(title)) AS titles FROM papers")
    job_rows = await conn.fetch(
        """SELECT j.public_id, j.status, j.attempts, j.result, j.last_error,
                  array(SELECT l.public_id FROM listings l WHERE l.content_sha256 = encode(sha256(j.payload), 'hex'))
                    AS stored
           FROM ingest_jobs j""")  # fmt: skip
    attempts = collections.Counter(r["attempts"] for r in job_rows)
    results = [json.loads(r["result"]) if isinstance(r["result"], str) else (r["result"] or {}) for r in job_rows]
    mismatched = sum(1 for r, res in zip(job_rows, results) if len(r["stored"]) != 1 or res.get("listing_id") != r["stored"][0])
    return {
        "listings": len(listing_rows),
        "entries": sum(r["stored"] for r in listing_rows),
        "incomplete_listings": sum(1 for r in listing_rows if r["entry_count"] != r["stored"]),
        "papers": papers["papers"],
        "distinct_fingerprints": papers["fps"],
        "distinct_titles": papers["titles"],
        "jobs_done": sum(1 for r in job_rows if r["status"] == "done"),
        "jobs_by_status": dict(collections.Counter(r["status"] for r in job_rows)),
        "attempts_histogram": {str(k): v for k, v in sorted(attempts.items())},
        "jobs_retried": sum(v for k, v in attempts.items() if k > 1),
        "jobs_unchanged_on_retry": sum(1 for res in results if res.get("unchanged")),
        "jobs_not_one_listing": sum(1 for r in job_rows if len(r["stored"]) != 1),
        "results_mismatch": mismatched,
        "last_errors": sorted({r["last_error"] for r in job_rows if r["last_error"]})[:5],
    }


# --- 2. PostgreSQL stop/restart under load ---------------------------------------------------------


async def check_database_restart(n: int = PAPERS) -> dict[str, Any]:
    """Stop PostgreSQL for ~5 s under load and start it again; the API keeps answering (503, then 200)."""
    async with Cluster("restart") as cluster:
        loaded = await load_corpus(cluster.url, n)
        ids = (await sample_ids(cluster.url))["papers"]
        async with Server(cluster) as server:
            pid = server.proc.pid

            def pick(rng: random.Random) -> Request:
                if rng.random() < 0.5:
                    return ("page", "GET", "/v1/papers?limit=20", None)
                return ("by_id", "GET", f"/v1/papers/{rng.choice(ids)}", None)

            hits: list[Hit] = []
            stop = asyncio.Event()
            origin = time.monotonic()
            marks: dict[str, float] = {}
            load = asyncio.create_task(hammer(server.base, pick, concurrency=RESTART_CONCURRENCY, duration=120,
                                              stop=stop, origin=origin, hits=hits))  # fmt: skip
            try:
                await asyncio.sleep(RESTART_BASELINE_S)
                marks["stop_called"] = time.monotonic() - origin
                await asyncio.to_thread(cluster.pg.stop)
                marks["stop_done"] = time.monotonic() - origin
                await asyncio.sleep(RESTART_DOWN_S)
                marks["start_called"] = time.monotonic() - origin
                url = await asyncio.to_thread(cluster.pg.start)
                marks["start_done"] = time.monotonic() - origin
                # keep the load on until 3 s in a row were all 200 (at most 60 s)
                limit = time.monotonic() + 60
                while time.monotonic() < limit:
                    await asyncio.sleep(0.5)
                    now = time.monotonic() - origin
                    recent = [h for h in hits if h.start >= marks["start_done"] and h.end >= now - 3.0]
                    last_bad = max((h.end for h in hits if h.start >= marks["start_done"] and h.status != 200), default=None)
                    if recent and (last_bad is None or last_bad < now - 3.0) and now - marks["start_done"] > 3.0:
                        break
                await asyncio.sleep(2.0)
            finally:
                stop.set()
                await load
            marks["load_stopped"] = time.monotonic() - origin
            alive = server.proc.poll() is None and server.proc.pid == pid
            unhandled = server.unhandled()
    return _restart_report(hits, marks, alive, url == cluster.url, loaded, unhandled)


def _restart_report(hits: list[Hit], marks: dict[str, float], alive: bool, same_url: bool, loaded: dict,
                    unhandled: list[str]) -> dict[str, Any]:  # fmt: skip
    def phase(h: Hit) -> str:
        if h.start < marks["stop_called"]:
            return "1 before" if h.end < marks["stop_called"] else "2 stopping"
        if h.start < marks["stop_done"]:
            return "2 stopping"
        if h.start < marks["start_called"]:
            return "3 down" if h.end <= marks["start_called"] else "4 starting"
        if h.start < marks["start_done"]:
            return "4 starting"
        return "5 after restart"

    phases: dict[str, dict[str, Any]] = {}
    for h in hits:
        p = phases.setdefault(phase(h), {"requests": 0, "statuses": collections.Counter(), "max_latency_ms": 0.0})
        p["requests"] += 1
        p["statuses"][str(h.status)] += 1
        p["max_latency_ms"] = max(p["max_latency_ms"], round((h.end - h.start) * 1000, 1))
    for p in phases.values():
        p["statuses"] = dict(sorted(p["statuses"].items()))
    after = [h for h in hits if h.start >= marks["start_done"]]
    first_ok = min((h.end for h in after if h.status == 200), default=None)
    last_bad = max((h.end for h in after if h.status != 200), default=None)
    timeline = collections.defaultdict(collections.Counter)
    for h in hits:
        timeline[int(h.start)][str(h.status)] += 1
    statuses = collections.Counter(str(h.status) for h in hits)
    down = [h for h in hits if phase(h) == "3 down"]
    errors = [h for h in hits if h.status not in (200, 503)]
    bad_503 = [h for h in hits if h.status == 503 and not h.problem]
    checks = {
        "while down: only 503 problem+json (with Retry-After)": bool(down) and all(h.status == 503 and h.problem for h in down),
        "no 500s, no other statuses, no timeouts or dropped connections": not errors,
        "every 503 is a problem+json body with Retry-After": not bad_503,
        "200s again after the restart": first_ok is not None,
        "all 200 at the end (last 3 s)": all(h.status == 200 for h in hits if h.start >= marks["load_stopped"] - 3.0),
        "same API process throughout (no restart)": alive,
        "no 500 logged by the server (`unhandled error on ...`)": not [u for u in unhandled if u.startswith("unhandled")],
    }
    return {
        "papers": loaded["papers"], "concurrency": RESTART_CONCURRENCY, "requests": len(hits),
        "marks_s": {k: round(v, 2) for k, v in marks.items()}, "same_database_url": same_url,
        "statuses": dict(sorted(statuses.items())), "phases": dict(sorted(phases.items())),
        "down_seconds": round(marks["start_done"] - marks["stop_called"], 2),
        "first_200_after_start_s": round(first_ok - marks["start_done"], 2) if first_ok is not None else None,
        "recovered_after_start_s": round(max(last_bad or marks["start_done"], marks["start_done"]) - marks["start_done"], 2),
        "max_latency_ms": round(max(((h.end - h.start) * 1000 for h in hits), default=0), 1),
        "timeline": {str(k): dict(v) for k, v in sorted(timeline.items())},
        "errors_sample": [h._asdict() for h in errors[:10]], "unhandled": unhandled,
        "checks": checks, "passed": all(checks.values()),
    }  # fmt: skip


# --- 3. soak -----------------------------------------------------------------------------------------


def soak_requests(sample: dict[str, list[str]]) -> list[Request]:
    """The soak's mix: REST and GraphQL reads, by id and by page, keyword, hybrid and similar."""
    rng = random.Random(SEED)
    papers, listings, titles = sample["papers"], sample["listings"], sample["titles"]
    words = sorted({w.strip("():-,").lower() for t in titles for w in t.split() if len(w) > 5 and not w.startswith("(")})
    queries = [" ".join(rng.sample(words, 2)) for _ in range(20)]
    gql = {
        "graphql_papers": "{ papers(first: 20) { edges { node { id title listings { id rank } } } } }",
        "graphql_paper": "query($id: String!) { paper(id: $id) { id title abstract firstListed listings { id rank date } } }",
        "graphql_listing": "query($id: String!) { listing(id: $id) { id entryCount entries(first: 20) {"
                           " edges { node { rank paper { id title } } } pageInfo { hasNextPage endCursor } } } }",
        "graphql_similar": "query($id: String!) { paper(id: $id) { id similar(first: 10) { id title score } } }",
        "graphql_search": "query($q: String!) { search(q: $q, mode: HYBRID, first: 10) { edges { node { id score snippet } } } }",
        "graphql_stats": "{ stats { papers listings entries } }",
    }  # fmt: skip
    out: list[Request] = []
    for i in range(240):
        pid, lid, q = papers[i % len(papers)], listings[i % len(listings)], queries[i % len(queries)]
        title = titles[i % len(titles)]
        mix: list[Request] = [
            ("rest_page", "GET", "/v1/papers?limit=20", None),
            ("rest_paper", "GET", f"/v1/papers/{pid}", None),
            ("graphql_paper", "POST", "/graphql", {"query": gql["graphql_paper"], "variables": {"id": pid}}),
            ("graphql_papers", "POST", "/graphql", {"query": gql["graphql_papers"]}),
        ]
        k = i % 12
        mix.append([
            ("rest_listing", "GET", f"/v1/listings/{lid}?limit=50", None),
            ("rest_similar", "GET", f"/v1/papers/{pid}/similar?limit=10", None),
            ("rest_hybrid", "GET", f"/v1/search?q={q.replace(' ', '+')}&mode=hybrid&limit=10", None),
            ("rest_keyword", "GET", f"/v1/papers?q={q.replace(' ', '+')}&limit=20", None),
            ("rest_listings", "GET", "/v1/listings?limit=20", None),
            ("rest_batch", "POST", "/v1/papers/batch", {"ids": papers[i : i + 20]}),
            ("graphql_listing", "POST", "/graphql", {"query": gql["graphql_listing"], "variables": {"id": lid}}),
            ("graphql_similar", "POST", "/graphql", {"query": gql["graphql_similar"], "variables": {"id": pid}}),
            ("graphql_search", "POST", "/graphql", {"query": gql["graphql_search"], "variables": {"q": q}}),
            ("rest_match", "GET", "/v1/papers/match?title=" + "+".join(title.split()[:4]), None),
            ("rest_stats", "GET", "/v1/stats", None),
            ("graphql_stats", "POST", "/graphql", {"query": gql["graphql_stats"]}),
        ][k])  # fmt: skip
        out.extend(mix)
    return out


async def check_soak(seconds: int = SOAK_SECONDS, n: int = PAPERS) -> dict[str, Any]:
    """A soak at fixed concurrency over REST and GraphQL; 5xx, GraphQL errors, throughput, RSS every 10 s."""
    async with Cluster("soak") as cluster:
        loaded = await load_corpus(cluster.url, n, vectors=True)
        requests = soak_requests(await sample_ids(cluster.url))
        async with Server(cluster, embedder="local") as server:
            model_wait = await server.wait_semantic()
            tsv = cluster.root / "soak_requests.tsv"
            tsv.write_text("".join(f"{m}\t{p}\t{json.dumps(b) if b is not None else ''}\n" for _, m, p, b in requests))
            # every request of the mix answers 200 before the soak starts
            async with httpx.AsyncClient(base_url=server.base, trust_env=False, timeout=30) as client:
                probe: dict[str, bool] = {}
                firsts = {r[0]: r for r in reversed(requests)}  # the first request of every kind
                for label, method, path, body in [*firsts.values(), *requests[:32]]:
                    response = await client.request(method, path, json=body)
                    ok = response.status_code == 200 and b'"errors"' not in response.content
                    probe[label] = probe.get(label, True) and ok
            use_wrk = shutil.which("wrk") is not None
            runner = _soak_wrk if use_wrk else _soak_python
            warm = await runner(server, tsv, requests, SOAK_WARMUP_S, sample_rss=False)
            measured = await runner(server, tsv, requests, seconds, sample_rss=True)
            unhandled = server.unhandled()
    rss = measured["rss"]
    first = [s["kib"] for s in rss if s["t"] <= 60]
    last = [s["kib"] for s in rss if s["t"] >= rss[-1]["t"] - 60] if rss else []
    first_med, last_med = (statistics.median(first) if first else 0), (statistics.median(last) if last else 0)
    growth = (last_med / first_med - 1) if first_med else None
    five = {k: v for k, v in measured["statuses"].items() if k.startswith("5")}
    five_warm = {k: v for k, v in warm["statuses"].items() if k.startswith("5")}
    non200 = {k: v for k, v in measured["statuses"].items() if k != "200"}
    checks = {
        "every request of the mix answered 200 before the soak": all(probe.values()),
        "zero 5xx (warm-up and soak)": not five and not five_warm,
        "zero GraphQL errors": measured["graphql_errors"] == 0 and warm["graphql_errors"] == 0,
        "no socket errors or timeouts": not any(measured["socket_errors"].values()),
        "only 200s": not non200,
        f"RSS stable (last minute < {RSS_STABLE_GROWTH:.0%} above first)": growth is not None and growth < RSS_STABLE_GROWTH,
        "no unhandled errors logged by the server": not unhandled,
    }
    return {
        "papers": loaded["papers"], "vectors": loaded["vectors"], "soak_seconds": seconds, "warmup_seconds": SOAK_WARMUP_S,
        "connections": SOAK_CONNECTIONS, "client": measured["client"], "mix": dict(collections.Counter(r[0] for r in requests)),
        "model_load_wait_s": model_wait, "probe": probe, "warmup": {k: v for k, v in warm.items() if k != "rss"},
        **{k: v for k, v in measured.items() if k != "rss"}, "rss_samples": rss,
        "rss_first_minute_mib": round(first_med / 1024, 1), "rss_last_minute_mib": round(last_med / 1024, 1),
        "rss_growth": round(growth, 4) if growth is not None else None, "fivexx": five, "unhandled": unhandled,
        "checks": checks, "passed": all(checks.values()),
    }  # fmt: skip


async def _sample_rss(server: Server, started: float, samples: list[dict[str, Any]], done: Callable[[], bool],
                      seconds: float) -> None:  # fmt: skip
    next_at = 0.0
    while not done() and time.monotonic() - started <= seconds + 1:
        now = time.monotonic() - started
        if now >= next_at:
            tree = server.rss_kib()
            samples.append({"t": round(now, 1), "kib": sum(tree.values()), "largest_kib": max(tree.values(), default=0),
                            "processes": len(tree)})  # fmt: skip
            next_at += RSS_EVERY_S
        await asyncio.sleep(0.2)


async def _soak_wrk(server: Server, tsv: Path, requests: list[Request], seconds: int, *, sample_rss: bool) -> dict[str, Any]:
    args = ["wrk", f"-t{SOAK_THREADS}", f"-c{SOAK_CONNECTIONS}", f"-d{seconds}s", f"--timeout={int(REQUEST_TIMEOUT_S)}s",
            "--latency", "-s", str(ASSETS / "soak.lua"), server.base, "--", str(tsv)]  # fmt: skip
    proc = server.cluster.procs.start(args, name=f"wrk-{seconds}s", env=_env())
    started, rss = time.monotonic(), []
    try:
        if sample_rss:
            await _sample_rss(server, started, rss, lambda: proc.poll() is not None, seconds)
        await asyncio.to_thread(proc.wait, seconds + 60)
    finally:
        Procs.stop(proc, grace=2)
    text = (server.cluster.root / f"wrk-{seconds}s.log").read_text(errors="replace")
    line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("FAULTS_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{text[-2000:]}")
    out = json.loads(line.removeprefix("FAULTS_JSON "))
    elapsed = out["duration_us"] / 1e6
    lat = out.pop("latency_us")
    return {"client": f"wrk {SOAK_THREADS} threads, {SOAK_CONNECTIONS} connections", "requests": out["requests"],
            "statuses": dict(sorted(out["statuses"].items())), "graphql_errors": out["graphql_errors"],
            "socket_errors": out["socket_errors"], "req_per_s": round(out["requests"] / elapsed, 1),
            "p50_ms": round(lat["p50"] / 1000, 2), "p99_ms": round(lat["p99"] / 1000, 2), "max_ms": round(lat["max"] / 1000, 1),
            "rss": rss}  # fmt: skip


async def _soak_python(server: Server, tsv: Path, requests: list[Request], seconds: int, *, sample_rss: bool) -> dict[str, Any]:
    hits: list[Hit] = []
    stop, started = asyncio.Event(), time.monotonic()
    counter = iter(range(10**12))

    def pick(rng: random.Random) -> Request:
        return requests[next(counter) % len(requests)]

    rss: list[dict[str, Any]] = []
    load = asyncio.create_task(hammer(server.base, pick, concurrency=SOAK_CONNECTIONS, duration=seconds, stop=stop,
                                      origin=started, hits=hits))  # fmt: skip
    if sample_rss:
        await _sample_rss(server, started, rss, load.done, seconds)
    await load
    elapsed = time.monotonic() - started
    lat = sorted(h.end - h.start for h in hits) or [0.0]
    statuses = collections.Counter(str(h.status) for h in hits if isinstance(h.status, int))
    return {"client": f"Python httpx loop, {SOAK_CONNECTIONS} concurrent (wrk not installed)", "requests": len(hits),
            "statuses": dict(sorted(statuses.items())), "graphql_errors": sum(h.graphql_errors for h in hits),
            "socket_errors": {"timeout": sum(h.status == "timeout" for h in hits),
                              "transport": sum(h.status == "transport" for h in hits)},
            "req_per_s": round(len(hits) / elapsed, 1), "p50_ms": round(lat[len(lat) // 2] * 1000, 2),
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2), "max_ms": round(lat[-1] * 1000, 1), "rss": rss}  # fmt: skip


# --- 4. schemathesis ---------------------------------------------------------------------------------


def schemathesis_cli() -> str | None:
    """The `st` executable: PAPERS_SCHEMATHESIS, /tmp/st/bin/st, or `st`/`schemathesis` on PATH."""
    candidates = [os.environ.get("PAPERS_SCHEMATHESIS"), "/tmp/st/bin/st", "/tmp/st/bin/schemathesis",
                  shutil.which("schemathesis")]  # fmt: skip
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


async def check_schemathesis(n: int = PAPERS) -> dict[str, Any]:
    """schemathesis --checks all against the OpenAPI document and the GraphQL endpoint."""
    cli = schemathesis_cli()
    if cli is None:
        return {"not_run": f"schemathesis is not installed; install with `{ST_INSTALL}`", "passed": None}
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    async with Cluster("st") as cluster:
        loaded = await load_corpus(cluster.url, n, vectors=True)
        async with Server(cluster, embedder="local", api_key=API_KEY) as server:
            await server.wait_semantic()
            from api.export_schema import sdl

            sdl_path = cluster.root / "schema.graphql"
            sdl_path.write_text(sdl())
            runs = {
                "openapi": await _st_run(cluster, cli, [f"{server.base}/schema/openapi.json"], "openapi"),
                "graphql": await _st_run(cluster, cli, [str(sdl_path), "--url", f"{server.base}/graphql"], "graphql"),
            }
            unhandled = server.unhandled()
    for run in runs.values():
        gating = [f for f in run["findings"] if f["category"] in ("server error", "schema non-conformance")]
        run["passed"] = run["exit_code"] is not None and not gating and not run["errors"]
    return {"version": version, "papers": loaded["papers"], "max_examples": ST_MAX_EXAMPLES, "max_time_s": ST_MAX_TIME_S,
            "runs": runs, "unhandled": unhandled,
            "passed": all(r["passed"] for r in runs.values()) and not unhandled}  # fmt: skip


async def _st_run(cluster: Cluster, cli: str, location: list[str], name: str) -> dict[str, Any]:
    report_dir = cluster.root / f"st-{name}"
    args = [cli, "run", *location, "--checks", "all", "--max-examples", str(ST_MAX_EXAMPLES),
            "--max-time", str(ST_MAX_TIME_S), "--seed", str(SEED), "--request-timeout", str(int(REQUEST_TIMEOUT_S)),
            "--header", f"Authorization: Bearer {API_KEY}", "--no-color", "--report", "ndjson,junit",
            "--report-dir", str(report_dir), "--generation-database", "none", "--output-truncate", "false"]  # fmt: skip
    started = time.monotonic()
    # run in the scratch directory: schemathesis keeps a crash cache (.schemathesis/) in its working directory
    proc = cluster.procs.start(args, name=f"st-{name}", env=_env(), cwd=cluster.root)
    try:
        code = await asyncio.to_thread(proc.wait, ST_MAX_TIME_S + 300)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        Procs.stop(proc, grace=2)
    output = (cluster.root / f"st-{name}.log").read_text(errors="replace")
    parsed = _st_parse(report_dir, output)
    return {"command": " ".join(a if "Bearer" not in a else "'Authorization: Bearer KEY'" for a in args[1:]),
            "exit_code": code, "seconds": round(time.monotonic() - started, 1), **parsed,
            "output_tail": "\n".join(output.splitlines()[-40:])}  # fmt: skip


# schemathesis failure codes (`st explain --list`): which ones the check gates on
ST_SERVER_ERRORS = {"ST101", "ST102", "ST113", "ST114", "ST115"}  # 5xx, GraphQL field failures
ST_NONCONFORMANCE = {f"ST1{i:02d}" for i in range(3, 12)}  # status, content type, headers, body vs the schema


def _st_category(code: str) -> str:
    if code in ST_SERVER_ERRORS:
        return "server error"
    if code in ST_NONCONFORMANCE:
        return "schema non-conformance"
    return "input handling" if code.startswith("ST2") else "other"


def _st_parse(report_dir: Path, output: str) -> dict[str, Any]:
    """Failures (code, operation, status, request) from the junit report, plus the run's summary lines."""
    import xml.etree.ElementTree as ET

    findings: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    operations = 0
    for xml in sorted(report_dir.glob("*.xml")):
        for case in ET.parse(xml).getroot().iter("testcase"):
            operations += 1
            for node in case.findall("error"):
                errors.append({"operation": case.get("name"), "message": ((node.get("message") or "") + "\n" + (node.text or "")).strip()[:2000]})
            for node in case.findall("failure"):
                text = ((node.get("message") or "") + "\n" + (node.text or "")).strip()
                # one junit failure may hold several test cases ("1. Test Case ID: ..."), each with its checks
                for block in re.split(r"^\d+\. Test Case ID: ", text, flags=re.M)[1:] or [text]:
                    status = re.search(r"^\[(\d{3})\] ([^\n]*):$", block, re.M)
                    body = re.search(r"^\[\d{3}\][^\n]*:\n\n\s*(.+?)\n\n(?:Reproduce with|$)", block, re.M | re.S)
                    curls = re.findall(r"^\s*(curl .+)$", block, re.M)
                    for code, title in re.findall(r"^- (ST\d{3}) ([^\n]+)$", block, re.M):
                        findings.append({"operation": case.get("name"), "code": code, "title": title.strip(),
                                         "category": _st_category(code), "status": status.group(1) if status else None,
                                         "response": (body.group(1).strip() if body else "")[:400],
                                         "request": curls[-1] if curls else None,
                                         "steps": len(curls)})  # fmt: skip
    categories = collections.Counter(f["category"] for f in findings)
    summary = [ln.strip() for ln in output.splitlines() if re.search(r"\d+ generated|failures? in [\d.]+s|passed in", ln)]
    return {"operations": operations, "findings": findings, "errors": errors, "by_category": dict(categories),
            "by_code": dict(collections.Counter(f"{f['code']} {f['title']}" for f in findings)), "summary": summary[-4:]}


# --- 5. parser fuzzing ---------------------------------------------------------------------------------


def check_fuzzing() -> dict[str, Any]:
    """Count the hypothesis properties of the parsers (they run with the test suite)."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        lines = path.read_text().splitlines()
        names = []
        for i, line in enumerate(lines):
            if line.lstrip().startswith("@given"):
                following = next((ln for ln in lines[i + 1 :] if ln.lstrip().startswith(("def ", "async def "))), "")
                match = re.search(r"def (\w+)", following)
                names.append(match.group(1) if match else "?")
        if names:
            found[str(path.relative_to(ROOT))] = names
    parsers = found.get("tests/test_parsers.py", [])
    settings = re.search(r"max_examples=(\d+)", (ROOT / "tests" / "test_parsers.py").read_text())
    return {"properties": found, "parser_properties": len(parsers),
            "max_examples": int(settings.group(1)) if settings else None,
            "command": ".venv/bin/python -m pytest tests/test_parsers.py", "passed": len(parsers) > 0}  # fmt: skip


# --- run and render ------------------------------------------------------------------------------------

CHECKS: dict[str, tuple[str, Callable[[], Any]]] = {
    "kill": ("Worker kill -9 under load", check_worker_kills),
    "restart": ("PostgreSQL stop/restart under load", check_database_restart),
    "soak": ("Soak", check_soak),
    "schemathesis": ("schemathesis (OpenAPI and GraphQL)", check_schemathesis),
    "fuzz": ("Parser fuzzing (hypothesis)", check_fuzzing),
}


def run(full: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    """Run every check (full changes nothing: the fault checks use 10k papers and a 5-minute soak)."""
    out: dict[str, Any] = {"papers": PAPERS, "full": full}
    for key in only or list(CHECKS):
        title, fn = CHECKS[key]
        _log(f"{title} ...")
        started = time.monotonic()
        try:
            result = asyncio.run(fn()) if asyncio.iscoroutinefunction(fn) else fn()
        except Exception as exc:  # one broken check must not hide the others' results
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:], "passed": False}
        result["seconds"] = round(time.monotonic() - started, 1)
        _log(f"{title}: {_verdict(result.get('passed'))} in {result['seconds']} s")
        out[key] = result
    return out


def _verdict(passed: bool | None) -> str:
    return "pass" if passed else ("not run" if passed is None else "FAIL")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _code(text: str) -> str:
    """Inline code that survives backticks inside."""
    if not text:
        return ""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _checks_table(checks: dict[str, bool]) -> str:
    return _table(["check", "result"], [[name, "pass" if ok else "**FAIL**"] for name, ok in checks.items()])


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"


def render(result: dict[str, Any]) -> str:
    """The Markdown section: a summary, then a table per check."""
    parts = ["## Faults, load and hostile input", "",
             "Produced by `bench/faults.py` (`python -m bench.run --only faults`). Each check runs against its own "
             f"temporary embedded PostgreSQL loaded with the synthetic corpus ({result.get('papers', PAPERS):,} papers) "
             "and a `papers serve` / `papers worker` subprocess on 127.0.0.1; every process is killed at the end.", ""]  # fmt: skip
    rows = []
    for key, (title, _) in CHECKS.items():
        if key in result:
            r = result[key]
            rows.append([title, "**" + _verdict(r.get("passed")) + "**" if r.get("passed") is False else _verdict(r.get("passed")),
                         _headline(key, r), f"{r.get('seconds', '')} s"])  # fmt: skip
    parts += [_table(["check", "result", "figures", "time"], rows), ""]
    for key, (title, _) in CHECKS.items():
        if key not in result:
            continue
        r = result[key]
        parts += [f"### {title}", ""]
        if "error" in r:
            parts += [f"**Did not complete**: `{r['error']}`", "", "```", r.get("traceback", "")[-1500:], "```", ""]
            continue
        parts += [globals()[f"_render_{key}"](r), ""]
    return "\n".join(parts).rstrip() + "\n"


def _headline(key: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"error: {r['error'][:120]}"
    if "not_run" in r:
        return r["not_run"]
    if key == "kill":
        a = r["audit"]
        made = sum(1 for e in r["kills"] if "skipped" not in e)
        return (f"{made} kills ({r['interrupted']} inside a job); {a['listings']}/{r['jobs']} listings complete, {a['papers']:,} papers "
                f"({a['distinct_fingerprints']:,} distinct); {a['jobs_retried']} jobs retried")
    if key == "restart":
        after = r["phases"].get("5 after restart", {}).get("statuses", {})
        return (f"{_statuses(r['statuses'])}; down {r['down_seconds']} s; 200s again {r['first_200_after_start_s']} s "
                f"after PostgreSQL was up, then {sum(v for k, v in after.items() if k != '200')} non-200")
    if key == "soak":
        return (f"{r['soak_seconds']} s, {r['requests']:,} requests, {r['req_per_s']} req/s; 5xx: {sum(r['fivexx'].values())}; "
                f"RSS {r['rss_first_minute_mib']} → {r['rss_last_minute_mib']} MiB ({r['rss_growth']:+.1%})")
    if key == "schemathesis":
        return "; ".join(f"{name}: {run['by_category'].get('server error', 0)} server errors, "
                         f"{run['by_category'].get('schema non-conformance', 0)} non-conforming, "
                         f"{run['by_category'].get('input handling', 0)} input-handling findings"
                         for name, run in r["runs"].items())  # fmt: skip
    if key == "fuzz":
        return f"{r['parser_properties']} hypothesis properties in tests/test_parsers.py"
    return ""


def _render_kill(r: dict[str, Any]) -> str:
    a = r["audit"]
    kills = _table(["kill", "at", "worker pid", "job", "the kill landed", "the job ended"],
                   [[e["kill"], f"{e['at_s']} s", e["pid"], e["job"], e["landed"], e["final"]] if "skipped" not in e
                    else [e["kill"], "", "", "", e["skipped"], ""] for e in r["kills"]])  # fmt: skip
    figures = _table(["figure", "value"], [
        ["jobs (corpus listings)", r["jobs"]],
        ["workers side by side / started in all", f"{r['workers']} / {r['workers_started']}"],
        ["queue drained in", f"{r['drain_seconds']} s ({r['papers_per_s']:,} papers/s including kills and restarts)"],
        ["listings stored / complete", f"{a['listings']} / {a['listings'] - a['incomplete_listings']}"],
        ["entries stored", f"{a['entries']:,}"],
        ["papers / distinct fingerprints / distinct titles", f"{a['papers']:,} / {a['distinct_fingerprints']:,} / {a['distinct_titles']:,}"],
        ["jobs by status", _statuses(a["jobs_by_status"])],
        ["attempts per job", ", ".join(f"{k} attempt(s): {v} jobs" for k, v in a["attempts_histogram"].items())],
        ["jobs whose retry found the listing already stored", a["jobs_unchanged_on_retry"]],
        ["jobs not matching exactly one stored listing", a["jobs_not_one_listing"]],
    ])  # fmt: skip
    return (f"{r['jobs']} jobs (listings of up to 150 papers), {r['workers']} `papers worker` processes; a worker that "
            "was running a job was sent SIGKILL at a random moment and a new one started at once.\n\n"
            f"{kills}\n\n{figures}\n\n{_checks_table(r['checks'])}")


def _render_restart(r: dict[str, Any]) -> str:
    m = r["marks_s"]
    phase_rows = [[name[2:], p["requests"], _statuses(p["statuses"]), f"{p['max_latency_ms']} ms"]
                  for name, p in r["phases"].items()]  # fmt: skip
    return (f"{r['concurrency']} concurrent clients (Python httpx loop) on `/v1/papers?limit=20` and `/v1/papers/{{id}}`. "
            f"Stop called at {m['stop_called']} s (down at {m['stop_done']} s), start called at {m['start_called']} s "
            f"(up at {m['start_done']} s), load stopped at {m['load_stopped']} s.\n\n"
            + _table(["phase", "requests", "statuses", "max latency"], phase_rows) + "\n\n"
            + _table(["figure", "value"], [
                ["requests", f"{r['requests']:,}"], ["statuses", _statuses(r["statuses"])],
                ["database down for", f"{r['down_seconds']} s"],
                ["first 200 after PostgreSQL was up", f"{r['first_200_after_start_s']} s"],
                ["non-200 responses to requests sent after PostgreSQL was up",
                 sum(v for k, v in r["phases"].get("5 after restart", {}).get("statuses", {}).items() if k != "200")],
                ["max latency", f"{r['max_latency_ms']} ms"],
            ]) + "\n\n" + _checks_table(r["checks"]))  # fmt: skip


def _render_soak(r: dict[str, Any]) -> str:
    samples = r["rss_samples"]
    rss_line = ", ".join(f"{s['kib'] / 1024:.0f}" for s in samples)
    mix = ", ".join(f"{k} {v}" for k, v in sorted(r["mix"].items()))
    return (f"{r['client']} for {r['soak_seconds']} s after a {r['warmup_seconds']} s warm-up, cycling through {sum(r['mix'].values())} "
            f"requests ({mix}). The server runs the local embedding model (loaded in {r['model_load_wait_s']} s); "
            f"the corpus' {r['vectors']:,} vectors are stored as its embeddings.\n\n"
            + _table(["figure", "value"], [
                ["requests", f"{r['requests']:,}"], ["throughput", f"{r['req_per_s']} req/s"],
                ["latency p50 / p99 / max", f"{r['p50_ms']} / {r['p99_ms']} / {r['max_ms']} ms"],
                ["statuses", _statuses(r["statuses"])], ["5xx", sum(r["fivexx"].values())],
                ["GraphQL responses with errors", r["graphql_errors"]],
                ["socket errors", _statuses(r["socket_errors"])],
                ["warm-up statuses", _statuses(r["warmup"]["statuses"])],
                ["server RSS, median of first / last minute", f"{r['rss_first_minute_mib']} / {r['rss_last_minute_mib']} MiB "
                 f"({r['rss_growth']:+.1%})"],
                [f"server RSS every {RSS_EVERY_S} s (MiB, process tree)", rss_line],
            ]) + "\n\n" + _checks_table(r["checks"]))  # fmt: skip


def _render_schemathesis(r: dict[str, Any]) -> str:
    if "not_run" in r:
        return f"Not run: {r['not_run']}."
    out = [f"{r['version']}, `--checks all`, at most {r['max_examples']} examples per operation and {r['max_time_s']} s "
           "per run (fuzzing repeats until the time is spent), against a server with the embedding model and an API key "
           "(sent as a header). The check passes when there is no server error (5xx, or a GraphQL field that failed "
           "on the server) and no response that does not conform to the schema; input-handling findings (ST2xx: a "
           "schema-valid request refused, e.g. a cursor of another query or `first: 0`) are listed but do not fail it.",
           ""]  # fmt: skip
    rows = []
    for name, run in r["runs"].items():
        cat = run["by_category"]
        rows.append([name, f"`st {run['command'].split(' --header')[0]}`", run["exit_code"], run["operations"],
                     cat.get("server error", 0), cat.get("schema non-conformance", 0), cat.get("input handling", 0),
                     len(run["errors"]), f"{run['seconds']} s", "pass" if run["passed"] else "**FAIL**"])  # fmt: skip
    out.append(_table(["target", "command", "exit", "operations", "server errors", "non-conformance",
                       "input handling", "st errors", "time", "result"], rows))  # fmt: skip
    for name, run in r["runs"].items():
        if run["summary"]:
            out += ["", f"{name}: " + "; ".join(run["summary"])]
        if run["findings"]:
            order = {"server error": 0, "schema non-conformance": 1, "input handling": 2, "other": 3}
            found = sorted(run["findings"], key=lambda f: (order[f["category"]], f["code"], f["operation"] or ""))
            out += ["", f"{name} findings:", ""]
            out.append(_table(["category", "code", "operation", "status", "response", "request"],
                              [[f["category"], f"{f['code']} {f['title']}", f["operation"], f["status"],
                                _code(f["response"].strip("`")[:160]), _code((f["request"] or "")[:300])]
                               for f in found[:40]]))  # fmt: skip
        for e in run["errors"][:5]:
            out += ["", f"- st error in `{e['operation']}`: `{e['message'][:300]}`"]
    if r["unhandled"]:
        out += ["", "Server log, distinct unhandled errors: " + "; ".join(_code(u) for u in r["unhandled"])]
    return "\n".join(out)


def _render_fuzz(r: dict[str, Any]) -> str:
    rows = [[path, len(names), ", ".join(f"`{n}`" for n in names)] for path, names in r["properties"].items()]
    return ("Parser fuzzing runs in the test suite, not here: hypothesis properties feed arbitrary text, line soups and "
            "mutated real pages to every parser and require that each input is either parsed (entries or rejects "
            f"with a reason) or refused as not a listing, never an unhandled exception (max_examples={r['max_examples']}). "
            f"Run them with `{r['command']}`.\n\n" + _table(["file", "properties (`@given`)", "tests"], rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated checks of {','.join(CHECKS)}")
    parser.add_argument("--json", type=Path, help="also write the raw result here")
    args = parser.parse_args()
    result = run(False, args.only.split(",") if args.only else None)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    print(render(result))
    return 0 if all(r.get("passed") is not False for r in result.values() if isinstance(r, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
