"""Section 4 (measurement): HNSW recall@10 against exact search for m x ef_construction x ef_search.

On the seeds the index is the one the migrations create; synthetic sets live in a table of their own in a
fresh database of the same server, rebuilt for each m x ef_construction.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg
import numpy as np

import sql
from bench.harness.postgres import TempPostgres
from bench.harness.report import Target, fmt
from bench.harness.tools import log
from bench.quality import knn, synthetic
from bench.quality.metrics import K, ms
from sql.db import connection

EF_SEARCHES = (40, 100, 200)
BUILDS = ((16, 64), (16, 128), (32, 64), (32, 128))
RECALL = Target(at_least=0.99)  # mean recall@10 a setting must reach on every interpolated set
WORST = Target(at_least=0.5)  # ... with no single query losing more than half of its true top 10
INDEX = "papers_embedding_hnsw_idx"
SEEDS_SQL = knn.nearest_sql(limit=K)
TABLE = "bench_vectors"
SYNTHETIC_SQL = knn.nearest_sql(TABLE, key="id", limit=K)


@dataclasses.dataclass(frozen=True)
class Row:
    """Recall and latency of one set, build and ef_search."""

    family: str  # seeds, interpolated, gaussian, clustered
    size: int
    m: int
    ef_construction: int
    ef_search: int
    recall: float
    worst: float
    p50_ms: float
    exact_p50_ms: float
    build_s: float | None = None
    mib: float | None = None

    @property
    def label(self) -> str:
        """The set as the report names it."""
        return f"seeds ({self.size})" if self.family == "seeds" else f"{self.family} {fmt(self.size)}"

    def key(self) -> tuple[int, int, int]:
        """m, ef_construction, ef_search."""
        return self.m, self.ef_construction, self.ef_search

    def meets(self) -> bool:
        """Whether this row reaches the recall target and the worst-query floor."""
        return RECALL.verdict(self.recall) == "met" and WORST.verdict(self.worst) == "met"


@dataclasses.dataclass(frozen=True)
class SetNote:
    """How near a set's queries are to its vectors, and whether the sequential scan agrees with numpy."""

    label: str
    nearest: float
    tenth: float
    agreement: float
    plan: str  # the scan the query plans as, with the index built


@dataclasses.dataclass
class IndexResult:
    """Every row, with what the rows were measured on."""

    rows: list[Row]
    notes: list[SetNote]
    code: tuple[int, int]  # m, ef_construction of the migrations' index
    migration: str
    plans: dict[str, str]
    calibration: synthetic.Calibration
    seed_queries: int
    synthetic: int
    large: int
    probes: int
    work_mem: str
    workers: str

    def row(self, family: str, size: int, m: int, efc: int, ef: int) -> Row | None:
        """One measured row, if any."""
        return next(
            (
                r
                for r in self.rows
                if (r.family, r.size, r.m, r.ef_construction, r.ef_search) == (family, size, m, efc, ef)
            ),
            None,
        )

    def choose(self) -> tuple[int, int, int] | None:
        """The cheapest build, then its smallest ef_search, meeting both targets on every interpolated set."""
        for m, efc in sorted(BUILDS, key=build_cost):
            for ef in EF_SEARCHES:
                rows = [r for r in self.rows if r.family == "interpolated" and r.key() == (m, efc, ef)]
                if rows and all(r.meets() for r in rows):
                    return m, efc, ef
        return None


def build_cost(build: tuple[int, int]) -> tuple[int, int]:
    """Order builds cheapest first: build work grows with m x ef_construction; on a tie the smaller m is cheaper
    (a smaller graph to store and to walk per query). Measured build times are too noisy on a shared machine."""
    m, efc = build
    return m * efc, m


async def code_build(conn: asyncpg.Connection) -> tuple[tuple[int, int], str]:
    """m and ef_construction of the papers index as migrated, and the migration that creates it."""
    options = dict(
        o.split("=", 1) for o in await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = $1", INDEX)
    )
    migrations = Path(sql.__file__).parent / "migrations"
    path = next((p for p in sorted(migrations.glob("*.sql")) if f"INDEX {INDEX}" in p.read_text()), None)
    where = f"sql/migrations/{path.name}" if path else "the migrations"
    return (int(options["m"]), int(options["ef_construction"])), where


async def _probe(
    conn: asyncpg.Connection,
    query: str,
    probes: Sequence[np.ndarray] | np.ndarray,
    truth: Sequence[Sequence[object]],
    extra: Sequence[str] = (),
) -> dict[int, tuple[list[float], list[float]]]:
    """Recall and seconds per ef_search; every ef_search runs per query, so load drift hits all alike."""
    out: dict[int, tuple[list[float], list[float]]] = {ef: ([], []) for ef in EF_SEARCHES}
    for vector, true in zip(probes, truth, strict=True):
        for ef in EF_SEARCHES:
            ids, seconds = await knn.nearest(conn, query, vector, (f"hnsw.ef_search = {ef}", *extra))
            out[ef][0].append(knn.recall(ids, true))
            out[ef][1].append(seconds)
    return out


def _rows(
    family: str,
    size: int,
    build: tuple[int, int],
    probed: dict[int, tuple[list[float], list[float]]],
    exact: Sequence[float],
    build_s: float | None = None,
    mib: float | None = None,
) -> list[Row]:
    return [
        Row(
            family, size, *build, ef, statistics.mean(recalls), min(recalls), ms(times, 50), ms(exact, 50), build_s, mib
        )
        for ef, (recalls, times) in probed.items()
    ]


async def seed_rows(
    conn: asyncpg.Connection,
    vectors: Sequence[np.ndarray],
    papers: int,
    build: tuple[int, int],
) -> tuple[list[Row], dict[str, str]]:
    """The seed queries against the migrated index (forced: at this size the planner prefers a scan)."""
    plans = {
        "default": await knn.plan(conn, SEEDS_SQL, vectors[0]),
        "forced": await knn.plan(conn, SEEDS_SQL, vectors[0], ("hnsw.ef_search = 40", "enable_seqscan = off")),
    }
    exact = [await knn.nearest(conn, SEEDS_SQL, v) for v in vectors]
    probed = await _probe(conn, SEEDS_SQL, vectors, [ids for ids, _ in exact], ("enable_seqscan = off",))
    return _rows("seeds", papers, build, probed, [seconds for _, seconds in exact]), plans


async def _load(conn: asyncpg.Connection, base: np.ndarray) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, embedding vector({base.shape[1]}) NOT NULL)")
    await conn.copy_records_to_table(TABLE, records=list(enumerate(base)), columns=["id", "embedding"])
    await conn.execute(f"ANALYZE {TABLE}")


async def _build(conn: asyncpg.Connection, m: int, efc: int) -> tuple[float, float]:
    """Rebuild the index; its build seconds and size in MiB."""
    await conn.execute(f"DROP INDEX IF EXISTS {TABLE}_hnsw")
    started = time.perf_counter()
    await conn.execute(
        f"CREATE INDEX {TABLE}_hnsw ON {TABLE} USING hnsw (embedding vector_cosine_ops)"
        f" WITH (m = {m}, ef_construction = {efc})"
    )
    seconds = time.perf_counter() - started
    return seconds, await conn.fetchval(f"SELECT pg_relation_size('{TABLE}_hnsw')") / 2**20


async def grid(
    conn: asyncpg.Connection, family: str, base: np.ndarray, probes: np.ndarray, builds: Sequence[tuple[int, int]]
) -> tuple[list[Row], SetNote]:
    """One synthetic set: exact truth in numpy, the sequential scan checked against it, then each build probed."""
    await _load(conn, base)
    sims = probes @ base.T
    truth = [np.argsort(-s, kind="stable")[:K].tolist() for s in sims]
    exact = [await knn.nearest(conn, SYNTHETIC_SQL, q) for q in probes]
    agreement = statistics.mean(knn.recall(ids, t) for (ids, _), t in zip(exact, truth, strict=True))
    sims.sort(axis=1)
    label, plan = f"{family} {fmt(len(base))}", ""
    rows = []
    for m, efc in builds:
        build_s, mib = await _build(conn, m, efc)
        plan = plan or await knn.plan(conn, SYNTHETIC_SQL, probes[0], (f"hnsw.ef_search = {EF_SEARCHES[0]}",))
        log("quality", f"{label}: built m={m} ef_construction={efc} in {build_s:.1f} s")
        probed = await _probe(conn, SYNTHETIC_SQL, probes, truth)
        rows += _rows(family, len(base), (m, efc), probed, [s for _, s in exact], build_s, mib)
    await conn.execute(f"DROP TABLE {TABLE}")
    return rows, SetNote(label, float(np.median(sims[:, -1])), float(np.median(sims[:, -K])), agreement, plan)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How large the synthetic sets are and what to measure."""

    synthetic: int
    large: int  # 0: no large set
    probes: int
    clustered: bool
    work_mem: str
    seed: int


Draw = Callable[[], tuple[np.ndarray, np.ndarray]]  # a set's vectors and its held-out queries
SetSpec = tuple[str, int, Sequence[tuple[int, int]], Draw]  # family, size, builds, draw


def synthetic_sets(
    shape: synthetic.Shape,
    noise: float,
    code: tuple[int, int],
    sizes: Sizes,
) -> list[SetSpec]:
    """The synthetic sets to measure, with the builds each gets; drawn lazily, in this order, from one rng."""
    rng = np.random.default_rng(sizes.seed + 2)
    n, q = sizes.synthetic, sizes.probes

    def interpolated(count: int) -> Draw:
        return lambda: (synthetic.interpolated(shape, count, noise, rng), synthetic.interpolated(shape, q, noise, rng))

    def gaussian() -> tuple[np.ndarray, np.ndarray]:
        return synthetic.gaussian(shape, n, rng), synthetic.gaussian(shape, q, rng)

    bounds = (code, max(BUILDS))  # the code's build and the largest one: enough to bound a harder set
    sets: list[SetSpec] = [("interpolated", n, BUILDS, interpolated(n)), ("gaussian", n, bounds, gaussian)]
    if sizes.clustered:
        sets.append(("clustered", n, bounds, lambda: synthetic.clustered(n, q, sizes.seed)))
    if sizes.large:
        sets.append(("interpolated", sizes.large, (code,), interpolated(sizes.large)))
    return sets


async def measure(
    conn: asyncpg.Connection,
    pg: TempPostgres,
    seed_vectors: np.ndarray,
    query_vectors: Sequence[np.ndarray],
    sizes: Sizes,
) -> IndexResult:
    """The seed rows on the product database, then the synthetic sets in a fresh database of the same server."""
    build, migration = await code_build(conn)
    rows, plans = await seed_rows(conn, query_vectors, len(seed_vectors), build)
    shape = synthetic.shape_of(seed_vectors)
    calibration = synthetic.calibrate(shape, sizes.seed)
    notes = []
    async with connection(await pg.fresh_database()) as sconn:
        await sconn.execute(f"SET maintenance_work_mem = '{sizes.work_mem}'")
        workers = await sconn.fetchval("SHOW max_parallel_maintenance_workers")
        for family, _, builds, draw in synthetic_sets(shape, calibration.noise, build, sizes):
            base, probes = draw()
            set_rows, note = await grid(sconn, family, base, probes, builds)
            rows += set_rows
            notes.append(note)
    plans["synthetic"] = notes[0].plan
    return IndexResult(
        rows,
        notes,
        build,
        migration,
        plans,
        calibration,
        len(query_vectors),
        sizes.synthetic,
        sizes.large,
        sizes.probes,
        sizes.work_mem,
        workers,
    )
