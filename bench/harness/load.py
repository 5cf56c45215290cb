"""Load generators: wrk over HTTP (requests drawn from a file) and pgbench for the database floor."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness.postgres import TempPostgres
from bench.harness.tools import ASSETS, ensure_debian, pgbench_bin

LUA = ASSETS / "requests.lua"
TIMEOUT_S = 10  # wrk's default (2 s) would count slow answers as socket errors and drop them from p99
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class Load:
    """How hard to push: threads, connections, seconds per run."""

    def __init__(self, threads: int = 2, connections: int = 32, seconds: int = 15) -> None:
        self.threads, self.connections, self.seconds = threads, connections, seconds

    def describe(self) -> str:
        """The wrk flags."""
        return f"-t{self.threads} -c{self.connections} -d{self.seconds}s --latency"


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """req/s, requests, latency percentiles and errors from wrk's --latency output."""
    rps, count = re.search(r"Requests/sec:\s+([\d.]+)", out), re.search(r"(\d+) requests in", out)
    if rps is None or count is None:
        raise SystemExit(f"unparsable wrk output:\n{out[-2000:]}")
    result: dict[str, Any] = {"rps": float(rps.group(1)), "requests": int(count.group(1)), "errors": 0}
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", out, re.M)
        result[f"p{pct}_ms"] = round(_ms(found.group(1)), 3) if found else None
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["errors"] += int(found.group(1))
    if found := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["errors"] += sum(int(g) for g in found.groups())
    return result


def write_requests(path: Path, lines: Sequence[str]) -> Path:
    """A request file for requests.lua: one path (GET) or JSON body (POST) per line."""
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(
    url: str,
    requests: Path,
    method: str,
    load: Load,
    seconds: int | None = None,
    headers: Sequence[str] = (),
    script: Path = LUA,
) -> dict[str, Any]:
    """One wrk run against url, each request a random line of the requests file (with extra `Name: value`s);
    `script` reads the file (requests.lua: one method; mixed.lua: `METHOD PATH [BODY]` lines)."""
    binary = ensure_debian("wrk", "wrk")
    seconds = seconds or load.seconds
    cmd = [
        binary,
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        f"--timeout={TIMEOUT_S}s",
        "--latency",
        *(flag for header in headers for flag in ("-H", header)),
        "-s",
        str(script),
        url,
        "--",
        str(requests),
        method,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode:
        raise SystemExit(f"wrk failed ({out.returncode}): {out.stderr[-2000:]}")
    return parse_wrk(out.stdout)


def pgbench(pg: TempPostgres, database: str, script: Path, load: Load, *, latencies: bool = True) -> dict[str, Any]:
    """One pgbench run of a script (`-M prepared`); p50/p99 from its per-transaction log."""
    logdir = pg.workdir / "pgbench-log"
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir()
    cmd = [
        str(pgbench_bin()),
        "-n",
        "-M",
        "prepared",
        "-c",
        str(load.connections),
        "-j",
        str(load.threads),
        "-T",
        str(load.seconds),
        "-f",
        str(script),
        "-h",
        pg.socket_dir,
        "-U",
        "postgres",
    ]
    if latencies:
        cmd += ["-l", f"--log-prefix={logdir}/tx"]
    out = subprocess.run([*cmd, database], capture_output=True, text=True, timeout=load.seconds + 60, cwd=logdir)
    if out.returncode:
        raise SystemExit(f"pgbench failed ({out.returncode}): {out.stderr[-2000:]}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    assert tps is not None, out.stdout
    result: dict[str, Any] = {"rps": float(tps.group(1)), "errors": int(failed.group(1)) if failed else 0}
    micros = sorted(int(line.split()[2]) for f in logdir.iterdir() for line in f.open() if len(line.split()) >= 6)
    for pct in (50, 90, 99):
        result[f"p{pct}_ms"] = (
            round(micros[min(len(micros) - 1, len(micros) * pct // 100)] / 1000, 3) if micros else None
        )
    shutil.rmtree(logdir, ignore_errors=True)
    return result


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median of every numeric figure over repeated runs; errors summed."""
    keys = {k for run in runs for k, v in run.items() if isinstance(v, int | float) and k != "errors"}
    out: dict[str, Any] = {}
    for key in sorted(keys):
        values = [run[key] for run in runs if run.get(key) is not None]
        out[key] = round(statistics.median(values), 3) if values else None
    out["errors"] = sum(run.get("errors", 0) for run in runs)
    out["runs"] = len(runs)
    return out
