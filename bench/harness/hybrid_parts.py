"""Where a hybrid search's database time goes: PostgreSQL CPU per call of each of its statements, in process.

One connection, the service's own functions and parameters; the backend's CPU (user + system, psutil) over
every call of a part, divided by the calls. Parts:
- `ranks`: the one statement that returns both rankings (keyword top 50 by the postings walk, HNSW top 50);
- `ranks, planned on every call (before)`: the same under `plan_cache_mode = force_custom_plan`, as PostgreSQL ran
  it before the query's text was hidden from the planner (the difference is what planning it on each call costs);
  measured call by call in turns with `ranks`, on a connection of its own;
- `ranks, HNSW at the process's ef_search (before)`: the same with its HNSW half scanning as semantic search does
  (ef_search 100, not `hybrid_ef_search`'s 50), in the same turns;
- `nearest only`: the HNSW half of that statement alone (keys and distances);
- `page`: reading the page shown (20 papers), as the service does;
- `page, ts_headline snippets (before)`: the same with PostgreSQL's `ts_headline` snippets for its keyword hits,
  as the service made them before snippets moved into the API process;
- `snippets in the API process`: the service's snippets for the page's keyword hits (api/services/snippets.py):
  this process's CPU, no statement.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import numpy as np
import psutil

PAGE = 20  # the REST default page size
# The service's snippets before they moved into the API process (any query word marked; $3 the words or-ed).
_HEADLINE = """ts_headline('english', p.abstract, websearch_to_tsquery('english', $3),
    'StartSel=<mark>, StopSel=</mark>, MaxFragments=2, MaxWords=25, MinWords=8')"""
ROUNDS = 2


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def parts(url: str, texts: Sequence[str], vectors: np.ndarray) -> dict[str, dict[str, float]]:
    """Server CPU µs per call and client-side ms per call of each part, over every text with its vector."""
    from api.services.search import HYBRID_KEYWORD_HITS, HYBRID_KEYWORD_WEIGHT, fuse, keyword_query
    from api.services.snippets import Highlighter
    from schema.api import PaperFilter
    from sql import keyword, search
    from sql.db import connection
    from sql.fragments import PAPER_COLUMNS

    flt, bound = PaperFilter(), HYBRID_KEYWORD_HITS
    async with connection(url) as conn:
        await search.configure_session(conn)
        pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
        ranked = [
            await keyword.hybrid_ranks(conn, keyword_query(t), v, flt, limit=bound)
            for t, v in zip(texts, vectors, strict=True)
        ]
        pages = [
            fuse([(r.keyword, HYBRID_KEYWORD_WEIGHT), (r.semantic, 1 - HYBRID_KEYWORD_WEIGHT)])[:PAGE] for r in ranked
        ]

        def ranks_on(c: Any) -> Callable[[int], Awaitable[Any]]:
            async def ranks(i: int) -> Any:
                return await keyword.hybrid_ranks(c, keyword_query(texts[i]), vectors[i], flt, limit=bound)

            return ranks

        async def nearest(i: int) -> Any:
            # The `nn` part of hybrid_ranks' statement on its own, at its ef_search.
            return await conn.fetch(
                f"""SELECT p.paper_key, p.embedding <=> $1 AS distance FROM papers p WHERE p.embedding IS NOT NULL
                    AND {search.ef_search_gate(search.hybrid_ef_search(bound))}
                    ORDER BY p.embedding <=> $1 LIMIT {bound}""",
                vectors[i],
            )

        async def page(i: int) -> Any:
            return await keyword.papers_by_key(conn, [k for k, _ in pages[i]], [s for _, s in pages[i]])

        async def page_headline(i: int) -> Any:
            return await conn.fetch(
                f"""SELECT {PAPER_COLUMNS}, CASE WHEN p.paper_key = ANY($2::bigint[]) THEN {_HEADLINE} END AS snippet
                    FROM unnest($1::bigint[]) WITH ORDINALITY AS u(paper_key, n) JOIN papers p USING (paper_key)
                    ORDER BY u.n""",
                [k for k, _ in pages[i]],
                [k for k, _ in ranked[i][0]],
                " or ".join(keyword_query(texts[i]).text.split()),
            )

        read = [await page(i) for i in range(len(texts))]

        async def snippets(i: int) -> Any:
            matched, marks = {k for k, _ in ranked[i][0]}, Highlighter(keyword_query(texts[i]).text)
            return [marks.snippet(p.abstract) for p, (k, _) in zip(read[i], pages[i], strict=True) if k in matched]

        def at_process_ef(run: Callable[[int], Awaitable[Any]]) -> Callable[[int], Awaitable[Any]]:
            async def ranks(i: int) -> Any:
                with _process_ef_search():
                    return await run(i)

            return ranks

        async with connection(url) as before, connection(url) as deeper:
            for c in (before, deeper):
                await search.configure_session(c)
            await before.execute("SET plan_cache_mode = force_custom_plan")
            out = await _in_turns(
                [
                    ("ranks", conn, ranks_on(conn)),
                    ("ranks, planned on every call (before)", before, ranks_on(before)),
                    ("ranks, HNSW at the process's ef_search (before)", deeper, at_process_ef(ranks_on(deeper))),
                ],
                len(texts),
            )
        for name, run in (
            ("nearest only", nearest),
            ("page", page),
            ("page, ts_headline snippets (before)", page_headline),
            ("snippets in the API process", snippets),
        ):
            out[name] = await _measure(pid, run, len(texts))
    return out


async def _in_turns(
    runs: Sequence[tuple[str, Any, Callable[[int], Awaitable[Any]]]], n: int
) -> dict[str, dict[str, float]]:
    """Variants of `ranks`, call by call in turns, each on its own connection (a noisy machine drifts between parts
    measured one after the other)."""
    pids = [int(await conn.fetchval("SELECT pg_backend_pid()")) for _, conn, _ in runs]
    for _, _, run in runs:
        for i in range(min(n, 10)):
            await run(i)
    cpu0, own, wall = [_cpu_s(pid) for pid in pids], [0.0] * len(runs), [0.0] * len(runs)
    for _ in range(2 * ROUNDS):
        for i in range(n):
            # Each variant goes first as often as the others: the first call of a query finds its pages (HNSW's,
            # the postings') colder in the CPU's caches than the calls after it.
            for j in [(i + k) % len(runs) for k in range(len(runs))]:
                own0, wall0 = time.process_time(), time.perf_counter()
                await runs[j][2](i)
                own[j] += time.process_time() - own0
                wall[j] += time.perf_counter() - wall0
    calls = 2 * ROUNDS * n
    return {
        name: {
            "server_us": round((_cpu_s(pids[j]) - cpu0[j]) / calls * 1e6),
            "client_us": round(own[j] / calls * 1e6),
            "wall_ms": round(wall[j] / calls * 1e3, 2),
        }
        for j, (name, _, _) in enumerate(runs)
    }


@contextlib.contextmanager
def _process_ef_search() -> Iterator[None]:
    """Hybrid's HNSW half at the process's ef_search, as before `hybrid_ef_search` (calls run one at a time)."""
    from sql import search

    shipped = search.hybrid_ef_search

    def before(rows: int, *, iterative: bool = True) -> int:
        return min(max(int(rows), search.EF_SEARCH), search.MAX_EF_SEARCH)

    search.hybrid_ef_search = before
    try:
        yield
    finally:
        search.hybrid_ef_search = shipped


async def exact_overlap(url: str, texts: Sequence[str], vectors: np.ndarray) -> dict[str, float]:
    """How much of hybrid's first page (top PAGE fused) it shares with the page fused from the exact 50 nearest
    (numpy over every stored vector), mean over the queries: as shipped and at the process's ef_search."""
    from api.services.search import HYBRID_KEYWORD_HITS, HYBRID_KEYWORD_WEIGHT, fuse, keyword_query
    from schema.api import PaperFilter
    from sql import keyword, search
    from sql.db import connection

    bound = HYBRID_KEYWORD_HITS

    def page(ranks: Any, semantic: Any = None) -> set[int]:
        fused = fuse([(ranks.keyword, HYBRID_KEYWORD_WEIGHT), (semantic or ranks.semantic, 1 - HYBRID_KEYWORD_WEIGHT)])
        return {key for key, _ in fused[:PAGE]}

    async with connection(url) as conn:
        await search.configure_session(conn)
        rows = await conn.fetch("SELECT paper_key, embedding FROM papers WHERE embedding IS NOT NULL")
        keys = np.array([r["paper_key"] for r in rows])
        matrix = np.stack([np.asarray(r["embedding"].to_numpy(), dtype=np.float32) for r in rows])
        del rows
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        shares: dict[str, list[float]] = {"shipped": [], "process": []}
        for text, vector in zip(texts, vectors, strict=True):
            query = keyword_query(text)
            shipped = await keyword.hybrid_ranks(conn, query, vector, PaperFilter(), limit=bound)
            with _process_ef_search():
                process = await keyword.hybrid_ranks(conn, query, vector, PaperFilter(), limit=bound)
            cosines = matrix @ (vector / np.linalg.norm(vector))
            nearest = np.argsort(-cosines)[:bound]
            exact = page(shipped, [(int(keys[j]), float(cosines[j])) for j in nearest])
            for name, ranks in (("shipped", shipped), ("process", process)):
                shares[name].append(len(page(ranks) & exact) / max(len(exact), 1))
    return {name: round(float(np.mean(v)), 4) for name, v in shares.items()}


async def _measure(pid: int, run: Callable[[int], Awaitable[Any]], n: int) -> dict[str, float]:
    for i in range(min(n, 10)):  # warm: the statement prepared, its pages in the buffer cache
        await run(i)
    cpu0, own0, wall0 = _cpu_s(pid), time.process_time(), time.perf_counter()
    for _ in range(ROUNDS):
        for i in range(n):
            await run(i)
    calls = ROUNDS * n
    return {
        "server_us": round((_cpu_s(pid) - cpu0) / calls * 1e6),
        "client_us": round((time.process_time() - own0) / calls * 1e6),
        "wall_ms": round((time.perf_counter() - wall0) / calls * 1e3, 2),
    }
