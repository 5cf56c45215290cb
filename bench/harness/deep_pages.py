"""Deep pages of a search: does a deeper page extend the ranking an earlier page was cut from, and what does it cost.

In process, one connection, the service's functions. For each query and each page end (the rows a page needs: 21,
201 and 1,001, a page of 20 at the first, tenth and fiftieth page), the keyword ranking as shipped (a ladder of walk
depths ranked in tiers, `sql.keyword._tiers`) and as it was before (one walk of `max(200, 2 x rows)` postings
per stem, ranked again for every page), round robin, and hybrid's fused ranking as shipped. A ranking is
consistent when the one made for a deeper page begins with the one made for the shallower page.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

ENDS = (21, 201, 1001)


def _prefix(shorter: Sequence[object], longer: Sequence[object]) -> bool:
    """Whether `longer` begins with `shorter` (a ranking made for a deeper page, and one for a shallower page)."""
    return list(longer[: len(shorter)]) == list(shorter)


async def deep_pages(url: str, texts: Sequence[str], vectors: np.ndarray) -> dict[str, Any]:
    """Per way of ranking: median ms per page end, and the share of queries whose rankings are consistent."""
    from api.services.search import HYBRID_KEYWORD_HITS, HYBRID_KEYWORD_WEIGHT, fuse, keyword_query
    from schema.api import PaperFilter
    from sql import keyword, search
    from sql.db import connection

    flt = PaperFilter()

    async def shipped(conn: Any, text: str, _: np.ndarray, rows: int) -> list[str]:
        found = await keyword.keyword(conn, keyword_query(text), flt, limit=rows)
        return [h.id for h in found]

    async def before(conn: Any, text: str, _: np.ndarray, rows: int) -> list[str]:
        found = await keyword.keyword(conn, keyword_query(text), flt, limit=rows, depth=max(200, 2 * rows))
        return [h.id for h in found]

    async def hybrid(conn: Any, text: str, vector: np.ndarray, rows: int) -> list[int]:
        bound = max(rows, HYBRID_KEYWORD_HITS)
        ranks = await keyword.hybrid_ranks(conn, keyword_query(text), vector, flt, limit=bound)
        fused = fuse([(ranks.keyword, HYBRID_KEYWORD_WEIGHT), (ranks.semantic, 1 - HYBRID_KEYWORD_WEIGHT)])
        return [key for key, _ in fused[:rows]]

    ways: dict[str, Callable[[Any, str, np.ndarray, int], Awaitable[Sequence[object]]]] = {
        "keyword, shipped (tiers)": shipped,
        "keyword, before (one walk per page)": before,
        "hybrid, shipped": hybrid,
    }
    ms: dict[str, dict[int, list[float]]] = {name: {end: [] for end in ENDS} for name in ways}
    consistent = dict.fromkeys(ways, 0)
    async with connection(url) as conn:
        await search.configure_session(conn)
        for text, vector in zip(texts, vectors, strict=True):
            for name, rank in ways.items():
                pages: list[Sequence[object]] = []
                for end in ENDS:
                    started = time.perf_counter()
                    pages.append(await rank(conn, text, vector, end))
                    ms[name][end].append((time.perf_counter() - started) * 1000)
                consistent[name] += all(_prefix(a, b) for a, b in itertools.pairwise(pages))
    return {
        "queries": len(texts),
        "ms": {
            name: {str(end): round(statistics.median(v), 1) for end, v in by_end.items()} for name, by_end in ms.items()
        },
        "consistent": consistent,
    }
