"""API throughput and latency with wrk, GraphQL side by side with PostGraphile, REST against the pgbench floor.

    .venv/bin/python -m bench.run --only api            # 50k synthetic papers
    .venv/bin/python -m bench.run --only api --full     # 100k

A temporary embedded PostgreSQL gets the seeded synthetic corpus (bench/harness/corpus.py) through the
ingest pipeline, with its clustered vectors stored as the local model's (throughput, not quality).
`papers serve --workers 1` (granian, the local model loaded for similar and search) and PostGraphile 4
(one node process, npm-installed outside the repository) serve the same database. The comparison
group is measured round robin, so the machine's drift is shared by both sides of each ratio: for
each of three GraphQL shapes ours and PostGraphile's equivalent query (checked to return the same
data first), REST paper-by-id, and pgbench running the statement that endpoint sends (captured from
the query layer, not copied). The other endpoints follow one after another. Every run is
`wrk -t2 -c32 -d15s` after a warm-up, repeated, medians reported, with the CPU each process tree used.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.harness import corpus, report
from bench.harness.load import Load, medians, pgbench, write_requests, wrk
from bench.harness.meter import measured, wait_quiet
from bench.harness.postgres import TempPostgres, temp_postgres
from bench.harness.service import Service, http, papers_server, postgraphile
from bench.harness.tools import log, postgraphile_version

TITLE = "API"
REPEATS, WARMUP_S = 3, 3
SHAPES = ("paper", "papers", "listing")
TARGETS = {"graphql_vs_postgraphile": report.Target(at_least=1.0), "rest_vs_floor": report.Target(at_least=0.15)}
F = "id title abstract arxivId firstSeen lastSeen firstListed lastListed"
PF = "publicId title abstract arxivId firstSeen lastSeen firstListed lastListed"
OURS = {
    "paper": "query($id: String!) { paper(id: $id) { title listings { id dateLabel date rank } } }",
    "papers": "{ papers(first: 20) { edges { node { %s } } pageInfo { hasNextPage endCursor } } }" % F,
    "listing": "query($id: String!) { listing(id: $id) { id source kind dateLabel date heading entryCount rejectCount"
    " ingestedAt entries(first: 50) { edges { node { rank titleAsPrinted abstractAsPrinted paper { %s } } }"
    " pageInfo { hasNextPage endCursor } } } }" % F,
    "similar": "query($id: String!) { paper(id: $id) { similar(first: 10) { %s score } } }" % F,
    "search": "query($q: String!) { search(q: $q) { edges { node { %s score snippet } } } }" % F,
}
# PostGraphile's schema is generated from the tables: the same data under its names, each page in an indexed order.
THEIRS = {
    "paper": "query($id: String!) { paperByPublicId(publicId: $id) { title listingEntriesByPaperKey { nodes { rank"
    " listingByListingKey { publicId dateLabel listedOn } } } } }",
    "papers": "{ allPapers(first: 20, orderBy: PRIMARY_KEY_DESC) { edges { node { %s } } pageInfo { hasNextPage"
    " endCursor } } }" % PF,
    "listing": "query($id: String!) { listingByPublicId(publicId: $id) { publicId source kind dateLabel listedOn"
    " heading entryCount rejectCount ingestedAt listingEntriesByListingKey(first: 50, orderBy: PRIMARY_KEY_ASC)"
    " { edges { node { rank titleVariant abstractVariant paperByPaperKey { %s } } }"
    " pageInfo { hasNextPage endCursor } } } }" % PF,
}
REST = {
    "healthz": "/healthz",
    "paper": "/v1/papers/{id}",
    "papers": "/v1/papers?limit=20",
    "listing": "/v1/listings/{listing}?limit=50",
    "similar": "/v1/papers/{id}/similar?limit=10",
    "search": "/v1/search?q={q}",
}


def _body(query: str, **variables: Any) -> str:
    return json.dumps(
        {"query": query, "variables": variables} if variables else {"query": query}, separators=(",", ":")
    )


class Target:
    """One thing to load: a server, a method and the request file it draws from."""

    def __init__(self, key: str, service: Service | None, method: str, path: str, lines: list[str]) -> None:
        self.key, self.service, self.method, self.path, self.lines = key, service, method, path, lines
        self.file: Path | None = None

    def run(self, load: Load, seconds: int | None = None) -> dict[str, Any]:
        """One wrk run of this target."""
        assert self.file is not None
        assert self.service is not None
        return wrk(self.service.base + self.path, self.file, self.method, load, seconds)


def _targets(ours: Service, theirs: Service, ids: list[str], listings: list[str], texts: list[str]) -> list[Target]:
    per = {"paper": ids, "listing": listings, "similar": ids}
    targets = []
    for shape, query in OURS.items():
        values = per.get(shape)
        lines = (
            [_body(query, id=v) for v in values]
            if values
            else [_body(query, q=t) for t in texts]
            if shape == "search"
            else [_body(query)]
        )
        targets.append(Target(f"graphql {shape}", ours, "POST", "/graphql", lines))
    for shape, query in THEIRS.items():
        values = per.get(shape)
        lines = [_body(query, id=v) for v in values] if values else [_body(query)]
        targets.append(Target(f"postgraphile {shape}", theirs, "POST", "/graphql", lines))
    # Each server's floor: an answer that needs no database.
    targets.append(Target("postgraphile __typename", theirs, "POST", "/graphql", [_body("{ __typename }")]))
    for shape, path in REST.items():
        lines = [
            path.format(id=i, listing=listings[n % len(listings)], q=texts[n % len(texts)].replace(" ", "+"))
            for n, i in enumerate(ids)
        ]
        targets.append(Target(f"rest {shape}", ours, "GET", "", list(dict.fromkeys(lines))))
    return targets


def _same_data(ours: Service, theirs: Service, ids: list[str], listings: list[str]) -> bool:
    """Ours and PostGraphile's paper and listing queries return the same titles, listings, ranks and entries."""
    for paper_id, listing_id in zip(ids[:5], listings[:5], strict=False):
        a = http(ours.base + "/graphql", {"query": OURS["paper"], "variables": {"id": paper_id}})[1]["data"]["paper"]
        b = http(theirs.base + "/graphql", {"query": THEIRS["paper"], "variables": {"id": paper_id}})[1]["data"]
        refs = sorted(
            (n["listingByListingKey"]["publicId"], n["rank"])
            for n in b["paperByPublicId"]["listingEntriesByPaperKey"]["nodes"]
        )
        if a["title"] != b["paperByPublicId"]["title"] or sorted((r["id"], r["rank"]) for r in a["listings"]) != refs:
            return False
        a = http(ours.base + "/graphql", {"query": OURS["listing"], "variables": {"id": listing_id}})[1]["data"]
        b = http(theirs.base + "/graphql", {"query": THEIRS["listing"], "variables": {"id": listing_id}})[1]["data"]
        mine = [(e["node"]["rank"], e["node"]["paper"]["id"]) for e in a["listing"]["entries"]["edges"]]
        edges = b["listingByPublicId"]["listingEntriesByListingKey"]["edges"]
        if mine != [(e["node"]["rank"], e["node"]["paperByPaperKey"]["publicId"]) for e in edges]:
            return False
    return True


async def _floor_script(url: str, ids: list[str]) -> str:
    """pgbench's script: the statement REST paper-by-id sends, captured from the query layer, with a random id."""
    from sql import db, queries

    sent: list[str] = []
    async with db.connection(url) as conn:
        await queries.paper_detail(conn, ids[0])  # asyncpg introspects the row type on first use: not the statement
        conn.add_query_logger(lambda record: sent.append(record.query))
        await queries.paper_detail(conn, ids[0])
    [statement] = sent
    array = "'{" + ",".join(ids) + "}'::text[]"
    # pgbench variables are numbers: the id comes from a constant array, bound as a parameter by -M prepared.
    return f"\\set i random(1, {len(ids)})\n{' '.join(statement.replace('$1', f'({array})[:i]').split())};\n"


def _measure(run: Callable[[], dict[str, Any]], service: Service | None, pg: TempPostgres) -> dict[str, Any]:
    wait_quiet()
    trees = {"server": service.pid if service else None, "postgres": pg.pid}
    return measured(run, trees)


def _round_robin(
    targets: dict[str, Target], floor: Callable[[], dict[str, Any]], pg: TempPostgres, load: Load
) -> dict[str, list[dict[str, Any]]]:
    """The comparison group, the order reversed every other round; each run a measured wrk (or pgbench) run."""
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in [*targets, "pgbench floor"]}
    for target in targets.values():
        target.run(load, WARMUP_S)
    order = list(runs)
    for rnd in range(REPEATS):
        for key in order if rnd % 2 == 0 else order[::-1]:
            if key == "pgbench floor":
                runs[key].append(_measure(floor, None, pg))
            else:
                target = targets[key]
                runs[key].append(_measure(functools.partial(target.run, load), target.service, pg))
            log("api", f"{key:22} round {rnd + 1}: {runs[key][-1]['rps']:8.0f} req/s p99 {runs[key][-1]['p99_ms']} ms")
    return runs


@contextlib.contextmanager
def _servers(pg: TempPostgres, url: str) -> Iterator[tuple[Service, Service]]:
    with papers_server(pg, url, PAPERS_EMBEDDER="local") as ours, postgraphile(pg, url) as theirs:
        probe = ours.base + "/v1/search?q=reward&mode=semantic"
        while http(probe, timeout=30)[0] != 200:  # the model loads in the background
            assert ours.proc is not None
            assert ours.proc.poll() is None, ours.tail()
            time.sleep(0.5)
        yield ours, theirs


def run(full: bool, papers: int | None = None) -> dict[str, Any]:
    """Load the corpus, start both servers, measure; see the module docstring."""
    papers = papers or (100_000 if full else 50_000)
    load = Load()
    with temp_postgres("papers-bench-api-") as pg:
        url = asyncio.run(pg.fresh_database())
        generated = corpus.generate(papers)
        loaded = asyncio.run(corpus.load(url, generated))
        texts = [" ".join(re.findall(r"[a-z]{4,}", p.title.lower())[:2]) for p in generated.papers[:20]]
        floor_file = pg.workdir / "floor.sql"
        floor_file.write_text(asyncio.run(_floor_script(url, loaded.paper_ids)))
        database = urllib.parse.urlsplit(url).path.lstrip("/")
        with _servers(pg, url) as (ours, theirs):
            if not _same_data(ours, theirs, loaded.paper_ids, loaded.listing_ids):
                raise SystemExit("ours and PostGraphile answer differently")
            targets = {t.key: t for t in _targets(ours, theirs, loaded.paper_ids, loaded.listing_ids, texts)}
            for target in targets.values():
                target.file = write_requests(pg.workdir / f"{target.key.replace(' ', '_')}.txt", target.lines)
            compared = [f"{side} {shape}" for shape in SHAPES for side in ("graphql", "postgraphile")]
            group = {k: targets[k] for k in [*compared, "rest paper", "rest healthz", "postgraphile __typename"]}
            runs = _round_robin(group, lambda: pgbench(pg, database, floor_file, load), pg, load)
            for key, target in targets.items():
                if key not in group:
                    target.run(load, WARMUP_S)
                    run = functools.partial(target.run, load)
                    runs[key] = [_measure(run, target.service, pg) for _ in range(REPEATS)]
            memory = {
                name: round(s.memory.peak / 2**20) for name, s in (("ours", ours), ("postgraphile", theirs)) if s.memory
            }
            started = {"healthz_s": ours.started_s}
    return {
        "papers": papers,
        "counts": loaded.counts,
        "load": load.describe(),
        "repeats": REPEATS,
        "postgraphile": postgraphile_version(),
        "medians": {k: medians(v) for k, v in runs.items()},
        "memory_mib": memory,
        "server": started,
        "floor_sql": floor_file.name,
    }


def _ratios(m: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for shape in SHAPES:
        ours, theirs = m[f"graphql {shape}"], m[f"postgraphile {shape}"]
        ratio = ours["rps"] / theirs["rps"]
        target = TARGETS["graphql_vs_postgraphile"]
        rows.append(
            [
                f"GraphQL {shape} / PostGraphile",
                f"{ratio:.2f}",
                f"{ours['rps']:,.0f} vs {theirs['rps']:,.0f}",
                str(target),
                target.verdict(ratio),
            ]
        )
    rest, floor = m["rest paper"], m["pgbench floor"]
    ratio, target = rest["rps"] / floor["rps"], TARGETS["rest_vs_floor"]
    rows.append(
        [
            "REST paper by id / pgbench floor",
            f"{ratio:.2f}",
            f"{rest['rps']:,.0f} vs {floor['rps']:,.0f}",
            str(target),
            target.verdict(ratio),
        ]
    )
    return rows


def _why(m: dict[str, dict[str, Any]]) -> str:
    """Where each side's server CPU per request goes, from the floors measured beside the comparisons."""
    keys = ("rest healthz", "rest paper", "graphql paper", "postgraphile __typename", "postgraphile paper")
    cpu = [m.get(k, {}).get("server_us_per_req") for k in keys]
    if any(value is None for value in cpu):
        return ""
    stack, rest, graphql, node_floor, node_paper = (float(value or 0) for value in cpu)
    return (
        f"Server CPU per request, from the same run: our HTTP stack alone (granian and Litestar answering /healthz)"
        f" {stack:,.0f} µs against PostGraphile's floor (`{{ __typename }}`, no database) {node_floor:,.0f} µs;"
        f" the paper with its listings costs {rest:,.0f} µs over REST and {graphql:,.0f} µs over GraphQL here"
        f" ({graphql - rest:+,.0f} µs for GraphQL's parse-cache lookup, extension pipeline, variable coercion and"
        f" compiled statement), {node_paper:,.0f} µs on PostGraphile."
    )


def render(result: dict[str, Any]) -> str:
    """The section's Markdown."""
    m = result["medians"]
    rows = [
        [
            key,
            x["rps"],
            x.get("p50_ms"),
            x.get("p99_ms"),
            x.get("server_us_per_req"),
            x.get("postgres_us_per_req"),
            x.get("other_cpu_pct"),
            x["errors"],
        ]
        for key, x in m.items()
    ]
    noisy = [key for key, x in m.items() if (x.get("other_cpu_pct") or 0) > 15]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            f"{result['counts']['papers']:,} synthetic papers in {result['counts']['listings']:,} listings; `wrk"
            f" {result['load']}`, medians of {result['repeats']} runs; our server is `papers serve --workers 1`,"
            f" PostGraphile {result['postgraphile']} is one node process. The comparison group ran round robin.",
            "",
            report.table(
                [
                    "request",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "server µs/req",
                    "PostgreSQL µs/req",
                    "other jobs % of a core",
                    "errors",
                ],
                rows,
            ),
            "",
            report.table(["ratio (side by side)", "value", "req/s", "target", "verdict"], _ratios(m), align="lrrrl"),
            "",
            _why(m),
            "",
            f"Peak RSS: ours {result['memory_mib'].get('ours', '–')} MiB (model loaded), PostGraphile"
            f" {result['memory_mib'].get('postgraphile', '–')} MiB. CPU per request is read from /proc for each process"
            " tree; `other jobs` is what the rest of the machine used during the run"
            + (
                f" (noisy runs, above 15% of a core: {', '.join(noisy)})."
                if noisy
                else " (no run above 15% of a core)."
            ),
        ]
    )
