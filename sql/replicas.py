"""The databases of a server process: the primary and its read replicas, a pool each, kept under a health check.

A replica is in rotation while its check answers, it is a standby, and its replay is at most `max_lag`
seconds behind the primary. Lag is measured against the primary's own WAL positions, sampled at every
check: a replica that has replayed past the position the primary had at time t is at most `now - t`
behind. An idle primary therefore never makes a replica look late (a replay timestamp would), and a
paused or stuck replay shows as soon as the primary writes past it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import math
import re
import time
from collections.abc import Sequence
from typing import Literal

import asyncpg

from schema.api import DatabaseStatus
from schema.settings import ReplicaSettings
from sql import db

log = logging.getLogger("papers.replicas")

Role = Literal["primary", "replica"]
State = Literal["ok", "lagging", "unreachable", "not_a_standby"]
# A check (or a replica connection attempt) that takes longer than this counts as a failure: a replica
# behind a dead network link must leave rotation within one check, not after TCP gives up.
CHECK_TIMEOUT_S = 2.0
_HEX = re.compile(r"[0-9A-Fa-f]{1,8}")
PRIMARY_POSITION = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
REPLAY_POSITION = "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"
_REPLICA_CHECK = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn,"
    " extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
)


def format_lsn(lsn: int) -> str:
    """An LSN as PostgreSQL prints it (`16/B374D848`)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """An LSN from PostgreSQL's text form; ValueError when it is not one."""
    high, sep, low = text.strip().partition("/")
    if sep and _HEX.fullmatch(high) and _HEX.fullmatch(low):
        return (int(high, 16) << 32) | int(low, 16)
    raise ValueError(f"not a WAL position: {text!r}")


def lag_seconds(
    history: Sequence[tuple[float, int]], now: float, replay: int, primary: int, replay_age: float | None
) -> float:
    """Seconds since the primary was where a replica's replay is now, at the resolution of the sampled history.

    `history` holds (time, primary position) samples, oldest first, the latest being `primary`; `replay_age`
    is how old the replica's last replayed commit is, used only when the replay is behind every sample.
    """
    if replay >= primary:
        return 0.0
    for at, position in reversed(history):
        if position <= replay:
            return now - at
    # Behind every sample (say, just after start): at least that old, or as old as its last replayed commit.
    return max(now - history[0][0], replay_age or 0.0) if history else replay_age or 0.0


class Node:
    """One database: its pool, its last check's verdict and its last known WAL position."""

    def __init__(self, name: str, role: Role, url: str) -> None:
        self.name, self.role, self.url = name, role, url
        self.pool: asyncpg.Pool | None = None
        self.state: State = "ok" if role == "primary" else "unreachable"  # a replica joins after its first check
        self.lag_s: float | None = 0.0 if role == "primary" else None
        self.lag_bytes: int | None = 0 if role == "primary" else None
        self.lsn = 0  # the primary's write position, or a replica's replay position, as last seen
        self.probe: asyncpg.Connection | None = None  # the health check's own connection

    @property
    def healthy(self) -> bool:
        """Answering, and for a replica in rotation."""
        return self.state == "ok"

    def saw(self, lsn: int) -> None:
        """Remember a position this database was seen at (positions only move forward)."""
        self.lsn = max(self.lsn, lsn)

    def status(self) -> DatabaseStatus:
        """The node as /readyz and /v1/stats show it."""
        # Rounded up to the millisecond: a replica taken out at 0.5002 s past a 0.5 s limit never shows 0.5.
        lag = None if self.lag_s is None else math.ceil(round(self.lag_s * 1000, 6)) / 1000
        return DatabaseStatus(self.name, self.role, self.healthy, self.state, lag, self.lag_bytes)


class Databases:
    """The primary and the replicas of one process, with the background check that moves replicas in and out."""

    def __init__(
        self,
        primary_url: str,
        settings: ReplicaSettings,
        *,
        pool_min: int = 1,
        pool_max: int = 10,
        statement_timeout: float = 0,
    ) -> None:
        self.settings = settings
        self.primary = Node("primary", "primary", primary_url)
        self.replicas = [Node(f"replica-{i}", "replica", url) for i, url in enumerate(settings.urls, 1)]
        self._pool_size = (pool_min, pool_max)
        self._statement_timeout = statement_timeout or None
        self._turn = itertools.count()
        # (monotonic time, primary position) at each check: how far back a replica's replay reaches.
        self._history: collections.deque[tuple[float, int]] = collections.deque()
        self._loop: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the pools, check every replica once (healthy ones take reads at once), start the checks."""
        low, high = self._pool_size
        limit = self._statement_timeout
        self.primary.pool = await db.create_pool(self.primary.url, min_size=low, max_size=high, statement_timeout=limit)
        for node in self.replicas:
            # No connection at start: a replica that is down must not stop the service from starting.
            node.pool = await db.create_pool(
                node.url, min_size=0, max_size=high, timeout=CHECK_TIMEOUT_S, statement_timeout=limit
            )
        if self.replicas:
            await self.check()
            self._loop = asyncio.create_task(self._check_forever(), name="replica-checks")

    async def close(self) -> None:
        """Stop the checks, close every pool and check connection."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for node in (self.primary, *self.replicas):
            if node.probe is not None:
                node.probe.terminate()
            if node.pool is not None:
                await node.pool.close()

    def status(self) -> list[DatabaseStatus]:
        """Every database's role, health and lag: the primary first."""
        return [node.status() for node in (self.primary, *self.replicas)]

    def in_rotation(self) -> list[Node]:
        """The replicas that take reads now."""
        return [node for node in self.replicas if node.healthy]

    def next_replica(self) -> Node | None:
        """A replica in rotation (each in turn), or None when none is."""
        healthy = self.in_rotation()
        return healthy[next(self._turn) % len(healthy)] if healthy else None

    async def take_out(self, node: Node, reason: BaseException) -> None:
        """A request found the replica broken: out of rotation now, back when a check finds it well."""
        if node.state != "unreachable":
            log.warning("%s out of rotation: %s", node.name, reason)
        node.state, node.lag_s, node.lag_bytes = "unreachable", None, None
        if node.pool is not None:
            await node.pool.expire_connections()  # its idle connections are dead too; the next use reconnects

    async def check(self) -> None:
        """One round: the primary's position, then every replica's replay position and lag against it."""
        now = time.monotonic()
        primary = await self._check_primary(now)
        await asyncio.gather(*(self._check_replica(node, now, primary) for node in self.replicas))

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_interval)
            try:
                await self.check()
            except Exception:  # a bug in a check must not end the checks: log it and try again next round
                log.exception("replica check failed")

    async def _ask(self, node: Node, sql: str) -> asyncpg.Record | None:
        """One check statement on the node's own connection (opened as needed); None when it fails."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                if node.probe is None or node.probe.is_closed():
                    node.probe = await asyncpg.connect(node.url, timeout=CHECK_TIMEOUT_S)
                return await node.probe.fetchrow(sql)
        except (TimeoutError, *db.CONNECTION_LOST, asyncpg.PostgresError) as exc:
            if node.probe is not None:
                node.probe.terminate()
                node.probe = None
            if node.state != "unreachable":
                log.warning("%s unreachable: %s", node.name, exc or type(exc).__name__)
            return None

    async def _check_primary(self, now: float) -> int | None:
        row = await self._ask(self.primary, PRIMARY_POSITION)
        if row is None:
            self.primary.state = "unreachable"
            return None
        self.primary.state = "ok"
        self.primary.saw(int(row[0]))
        self._history.append((now, self.primary.lsn))
        keep = 2 * self.settings.max_lag + 2 * self.settings.check_interval
        while len(self._history) > 1 and self._history[0][0] < now - keep:
            self._history.popleft()
        return self.primary.lsn

    async def _check_replica(self, node: Node, now: float, primary: int | None) -> None:
        row = await self._ask(node, _REPLICA_CHECK)
        if row is None:
            if node.state != "unreachable":
                await self.take_out(node, ConnectionError("check failed"))
            return
        in_recovery, replay, replay_age = row
        if not in_recovery:
            if node.state != "not_a_standby":
                log.warning("%s is not a standby (promoted, or a primary's URL): out of rotation", node.name)
            node.state, node.lag_s, node.lag_bytes = "not_a_standby", None, None
            return
        node.lsn = int(replay)  # set, not raised: a replica rebuilt from an older backup starts over
        if primary is not None:  # without the primary's position the last lag stands
            age = None if replay_age is None else float(replay_age)
            node.lag_s = lag_seconds(self._history, now, node.lsn, primary, age)
            node.lag_bytes = max(0, primary - node.lsn)
        state: State = "ok" if node.lag_s is not None and node.lag_s <= self.settings.max_lag else "lagging"
        if state != node.state:
            log.warning("%s %s (lag %s s)", node.name, "back in rotation" if state == "ok" else state, node.lag_s)
        node.state = state
