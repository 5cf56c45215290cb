"""CPU and memory of process trees, read from /proc: what a server, PostgreSQL and the load generator used."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any

import psutil

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def _ticks() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, CPU ticks of the process and of the children it has reaped).

    Summed over a live process tree this counts every process once, including those that ended
    meanwhile (pgbench's backends, reaped by the postmaster).
    """
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    return out


def _tree(ticks: dict[int, tuple[int, int]], root: int | None) -> int:
    """CPU ticks of a process tree."""
    if not root:
        return 0
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in ticks.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in ticks and pid not in seen:
            seen.add(pid)
            total += ticks[pid][1]
            todo.extend(children.get(pid, []))
    return total


def _machine() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values[:8]) - values[3] - values[4], sum(values[:8])


def wait_quiet(limit: float = 5.0, pct: float = 20.0) -> float:
    """Wait, at most `limit` s, until the machine is nearly idle (other jobs may share it); seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        busy0, total0 = _machine()
        time.sleep(0.5)
        busy1, total1 = _machine()
        if 100 * (busy1 - busy0) / max(total1 - total0, 1) * NCPU <= pct:
            break
    return round(time.monotonic() - start, 1)


def measured(run: Callable[[], dict[str, Any]], trees: Mapping[str, int | None]) -> dict[str, Any]:
    """Run one load (which returns a dict with `rps`) and add CPU % of one core per named process tree.

    `client` is what this process's children used (the load generator); `other` is everything else on the
    machine (noise); `<name>_us_per_req` is CPU time per request.
    """
    before, machine0 = _ticks(), _machine()
    children0, wall0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    result = run()
    wall = time.monotonic() - wall0
    after, machine1 = _ticks(), _machine()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for name, pid in trees.items():
        result[f"{name}_cpu_pct"] = round(100 * (_tree(after, pid) - _tree(before, pid)) / CLK_TCK / wall, 1)
    client = children1.ru_utime - children0.ru_utime + children1.ru_stime - children0.ru_stime
    result["client_cpu_pct"] = round(100 * client / wall, 1)
    result["machine_cpu_pct"] = round(100 * (machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1) * NCPU, 1)
    known = sum(result[f"{name}_cpu_pct"] for name in trees) + result["client_cpu_pct"]
    result["other_cpu_pct"] = round(result["machine_cpu_pct"] - known, 1)
    for name in [*trees, "client"]:
        result[f"{name}_us_per_req"] = round(1e4 * result[f"{name}_cpu_pct"] / max(result["rps"], 1e-9), 1)
    return result


def tree_rss(pid: int) -> tuple[int, int]:
    """(sum over the process tree, largest single process) RSS in bytes."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    sizes = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            sizes.append(proc.memory_info().rss)
    return sum(sizes), max(sizes, default=0)


class RssSampler:
    """Samples a process tree's RSS in a thread: the peak (sum and largest process) and every sample."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every = pid, every
        self.peak, self.peak_largest = 0, 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            total, largest = tree_rss(self.pid)
            self.peak, self.peak_largest = max(self.peak, total), max(self.peak_largest, largest)
            self.samples.append((round(time.monotonic() - started, 1), total))
            self._stop.wait(self.every)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @contextlib.contextmanager
    def running(self) -> Iterator[RssSampler]:
        """Sample while the block runs."""
        self.start()
        try:
            yield self
        finally:
            self.stop()


async def measured_async(
    run: Callable[[], Coroutine[Any, Any, dict[str, Any]]], trees: Mapping[str, int | None]
) -> dict[str, Any]:
    """`measured` around a coroutine run on this event loop (the meter waits in a thread meanwhile)."""
    loop = asyncio.get_running_loop()
    return await asyncio.to_thread(measured, lambda: asyncio.run_coroutine_threadsafe(run(), loop).result(), trees)
