"""A replica killed (`pg_ctl stop -m immediate`) and restarted under load: `papers serve` with a real hot
standby as its replica answers every request throughout, and puts the standby back in rotation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import ReplicaDatabase
from tests.integration.test_rest import CORPUS, load
from tests.servers import serving

CLIENTS = 4
GRAPHQL = {"query": "{ papers(first: 5) { edges { node { id title } } } stats { papers } }"}


class Load:
    """Clients reading REST and GraphQL in a loop until stopped; every answer's status (or error) is kept."""

    def __init__(self, base: str) -> None:
        self.base, self.stop = base, threading.Event()
        self.outcomes: list[str] = []
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def _client(self, i: int) -> None:
        with httpx.Client(base_url=self.base, timeout=10, trust_env=False) as client:
            while not self.stop.is_set():
                try:
                    if i % 2:
                        response = client.post("/graphql", json=GRAPHQL)
                        ok = response.status_code == 200 and "errors" not in response.json()
                    else:
                        response = client.get("/v1/papers", params={"limit": 5, "q": "study"})
                        ok = response.status_code == 200 and len(response.json()["items"]) > 0
                    self.outcomes.append("ok" if ok else f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    self.outcomes.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def until(read: Callable[[], Any], holds: Callable[[Any], bool], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if holds(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r} after {timeout} s"
        time.sleep(0.05)


def test_a_replica_killed_and_restarted_under_load_fails_no_request(replica_db: ReplicaDatabase):
    asyncio.run(load(replica_db.primary, CORPUS))
    env = {
        "DATABASE_REPLICA_URLS": replica_db.standby,
        "PAPERS_REPLICA_CHECK_INTERVAL": "0.2",
        "PAPERS_REPLICA_MAX_LAG": "5",
        "PAPERS_RATE_LIMIT": "none",
    }
    standby = replica_db.cluster.standby
    with serving(replica_db.primary, **env) as (base, _, log):

        def replica() -> dict[str, Any]:
            return dict(httpx.get(f"{base}/readyz", timeout=5, trust_env=False).json()["databases"][1])

        until(replica, lambda r: r["healthy"])
        with Load(base) as running:
            until(lambda: len(running.outcomes), lambda n: n >= 50)
            standby.stop("immediate")
            until(replica, lambda r: r["state"] == "unreachable")
            during = len(running.outcomes)
            until(lambda: len(running.outcomes), lambda n: n >= during + 50)  # served while it is down
            standby.start()
            until(replica, lambda r: r["healthy"])
            after = len(running.outcomes)
            until(lambda: len(running.outcomes), lambda n: n >= after + 50)  # served once it is back
        failed = [outcome for outcome in running.outcomes if outcome != "ok"]
        assert not failed, f"{len(failed)} of {len(running.outcomes)} failed: {failed[:5]}\n{log.read_text()[-3000:]}"
        assert "replica-1 out of rotation" in log.read_text() or "replica-1 unreachable" in log.read_text()
        assert "replica-1 back in rotation" in log.read_text()
