"""Ingest benchmarks: parse + normalize + load without embedding, the embedding pipeline against the
raw model, and the peak RSS of `papers worker`.

    .venv/bin/python -m bench.run --only ingest            # 10k (median of 3) and 100k papers
    .venv/bin/python -m bench.run --only ingest --full     # adds 1M papers

Every measurement runs against its own temporary embedded PostgreSQL (default settings: fsync on,
synchronous_commit on, shared_buffers 128MB), migrated first and stopped at the end; every ingest
run gets a fresh database. Ingest goes through the real pipeline, `ingest_source` once per
listing of 150 papers, which is what `papers ingest DIR` and `papers worker` do. Three ways of
running it are measured:

- sequential: one connection, one listing after another (`papers ingest DIR`);
- 2 connections: two asyncio tasks in one process, each with its own connection;
- 2 processes: two processes with a connection each, splitting the listings (what two
  `papers worker` processes draining `papers ingest --queue` do, minus the job bookkeeping).

The sequential run is also split into pure-Python parse + normalize time (timed in-band around
`prepare` and `normalize.candidates`), the rest of the client's CPU (asyncpg, glue), time spent
waiting on PostgreSQL, and the CPU PostgreSQL's processes used. A diagnostic run repeats the 10k
ingest without the full-text column and the two GIN indexes, to show what they cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import dataclasses
import json
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Iterator

import psutil

from bench.corpus import generate, listings

ROOT = Path(__file__).resolve().parents[1]
TARGET_PAPERS_PER_S = 20_000
TARGET_EMBED_RATIO = 0.9
SMALL, LARGE, HUGE = 10_000, 100_000, 1_000_000
REPEATS = 3
EMBED_PAPERS = 600
MODES = ("sequential", "2 connections", "2 processes")


# ---------------------------------------------------------------- temporary PostgreSQL


@dataclasses.dataclass
class TempPostgres:
    """A running temporary embedded PostgreSQL: its admin URL and data directory."""

    url: str
    pgdata: Path
    _count: int = 0

    def db_url(self, name: str) -> str:
        """The URL of another database on this server."""
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + name))

    async def fresh_database(self) -> str:
        """Create an empty, migrated database and return its URL."""
        from sql.db import connect
        from sql.migrate import migrate

        self._count += 1
        name = f"bench_{os.getpid()}_{self._count}"
        admin = await connect(self.url, vector=False)
        try:
            await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        url = self.db_url(name)
        conn = await connect(url, vector=False)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return url

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) used so far by the PostgreSQL server: the postmaster, its live
        children, and the children it has reaped (backends of closed connections).

        Backends of just-closed connections are first given time to exit and be reaped: as zombies
        they show no CPU time and are not yet in the postmaster's reaped-children times.
        """
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        master = psutil.Process(pid)
        time.sleep(0.1)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            statuses = []
            for child in master.children():
                with contextlib.suppress(psutil.Error):
                    statuses.append(child.status())
            if psutil.STATUS_ZOMBIE not in statuses:
                break
            time.sleep(0.02)
        t = master.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in master.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
        return total


@contextlib.contextmanager
def temp_postgres(prefix: str = "papers-bench-ingest-") -> Iterator[TempPostgres]:
    """Start an embedded PostgreSQL in a temporary directory; stop it and delete it on exit (also on SIGTERM)."""
    from sql.db import EmbeddedPostgres

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, terminate)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(root)
    try:
        url = server.start()
        yield TempPostgres(url, server.pgdata)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- ingest without embedding


class _Timer:
    """Wraps a function and adds up the CPU time of the calling thread spent in it (CPU, not wall
    time, so that other work on the machine does not inflate it)."""

    def __init__(self, fn) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        started = time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.thread_time() - started


@contextlib.contextmanager
def _timed_pure_python() -> Iterator[tuple[_Timer, _Timer]]:
    """Time `prepare` (decode, parse, normalize) and `candidates` (fingerprints, ids) in-band."""
    import ingest.pipeline
    import sql.store

    prepare, candidates = _Timer(ingest.pipeline.prepare), _Timer(sql.store.candidates)
    ingest.pipeline.prepare, sql.store.candidates = prepare, candidates
    try:
        yield prepare, candidates
    finally:
        ingest.pipeline.prepare, sql.store.candidates = prepare.fn, candidates.fn


async def _ingest_all(url: str, items: list[tuple[str, bytes]], connections: int) -> tuple[int, int]:
    """Ingest items on `connections` connections in this process; return (papers new, errors)."""
    from ingest.pipeline import Source, ingest_source
    from sql.db import connect

    conns = [await connect(url) for _ in range(connections)]
    queue = iter(items)
    totals = [0, 0]

    async def drain(conn) -> None:
        for name, raw in queue:  # the shared iterator hands each listing to exactly one task
            result = await ingest_source(conn, Source(name, raw))
            totals[0] += result.papers_new
            totals[1] += result.error is not None

    try:
        await asyncio.gather(*(drain(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    return totals[0], totals[1]


async def _child_main(url: str, list_file: str) -> None:
    """One of the 2-process ingesters: read its files, connect, say ready, wait for "go", ingest, report."""
    from ingest.pipeline import Source, ingest_source
    from sql.db import connect

    items = [(p, Path(p).read_bytes()) for p in Path(list_file).read_text().split("\n") if p]
    conn = await connect(url)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    cpu0, new, errors = time.process_time(), 0, 0
    for name, raw in items:
        result = await ingest_source(conn, Source(name, raw))
        new, errors = new + result.papers_new, errors + (result.error is not None)
    print(json.dumps([new, errors, time.process_time() - cpu0]), flush=True)
    await conn.close()


def _two_processes(url: str, files: list[Path], workdir: Path) -> tuple[float, int, int, float]:
    """Ingest files split over two processes; return (seconds, papers new, errors, client CPU s)."""
    procs = []
    try:
        for i in range(2):
            list_file = workdir / f"share-{i}.txt"
            list_file.write_text("\n".join(str(f) for f in files[i::2]))
            procs.append(subprocess.Popen([sys.executable, "-m", "bench.ingest", "--child", url, str(list_file)],
                                          cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))  # fmt: skip
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("an ingest child process failed to start")
        started = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [json.loads(p.stdout.readline() or "null") for p in procs]
        seconds = time.perf_counter() - started
        if None in outs:
            raise RuntimeError("an ingest child process failed")
        for p in procs:
            p.wait(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return seconds, sum(o[0] for o in outs), sum(o[1] for o in outs), sum(o[2] for o in outs)


async def _one_run(pg: TempPostgres, items, files, mode: str, diagnostic_sql: tuple[str, ...] = ()) -> dict:
    """One ingest of the whole corpus into a fresh database, in the given mode."""
    from sql.db import connect

    url = await pg.fresh_database()
    if diagnostic_sql:
        conn = await connect(url, vector=False)
        for statement in diagnostic_sql:
            await conn.execute(statement)
        await conn.close()
    pg_before = pg.cpu_seconds()
    split = {}
    if mode == "2 processes":
        seconds, new, errors, client_cpu = await asyncio.to_thread(_two_processes, url, files, files[0].parent.parent)
    else:
        connections = 2 if mode == "2 connections" else 1
        cpu0 = time.process_time()
        with _timed_pure_python() as (prep, cand):
            started = time.perf_counter()
            new, errors = await _ingest_all(url, items, connections)
            seconds = time.perf_counter() - started
        client_cpu = time.process_time() - cpu0
        split = {"parse_normalize_s": round(prep.seconds + cand.seconds, 3), "prepare_s": round(prep.seconds, 3),
                 "candidates_s": round(cand.seconds, 3)}  # fmt: skip
    pg_cpu = pg.cpu_seconds() - pg_before
    papers = sum(raw.count(b"\n") for _, raw in items)
    if new != papers or errors:
        raise RuntimeError(f"ingest stored {new} new papers of {papers} ({errors} errors)")
    run = {"mode": mode, "papers": papers, "seconds": round(seconds, 3), "papers_per_s": round(papers / seconds),
           "client_cpu_s": round(client_cpu, 3), "postgres_cpu_s": round(pg_cpu, 3), **split}  # fmt: skip
    if split:
        run["other_client_cpu_s"] = round(client_cpu - split["parse_normalize_s"], 3)
        run["waiting_on_db_s"] = round(max(seconds - client_cpu, 0.0), 3)
    return run


def _profile_pure_python(items: list[tuple[str, bytes]]) -> dict:
    """cProfile of parse + normalize (no database): where the pure-Python time goes."""
    from ingest.normalize import candidates
    from ingest.pipeline import Source, prepare

    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for name, raw in items:
        item = prepare(Source(name, raw))
        candidates(item.parsed.entries, item.listed_on)
    profile.disable()
    total = time.perf_counter() - started
    stats = pstats.Stats(profile).stats  # (file, line, fn) -> (cc, nc, tt, ct, callers)
    wanted = {
        "text.normalize (html.unescape, NFC, whitespace)": ("ingest/text.py", "normalize"),
        "identity.title_fingerprint": ("ingest/identity.py", "title_fingerprint"),
        "identity.paper_public_id": ("ingest/identity.py", "paper_public_id"),
        "json.loads": ("json/__init__.py", "loads"),
        "normalize.candidates": ("ingest/normalize.py", "candidates"),
    }  # fmt: skip
    out = {"total_profiled_s": round(total, 3), "functions": {}}
    for label, (path, fn) in wanted.items():
        for (file, _line, name), (_cc, calls, _tt, cumulative, _callers) in stats.items():
            if name == fn and file.endswith(path):
                out["functions"][label] = {"calls": calls, "cumulative_s": round(cumulative, 3)}
    return out


async def _ingest_section(full: bool, workdir: Path) -> dict:
    sizes = [SMALL, LARGE] + ([HUGE] if full else [])
    out: dict = {"sizes": {}, "diagnostic": None, "profile": None}
    with temp_postgres() as pg:
        for n in sizes:
            corpus = generate(n)
            items = list(listings(corpus))
            del corpus
            files_dir = workdir / f"listings-{n}"
            files_dir.mkdir()
            files = []
            for name, raw in items:
                (files_dir / name).write_bytes(raw)
                files.append(files_dir / name)
            repeats = REPEATS if n == SMALL else 1
            per_mode = {}
            for mode in MODES:
                runs = []
                for _ in range(repeats):
                    runs.append(await _one_run(pg, items, files, mode))
                    print(f"  ingest {n} {mode}: {runs[-1]['papers_per_s']} papers/s", file=sys.stderr, flush=True)
                median = sorted(runs, key=lambda r: r["papers_per_s"])[len(runs) // 2]
                per_mode[mode] = {"median": median, "runs": runs}
            out["sizes"][str(n)] = per_mode
            if n == SMALL:
                out["profile"] = _profile_pure_python(items)
                # Diagnostic only (not a supported schema): what the full-text column and GIN indexes cost.
                out["diagnostic"] = await _one_run(pg, items, files, "sequential", (
                    "DROP INDEX papers_title_trgm_idx", "ALTER TABLE papers DROP COLUMN search"))  # fmt: skip
            shutil.rmtree(files_dir, ignore_errors=True)
            del items
    return out


# ---------------------------------------------------------------- embedding pipeline vs raw model


@contextlib.contextmanager
def _timed_embed_parts(embedder) -> Iterator[dict[str, float]]:
    """Wall time inside embed_pending spent encoding, fetching pending papers and storing vectors."""
    from sql import embeddings

    parts = {"encode": 0.0, "fetch": 0.0, "store": 0.0}

    def timed(name, fn):
        async def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                parts[name] += time.perf_counter() - started

        return wrapper

    saved = embeddings.pending, embeddings.store
    embeddings.pending, embeddings.store = timed("fetch", saved[0]), timed("store", saved[1])
    embedder.embed = timed("encode", type(embedder).embed.__get__(embedder))
    try:
        yield parts
    finally:
        embeddings.pending, embeddings.store = saved
        del embedder.embed


async def _embedding_section() -> dict:
    from ingest.embed import embed_pending
    from ingest.embedder import LocalEmbedder, embedding_text
    from ingest.pipeline import Source, ingest_source
    from sql import embeddings
    from sql.db import connect

    embedder = LocalEmbedder()
    load_started = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - load_started
    embedder.encode(["warm-up text"] * 8)
    with temp_postgres() as pg:
        url = await pg.fresh_database()
        conn = await connect(url)
        try:
            for name, raw in listings(generate(EMBED_PAPERS)):
                await ingest_source(conn, Source(name, raw))
            pending = await embeddings.pending(conn, limit=10 * EMBED_PAPERS)
            texts = [embedding_text(p.title, p.abstract) for p in pending]
            raw_runs, pipeline_runs, raw_cpu, pipeline_cpu, pipeline_pg_cpu, pipeline_parts = [], [], [], [], [], []
            for _ in range(REPEATS):  # alternate raw and pipeline so drift of the machine is shared
                started, cpu0 = time.perf_counter(), time.process_time()
                vectors = embedder.encode(texts)
                raw_runs.append(time.perf_counter() - started)
                raw_cpu.append(time.process_time() - cpu0)
                assert vectors.shape == (len(texts), embedder.dim)
                await conn.execute("UPDATE papers SET embedding = NULL, embedding_model = NULL, embedding_attempts = 0")
                await conn.execute("VACUUM papers")
                started, cpu0, pg0 = time.perf_counter(), time.process_time(), pg.cpu_seconds()
                with _timed_embed_parts(embedder) as parts:
                    report = await embed_pending(conn, embedder)
                pipeline_runs.append(time.perf_counter() - started)
                pipeline_parts.append({k: round(v, 2) for k, v in parts.items()})
                pipeline_cpu.append(time.process_time() - cpu0)
                pipeline_pg_cpu.append(pg.cpu_seconds() - pg0)
                if report.embedded != len(texts) or report.failed:
                    raise RuntimeError(f"embed_pending embedded {report.embedded} of {len(texts)}")
                print(f"  embed raw {len(texts) / raw_runs[-1]:.1f}/s, pipeline {len(texts) / pipeline_runs[-1]:.1f}/s",
                      file=sys.stderr, flush=True)  # fmt: skip
        finally:
            await conn.close()
    raw_s, pipe_s = statistics.median(raw_runs), statistics.median(pipeline_runs)
    return {
        "texts": len(texts), "model_load_s": round(load_s, 2), "torch_threads": _torch_threads(),
        "raw_s": [round(s, 3) for s in raw_runs], "pipeline_s": [round(s, 3) for s in pipeline_runs],
        "raw_papers_per_s": round(len(texts) / raw_s, 1), "pipeline_papers_per_s": round(len(texts) / pipe_s, 1),
        "ratio": round(raw_s / pipe_s, 3),
        "raw_cpu_s": [round(s, 2) for s in raw_cpu], "pipeline_cpu_s": [round(s, 2) for s in pipeline_cpu],
        "pipeline_postgres_cpu_s": [round(s, 2) for s in pipeline_pg_cpu], "pipeline_parts_s": pipeline_parts,
        "cpu_ratio": round(statistics.median(raw_cpu) / statistics.median(pipeline_cpu), 3), "encode_batch": embedder.batch_size, "max_tokens": embedder.max_tokens,
    }  # fmt: skip


def _torch_threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


# ---------------------------------------------------------------- worker peak RSS


def _papers_command() -> list[str]:
    script = Path(sys.executable).parent / "papers"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ingest.cli"]


def _run_measured(cmd: list[str], env: dict[str, str], workdir: Path) -> dict:
    """Run cmd; return its wall time, exit code and peak RSS.

    The peak is the kernel's ru_maxrss as reported by `/usr/bin/time -v` (a fork of this big process
    would carry this process's high-water mark across exec, so the worker is started by `time`), and
    the largest total RSS of the process tree seen by psutil polling every 50 ms.
    """
    gnu_time = Path("/usr/bin/time")
    report = workdir / "time-v.txt"
    full = [str(gnu_time), "-v", "-o", str(report), *cmd] if gnu_time.exists() else cmd
    started = time.perf_counter()
    proc = subprocess.Popen(full, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_tree, done = 0, threading.Event()

    def poll() -> None:
        nonlocal peak_tree
        try:
            top = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not done.is_set():
            total = 0
            with contextlib.suppress(psutil.Error):
                for child in top.children(recursive=True):  # the worker (and anything it starts), not `time`
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss
            peak_tree = max(peak_tree, total)
            done.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    stderr = proc.stderr.read()
    proc.wait()
    seconds = time.perf_counter() - started
    done.set()
    poller.join()
    maxrss = None
    if report.exists():
        for line in report.read_text().splitlines():
            if "Maximum resident set size" in line:
                maxrss = int(line.rsplit(":", 1)[1]) / 1024
    return {"seconds": round(seconds, 2), "exit": proc.returncode,
            "peak_rss_mib": round(maxrss if maxrss is not None else peak_tree / 2**20, 1),
            "peak_tree_rss_mib_polled": round(peak_tree / 2**20, 1),
            "stderr_tail": stderr.decode(errors="replace")[-400:]}  # fmt: skip


async def _worker_case(pg: TempPostgres, papers: int, embedder: str, workdir: Path) -> dict:
    from sql import jobs
    from sql.db import connect

    url = await pg.fresh_database()
    conn = await connect(url)
    try:
        for name, raw in listings(generate(papers)):
            await jobs.enqueue(conn, name, raw)
        env = {**os.environ, "DATABASE_URL": url, "PAPERS_EMBEDDER": embedder}
        measured = await asyncio.to_thread(_run_measured, [*_papers_command(), "worker", "--once"], env, workdir)
        status = dict(await conn.fetch("SELECT status, count(*) FROM ingest_jobs GROUP BY status"))
        stored = await conn.fetchval("SELECT count(*) FROM papers")
        embedded = await conn.fetchval("SELECT count(*) FROM papers WHERE embedding IS NOT NULL")
    finally:
        await conn.close()
    if measured["exit"] != 0 or stored != papers:
        raise RuntimeError(f"papers worker --once exited {measured['exit']} with {stored}/{papers} papers: "
                           f"{measured['stderr_tail']}")  # fmt: skip
    del measured["stderr_tail"]
    return {"papers": papers, "embedder": embedder, "jobs": status, "embedded": embedded,
            "papers_per_s": round(papers / measured["seconds"], 1), **measured}  # fmt: skip


async def _worker_section() -> list[dict]:
    out = []
    with temp_postgres() as pg:
        for papers, embedder in ((SMALL, "none"), (EMBED_PAPERS, "local")):
            out.append(await _worker_case(pg, papers, embedder, pg.pgdata.parent))
            print(f"  worker {papers} embedder={embedder}: {out[-1]['peak_rss_mib']} MiB, {out[-1]['seconds']} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    return out


# ---------------------------------------------------------------- section API


def run(full: bool) -> dict:
    """Measure ingest without embedding, embedding pipeline vs raw model, and worker peak RSS."""
    workdir = Path(tempfile.mkdtemp(prefix="papers-bench-ingest-listings-"))
    load0 = os.getloadavg()[0]
    try:
        ingest = asyncio.run(_ingest_section(full, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    embedding = asyncio.run(_embedding_section())
    worker = asyncio.run(_worker_section())
    return {"ingest": ingest, "embedding": embedding, "worker": worker, "cores": os.cpu_count(),
            "loadavg_1m_at_start": round(load0, 2), "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}  # fmt: skip


def _verdict(value: float, target: float) -> str:
    return f"{'met' if value >= target else 'missed'} ({value / target:.2f}× target)"


def render(result: dict) -> str:
    """The ingest section of docs/benchmarks.md."""
    ing, emb, workers = result["ingest"], result["embedding"], result["worker"]
    lines = ["## Ingest", "",
             "Through the real pipeline (`ingest_source` per listing of 150 papers: decode, parse, normalize, "
             "store in one transaction), into a fresh temporary embedded PostgreSQL with default settings "
             "(fsync and synchronous_commit on, shared_buffers 128MB), no embedding. 10k: median of 3 runs, "
             "each into a fresh database; larger sizes: 1 run. *2 processes* is two processes splitting the "
             "listings, as two `papers worker`s draining a queue would.", "",
             "| Papers | Mode | Seconds | Papers/s | Client CPU s | PostgreSQL CPU s | vs 20k papers/s |",
             "|---:|---|---:|---:|---:|---:|---|"]  # fmt: skip
    best = 0
    for size, modes in ing["sizes"].items():
        for mode, data in modes.items():
            m = data["median"]
            best = max(best, m["papers_per_s"])
            runs = f" (runs: {', '.join(str(r['papers_per_s']) for r in data['runs'])})" if len(data["runs"]) > 1 else ""
            lines.append(f"| {int(size):,} | {mode} | {m['seconds']:.2f} | {m['papers_per_s']:,}{runs} | "
                         f"{m['client_cpu_s']:.2f} | {m['postgres_cpu_s']:.2f} | {m['papers_per_s'] / TARGET_PAPERS_PER_S:.2f}× |")  # fmt: skip
    lines += ["", "Where the sequential run's time goes (one connection; parse + normalize timed in-band around "
              "`prepare` and `normalize.candidates`):", "",
              "| Papers | Wall s | Parse + normalize s | Other client CPU s | Off client CPU s (waiting on PostgreSQL or a core) | PostgreSQL CPU s | Parse + normalize alone caps at |",
              "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for size, modes in ing["sizes"].items():
        m = modes["sequential"]["median"]
        cap = int(size) / m["parse_normalize_s"] if m["parse_normalize_s"] else 0
        lines.append(f"| {int(size):,} | {m['seconds']:.2f} | {m['parse_normalize_s']:.2f} ({m['parse_normalize_s'] / m['seconds']:.0%}) | "
                     f"{m['other_client_cpu_s']:.2f} | {m['waiting_on_db_s']:.2f} ({m['waiting_on_db_s'] / m['seconds']:.0%}) | "
                     f"{m['postgres_cpu_s']:.2f} | {cap:,.0f} papers/s |")  # fmt: skip
    small = ing["sizes"][str(SMALL)]["sequential"]["median"]
    diag, prof = ing["diagnostic"], ing["profile"]
    if diag:
        lines += ["", f"Diagnostic, not a supported schema: the same 10k sequential ingest with the generated "
                  f"full-text column (`search`, its GIN index) and the title trigram GIN index dropped: "
                  f"{diag['papers_per_s']:,} papers/s (PostgreSQL CPU {diag['postgres_cpu_s']:.2f} s against "
                  f"{small['postgres_cpu_s']:.2f} s with them)."]  # fmt: skip
    if prof:
        parts = ", ".join(f"{k} {v['cumulative_s']:.2f} s ({v['calls']:,} calls)" for k, v in prof["functions"].items())
        lines += ["", f"Profile of parse + normalize alone for 10k papers (cProfile, {prof['total_profiled_s']:.2f} s "
                  f"with profiling overhead): {parts}."]  # fmt: skip
    # Target verdict.
    seq_large = ing["sizes"][str(LARGE)]["sequential"]["median"]
    pg_rate = int(LARGE) / seq_large["postgres_cpu_s"] if seq_large["postgres_cpu_s"] else 0
    py_rate = int(LARGE) / seq_large["parse_normalize_s"] if seq_large["parse_normalize_s"] else 0
    client_rate = int(LARGE) / seq_large["client_cpu_s"] if seq_large["client_cpu_s"] else 0
    lines += ["", f"**Target: ingest without embedding ≥ 20,000 papers/s — {_verdict(best, TARGET_PAPERS_PER_S)}** "
              f"(best mode and size: {best:,} papers/s). "]  # fmt: skip
    if best < TARGET_PAPERS_PER_S:
        lines[-1] += (
            f"Why: at 100k papers every paper costs PostgreSQL {1e3 * seq_large['postgres_cpu_s'] / int(LARGE):.2f} ms of CPU "
            f"({pg_rate:,.0f} papers/s per core) and the client {1e3 * seq_large['client_cpu_s'] / int(LARGE):.2f} ms "
            f"({client_rate:,.0f} papers/s per core, of which parse + normalize alone {py_rate:,.0f} papers/s). "
            f"With {result['cores']} cores shared by both, the ceiling is about "
            f"{result['cores'] * int(LARGE) / (seq_large['postgres_cpu_s'] + seq_large['client_cpu_s']):,.0f} papers/s. "
            + (f"The full-text column and the two GIN indexes account for {1 - diag['postgres_cpu_s'] / small['postgres_cpu_s']:.0%} "
               "of PostgreSQL's CPU (diagnostic run above). " if diag and small["postgres_cpu_s"] else "")
            + "What would reach it: more cores with one ingest process per core (the work splits by listing, and "
            "both the client and PostgreSQL sides scale with cores); on the PostgreSQL side, which costs "
            f"{seq_large['postgres_cpu_s'] / (seq_large['postgres_cpu_s'] + seq_large['client_cpu_s']):.0%} of the CPU, "
            "most of it goes to the generated full-text column and the GIN indexes (diagnostic run above), so a "
            "bulk-load mode that drops the GIN indexes and builds them once after the load (a sorted build instead "
            "of row-by-row inserts). Papers are already written with one `unnest` INSERT and entries with COPY per "
            "listing, so batching is not the lever; the client's parse + normalize is no longer one either."
            + (f" PostgreSQL alone, given all {result['cores']} cores and a free client, would top out near "
               f"{result['cores'] * pg_rate:,.0f} papers/s here." if result["cores"] * pg_rate < TARGET_PAPERS_PER_S else "")
        )  # fmt: skip
    # Embedding.
    lines += ["", "### Embedding: pipeline against the raw model", "",
              f"The same {emb['texts']} texts (`embedding_text` of the first {emb['texts']} corpus papers, as stored): "
              f"the raw model is one `LocalEmbedder().encode(texts)` call (MiniLM, {emb['max_tokens']} word pieces, "
              f"batch {emb['encode_batch']}, torch threads {emb['torch_threads']}); the pipeline is `embed_pending` "
              "(read up to 1,024 pending papers, sort them by length, encode 64 at a time in a thread, write each batch's "
              "vectors with the HNSW index maintained, repeat). "
              f"Model loaded once beforehand ({emb['model_load_s']} s). Median of 3, raw and pipeline alternating.", "",
              "| | Seconds (3 runs) | Papers/s (median) | Process CPU s (3 runs) | PostgreSQL CPU s |", "|---|---|---:|---|---|",
              f"| raw `encode` | {', '.join(f'{s:.2f}' for s in emb['raw_s'])} | {emb['raw_papers_per_s']:.1f} | "
              f"{', '.join(f'{s:.1f}' for s in emb.get('raw_cpu_s', []))} | – |",
              f"| `embed_pending` | {', '.join(f'{s:.2f}' for s in emb['pipeline_s'])} | {emb['pipeline_papers_per_s']:.1f} | "
              f"{', '.join(f'{s:.1f}' for s in emb.get('pipeline_cpu_s', []))} | "
              f"{', '.join(f'{s:.2f}' for s in emb.get('pipeline_postgres_cpu_s', []))} |",
              "", f"**Target: pipeline ≥ 0.9× the raw model — ratio {emb['ratio']:.3f}, "
              f"{'met' if emb['ratio'] >= TARGET_EMBED_RATIO else 'missed'}** (by wall time, median over median; by this "
              f"process's CPU time, less sensitive to other work on the machine: {emb.get('cpu_ratio', float('nan')):.3f})."]  # fmt: skip
    parts = emb.get("pipeline_parts_s")
    share = None
    if parts:
        mid = sorted(range(len(parts)), key=lambda i: emb["pipeline_s"][i])[len(parts) // 2]
        part, total = parts[mid], emb["pipeline_s"][mid]
        share = part["encode"] / total
        lines += ["", f"Inside the median pipeline run ({total:.2f} s): encoding {part['encode']:.2f} s "
                  f"({share:.0%}), fetching pending papers {part['fetch']:.2f} s, storing vectors "
                  f"{part['store']:.2f} s, other (thread hand-off, bookkeeping) {total - sum(part.values()):.2f} s: the "
                  f"pipeline's own overhead is {1 - share:.0%} of its time."]  # fmt: skip
    spread = f"raw runs took {min(emb['raw_s']):.1f}–{max(emb['raw_s']):.1f} s for the same texts"
    if emb["ratio"] < TARGET_EMBED_RATIO and share is not None and share >= TARGET_EMBED_RATIO:
        lines += ["", f"Missed by wall time between separate runs, but the in-band split shows the pipeline spends "
                  f"{share:.0%} of its time in the model: the gap is run-to-run variation of the model itself "
                  f"({spread}), not pipeline overhead. A quiet machine would show it; on this one the CPU-time "
                  f"ratio ({emb.get('cpu_ratio', float('nan')):.2f}) is the steadier figure."]  # fmt: skip
    elif emb["ratio"] < TARGET_EMBED_RATIO:
        lines += ["", "Why it is missed: time outside encoding is database round trips and the thread hand-off "
                  "(the model idles meanwhile), and encoding 64 texts per call pads more than one call over all "
                  "texts, which sorts them by length. Overlapping the next fetch and the previous store with "
                  f"encoding, and larger batches, would close the gap ({spread})."]  # fmt: skip
    elif emb["ratio"] > 1.05:
        lines += ["", f"A ratio above 1 does not mean the pipeline beats the model: it runs the same model on the same "
                  f"texts, and the difference is run-to-run variation on this machine ({spread})."]  # fmt: skip
    # Worker.
    lines += ["", "### Worker memory", "",
              "`papers worker --once` as a subprocess draining a queue filled with `sql.jobs.enqueue` (one job per "
              "listing of 150 papers). Peak RSS is the kernel's `ru_maxrss` of the worker process, read with `/usr/bin/time -v` (psutil polling of "
              "its process tree every 50 ms agrees or is lower). Time includes interpreter start, imports and, with "
              "the local embedder, loading the model.", "",
              "| Papers | PAPERS_EMBEDDER | Jobs | Embedded | Seconds | Papers/s | Peak RSS MiB |",
              "|---:|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for w in workers:
        jobs = ", ".join(f"{v} {k}" for k, v in w["jobs"].items())
        lines.append(f"| {w['papers']:,} | {w['embedder']} | {jobs} | {w['embedded']:,} | {w['seconds']:.1f} | "
                     f"{w['papers_per_s']:,.0f} | {w['peak_rss_mib']:.0f} |")  # fmt: skip
    noisy = max(result["loadavg_1m_at_start"], result["loadavg_1m_at_end"]) > 0.5 * result["cores"]
    lines += ["", f"Load average (1 min) at start {result['loadavg_1m_at_start']}, at end {result['loadavg_1m_at_end']}"
              + (" — other work was running on the machine; figures may be noisy." if noisy else ".")]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        asyncio.run(_child_main(sys.argv[2], sys.argv[3]))
    else:
        sys.exit("usage: python -m bench.run --only ingest")
