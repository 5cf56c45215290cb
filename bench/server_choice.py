"""Benchmark granian against uvicorn (uvloop + httptools) serving `api.asgi:app`.

Run through bench/server_choice.sh, which sets DATABASE_URL from `papers db url` and uses the
/tmp/uvb virtualenv. Each round starts one server (1 worker), runs wrk on every endpoint (a
warm-up run whose numbers are discarded, then the measured run), stops it, and does the same for
the other server; the order alternates between rounds (A B, B A, A B, ...) so slow drift of the
machine is shared. Only 127.0.0.1 is contacted. Reported: per run and as medians over rounds,
req/s and p50/p99 latency from `wrk --latency`, plus the CPU used during the measured run by the
server's process tree, by the PostgreSQL cluster, by wrk and by everything else (2 cores = 200%).

Guards for a shared, changing machine:
- the servers import a frozen copy of the app's packages (the last commit by default), taken
  before the first run, so that edits in the repository during the run change nothing;
- PAPERS_EMBEDDER=none, so no embedding model loads in the background during the runs;
- before each measured run the script waits (bounded) for other processes to go idle, and measures
  again (at most --max-retries times) when they used more than --max-other % of a core meanwhile;
  medians are taken over the undisturbed runs when there are any, and the tables say how many.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repo root
from bench.api import parse_wrk  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
GRAPHQL_LUA = BENCH / "graphql_papers.lua"
GRAPHQL_QUERY = "{ papers(first: 20) { edges { node { id title listings { id rank } } } } }"
CLK_TCK = os.sysconf("SC_CLK_TCK")

SERVERS = {
    "granian": {
        "port": 8201,
        "cmd": lambda port: [str(VENV_BIN / "granian"), "--interface", "asgi", "--workers", "1",
                             "--host", HOST, "--port", str(port), "api.asgi:app"],  # fmt: skip
    },
    "uvicorn": {
        "port": 8202,
        "cmd": lambda port: [str(VENV_BIN / "uvicorn"), "api.asgi:app", "--host", HOST, "--port", str(port),
                             "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log"],  # fmt: skip
    },
}

# name -> (path template, wrk script or None)
ENDPOINTS = {
    "healthz": ("/healthz", None),
    "paper": ("/v1/papers/{paper_id}", None),
    "papers20": ("/v1/papers?limit=20", None),
    "graphql20": ("/graphql", GRAPHQL_LUA),
}


# ---------------------------------------------------------------- CPU accounting from /proc


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime+stime ticks) for every process still readable."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
        out[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


def _tree(stats: dict[int, tuple[int, int]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    total = sum(vals[:8])
    return total - idle, total


class CpuMeter:
    """CPU seconds of the server tree, the PostgreSQL cluster and the machine between start() and stop()."""

    def __init__(self, server_pid: int, postmaster_pid: int | None):
        self.roots = {"server": server_pid, "postgres": postmaster_pid}

    def _sample(self):
        stats = _proc_stats()
        per = {}
        for name, root in self.roots.items():
            per[name] = {pid: stats[pid][1] for pid in _tree(stats, root)} if root else {}
        return per, _machine_ticks(), time.monotonic()

    def start(self):
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        (p0, (b0, t0), w0), (p1, (b1, t1), w1) = self._start, self._sample()
        wall = w1 - w0
        res = {}
        for name in self.roots:
            ticks = sum(v - p0[name].get(pid, 0) for pid, v in p1[name].items())
            res[f"{name}_cpu_pct"] = round(100 * ticks / CLK_TCK / wall, 1) if self.roots[name] else None
        res["machine_cpu_pct"] = round(100 * (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1), 1)
        return res


def postmaster_pid(database_url: str) -> int | None:
    """The embedded cluster's postmaster, when the URL points at a local socket directory."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(database_url).query)
    for host in q.get("host", []):
        pidfile = Path(host) / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return None


# ---------------------------------------------------------------- wrk


def run_wrk(url: str, script: Path | None, args, duration: int) -> str:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(url)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=duration + 30).stdout


# ---------------------------------------------------------------- servers


def http(url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


class Server:
    def __init__(self, name: str, env: dict, logdir: Path, cwd: Path):
        self.name, self.env, self.cwd = name, env, cwd
        self.port = SERVERS[name]["port"]
        self.cmd = SERVERS[name]["cmd"](self.port)
        self.log = logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        if port_in_use(self.port):
            raise SystemExit(f"port {self.port} is already in use; stop whatever listens there first")
        with open(self.log, "ab") as log:
            log.write(f"\n=== {' '.join(self.cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if http(f"http://{HOST}:{self.port}/healthz", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise SystemExit(f"{self.name} did not answer /healthz within 60 s:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # our own session: the server and its workers
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)


def check_endpoint(base: str, name: str, path: str) -> int:
    """One request before the load: 200, a real result (20 items / no GraphQL errors); returns the body size."""
    if name == "graphql20":
        status, body = http(base + path, json.dumps({"query": GRAPHQL_QUERY}).encode())
        doc = json.loads(body)
        if status != 200 or doc.get("errors") or len(doc["data"]["papers"]["edges"]) != 20:
            raise SystemExit(f"GraphQL check failed ({status}): {body[:500]!r}")
    else:
        status, body = http(base + path)
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}")
        if name == "papers20" and len(json.loads(body)["items"]) != 20:
            raise SystemExit(f"{path}: expected 20 items")
    return len(body)


# ---------------------------------------------------------------- code under test

PACKAGES = ("api", "schema", "sql", "ingest")  # [tool.setuptools.packages.find] include


def describe_code(source: str) -> str:
    head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    if source == "worktree":
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", *PACKAGES],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        return f"working tree on {head}" + (" (with uncommitted changes)" if dirty else "")
    return f"commit {head}"


def snapshot(source: str, dest: Path) -> Path:
    """Copy the app's packages, so that edits made in the repository during the run change nothing."""
    dest.mkdir()
    if source == "head":
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", *PACKAGES], check=True,
                                 capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        for pkg in PACKAGES:
            shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def check_import(env: dict, code: Path) -> None:
    """The servers must import the copy, not the editable install pointing at the repository."""
    out = subprocess.run([sys.executable, "-c", "import api.asgi; print(api.asgi.__file__)"], cwd=code, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    if out.returncode:
        raise SystemExit(f"cannot import api.asgi with {sys.executable} (new dependencies? run"
                         f" `{VENV_BIN}/pip install -e {ROOT}`):\n{out.stderr[-2000:]}")  # fmt: skip
    if not out.stdout.strip().startswith(str(code)):
        raise SystemExit(f"the copy of the code is not what gets imported: {out.stdout}")


# ---------------------------------------------------------------- environment


def environment(database_url: str) -> dict:
    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    versions = {}
    for dist in ("granian", "uvicorn", "uvloop", "httptools", "litestar", "strawberry-graphql", "asyncpg", "msgspec"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        import asyncio

        import asyncpg

        async def pg_version():
            conn = await asyncpg.connect(database_url)
            try:
                return await conn.fetchval("SHOW server_version"), await conn.fetchval("SELECT count(*) FROM papers")
            finally:
                await conn.close()

        versions["postgresql"], papers = asyncio.run(pg_version())
    except Exception as exc:  # noqa: BLE001 - informational only
        versions["postgresql"], papers = f"unknown ({exc})", None
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout + wrk.stderr).split("[")[0].strip(),
        "versions": versions,
        "papers": papers,
    }


def measure(url: str, script: Path | None, args, server_pid: int, pg_pid: int | None) -> dict:
    """One measured wrk run, with the CPU used meanwhile by the server, PostgreSQL, wrk and everything else."""
    meter = CpuMeter(server_pid, pg_pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter.start()
    out = run_wrk(url, script, args, args.duration)
    cpu = meter.stop()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # only wrk was reaped in between
    wrk_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    cpu["wrk_cpu_pct"] = round(100 * wrk_s / args.duration, 1)
    cpu["other_cpu_pct"] = round(cpu["machine_cpu_pct"] - cpu["server_cpu_pct"]
                                 - (cpu["postgres_cpu_pct"] or 0) - cpu["wrk_cpu_pct"], 1)  # fmt: skip
    res = {**parse_wrk(out), **cpu}
    # CPU per request: the cost of serving one (it too grows when other processes compete for the CPU).
    res["server_cpu_us_per_req"] = round(1e4 * res["server_cpu_pct"] / res["rps"], 1)
    res["postgres_cpu_us_per_req"] = (round(1e4 * res["postgres_cpu_pct"] / res["rps"], 1)
                                      if res["postgres_cpu_pct"] is not None else None)  # fmt: skip
    return res


def wait_quiet(max_pct: float, timeout: float) -> None:
    """Wait (at most timeout s) until the machine is nearly idle for 1 s: other jobs share this box."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b0, t0 = _machine_ticks()
        time.sleep(1.0)
        b1, t1 = _machine_ticks()
        if 100 * (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1) <= max_pct:
            return


# ---------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=10, help="seconds of each measured wrk run")
    p.add_argument("--warmup", type=int, default=3, help="seconds of the discarded wrk run before each")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--servers", default="granian,uvicorn")
    p.add_argument("--endpoints", default=",".join(ENDPOINTS))
    p.add_argument("--paper-id", default=os.environ.get("PAPER_ID"), help="default: the first of /v1/papers")
    p.add_argument("--json-out", type=Path, help="write every run and the medians here")
    p.add_argument("--source", choices=("head", "worktree"), default="head",
                   help="code to serve: the last commit (default) or the working tree, copied before the first run")
    p.add_argument("--max-other", type=float, default=15,
                   help="measure again when other processes used more than this %% of one core (default 15)")
    p.add_argument("--quiet-wait", type=float, default=20,
                   help="seconds to wait, at most, for other processes to go idle before each run (default 20)")
    p.add_argument("--max-retries", type=int, default=2, help="measurements again per run, at most (default 2)")
    p.add_argument("--time-budget", type=float, default=540,
                   help="seconds; no more measuring again once the rest would not fit (default 540)")
    args = p.parse_args()

    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        raise SystemExit("DATABASE_URL is not set (bench/server_choice.sh sets it from `papers db url`)")
    servers = args.servers.split(",")
    endpoints = args.endpoints.split(",")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERS_", "GRANIAN_", "UVICORN_"))}
    env["DATABASE_URL"] = database_url
    # The default local embedder loads a sentence-transformers model in a background thread after startup,
    # which would take CPU from the first runs; none of the endpoints compared here embeds anything.
    env["PAPERS_EMBEDDER"] = "none"
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    pg_pid = postmaster_pid(database_url)
    code_desc = describe_code(args.source)

    info = environment(database_url)
    print(f"# {info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}, {info['wrk']}", flush=True)
    print("# " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()), flush=True)
    print(f"# wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency after a {args.warmup} s warm-up;"
          f" {args.rounds} rounds, order alternating", flush=True)  # fmt: skip
    print(f"# loadavg before: {open('/proc/loadavg').read().split()[:3]}", flush=True)

    runs = []
    t_start = time.monotonic()
    total_runs = args.rounds * len(servers) * len(endpoints)
    per_run = args.warmup + args.duration + 1.5  # + the server start, shared by the endpoints
    with tempfile.TemporaryDirectory(prefix="server_choice.") as tmp:
        logdir = Path(tmp)
        code = snapshot(args.source, logdir / "src")
        env["PYTHONPATH"] = str(code)
        print(f"# code: {code_desc}; servers import it from a frozen copy", flush=True)
        check_import(env, code)
        paper_id = args.paper_id
        hdr = f"{'round':>5} {'server':8} {'endpoint':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'srv%':>6} {'pg%':>6} {'wrk%':>6} {'othr%':>6} {'all%':>6} {'srv us/req':>10}"
        print(hdr, flush=True)
        for rnd in range(args.rounds):
            order = servers if rnd % 2 == 0 else servers[::-1]
            for name in order:
                with Server(name, env, logdir, code) as srv:
                    base = f"http://{HOST}:{srv.port}"
                    if paper_id is None:
                        paper_id = json.loads(http(base + "/v1/papers?limit=1")[1])["items"][0]["id"]
                        print(f"# paper id: {paper_id}", flush=True)
                    for ep in endpoints:
                        path, script = ENDPOINTS[ep]
                        url = base + path.format(paper_id=paper_id)
                        size = check_endpoint(base, ep, path.format(paper_id=paper_id))
                        if args.warmup:
                            run_wrk(url, script, args, args.warmup)
                        for attempt in range(args.max_retries + 1):
                            # Other jobs share this machine: start measuring when it is otherwise idle,
                            # waiting no longer than the time budget leaves room for.
                            slack = args.time_budget - (time.monotonic() - t_start) - (total_runs - len(runs)) * per_run
                            wait_quiet(args.max_other, timeout=min(args.quiet_wait, slack))
                            res = measure(url, script, args, srv.proc.pid, pg_pid)
                            res.update({"round": rnd + 1, "server": name, "endpoint": ep, "bytes": size,
                                        "attempts": attempt + 1})  # fmt: skip
                            if res["other_cpu_pct"] <= args.max_other:
                                break
                            # Someone else used the CPU during the run: measure again, if time allows.
                            runs_left = total_runs - len(runs)
                            if time.monotonic() - t_start + (runs_left + 1) * per_run > args.time_budget:
                                break
                            print(f"{rnd + 1:>5} {name:8} {ep:10} (other processes used {res['other_cpu_pct']:.0f}%"
                                  f" of a core: {res['rps']:.0f} req/s discarded, measuring again)", flush=True)  # fmt: skip
                        runs.append(res)
                        flag = "" if not (res["non2xx"] or res["socket_errors"]) else \
                            f"  !! non2xx={res['non2xx']} socket_errors={res['socket_errors']}"  # fmt: skip
                        print(f"{rnd + 1:>5} {name:8} {ep:10} {res['rps']:>9.0f} {res['p50_ms']:>8.2f} {res['p99_ms']:>8.2f}"
                              f" {res['server_cpu_pct'] or 0:>6.0f} {res['postgres_cpu_pct'] or 0:>6.0f}"
                              f" {res['wrk_cpu_pct']:>6.0f} {res['other_cpu_pct']:>6.0f} {res['machine_cpu_pct']:>6.0f}"
                              f" {res['server_cpu_us_per_req']:>10.0f}{flag}", flush=True)  # fmt: skip
                        if res["other_cpu_pct"] > args.max_other:
                            print(f"      ^ noisy: other processes used {res['other_cpu_pct']:.0f}% of a core", flush=True)

    medians, n_clean = {}, {}
    for ep in endpoints:
        for name in servers:
            rs = [r for r in runs if r["server"] == name and r["endpoint"] == ep]
            clean = [r for r in rs if r["other_cpu_pct"] <= args.max_other]
            n_clean[(ep, name)] = len(clean)
            rs = clean or rs  # runs disturbed by other processes only when there is nothing else
            medians[(ep, name)] = {
                k: statistics.median(r[k] for r in rs)
                for k in ("rps", "p50_ms", "p99_ms", "server_cpu_pct", "postgres_cpu_pct", "wrk_cpu_pct",
                          "other_cpu_pct", "machine_cpu_pct", "server_cpu_us_per_req", "postgres_cpu_us_per_req")
                if all(r[k] is not None for r in rs)
            }

    print(f"\n# medians of {args.rounds} rounds, over the undisturbed runs when there are any"
          f" ({time.monotonic() - t_start:.0f} s total)\n")
    a, b = (servers + [None])[:2]
    if b:
        print(f"| endpoint | {a} req/s | {b} req/s | req/s {a}/{b} | {a} p50 ms | {b} p50 ms | p50 {a}/{b}"
              f" | {a} p99 ms | {b} p99 ms | p99 {a}/{b} | undisturbed runs |")  # fmt: skip
        print("|---|" + "---:|" * 10)
        for ep in endpoints:
            ma, mb = medians[(ep, a)], medians[(ep, b)]
            print(f"| {ep} | {ma['rps']:.0f} | {mb['rps']:.0f} | {ma['rps'] / mb['rps']:.2f}"
                  f" | {ma['p50_ms']:.2f} | {mb['p50_ms']:.2f} | {ma['p50_ms'] / mb['p50_ms']:.2f}"
                  f" | {ma['p99_ms']:.2f} | {mb['p99_ms']:.2f} | {ma['p99_ms'] / mb['p99_ms']:.2f}"
                  f" | {n_clean[(ep, a)]}/{n_clean[(ep, b)]} of {args.rounds} |")  # fmt: skip
        print("\n# CPU during the measured runs (medians; % of one core, the machine has"
              f" {os.cpu_count()} = {100 * (os.cpu_count() or 1)}%)\n")
        print("| endpoint | server | server % | server CPU us/req | PostgreSQL % | PG CPU us/req | wrk % | other % | machine % |")
        print("|---|---|" + "---:|" * 7)
        nan = float("nan")
        for ep in endpoints:
            for n in servers:
                m = medians[(ep, n)]
                print(f"| {ep} | {n} | {m['server_cpu_pct']:.0f} | {m['server_cpu_us_per_req']:.0f}"
                      f" | {m.get('postgres_cpu_pct', nan):.0f} | {m.get('postgres_cpu_us_per_req', nan):.0f}"
                      f" | {m['wrk_cpu_pct']:.0f} | {m['other_cpu_pct']:.0f} | {m['machine_cpu_pct']:.0f} |")  # fmt: skip
    noisy = [r for r in runs if r["other_cpu_pct"] > args.max_other]
    print(f"\n# {sum(r['attempts'] - 1 for r in runs)} runs measured again because other processes used the CPU;"
          f" {len(noisy)} kept runs still noisy (> {args.max_other:.0f}% of a core)")
    bad = [r for r in runs if r["non2xx"] or r["socket_errors"]]
    if bad:
        print(f"\nWARNING: {len(bad)} runs had non-2xx responses or socket errors", file=sys.stderr)
    print(f"# loadavg after: {open('/proc/loadavg').read().split()[:3]}")
    if args.json_out:
        args.json_out.write_text(json.dumps({
            "environment": info, "paper_id": paper_id,
            "wrk": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration,
                    "warmup_s": args.warmup, "rounds": args.rounds},
            "commands": {n: " ".join(SERVERS[n]["cmd"](SERVERS[n]["port"])) for n in servers},
            "code": code_desc, "papers_in_db": info.get("papers"),
            "runs": runs,
            "max_other_cpu_pct": args.max_other,
            "medians": [{"endpoint": ep, "server": n, "undisturbed_runs": n_clean[(ep, n)], **m}
                        for (ep, n), m in medians.items()],
        }, indent=2) + "\n")  # fmt: skip
        print(f"# raw results: {args.json_out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
