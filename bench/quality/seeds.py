"""The seed listings in a fresh database: ingested and embedded through the product, then read back as papers."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import asyncpg
import numpy as np

from bench.harness.report import ROOT, fmt
from ingest.embed import embed_pending
from ingest.embedder import LocalEmbedder, OnnxEmbedder
from ingest.pipeline import Source, ingest_source

# Title stems from PostgreSQL's english configuration; the parts of a hyphenated word are left out,
# so "vision-language" is one keyword rather than also "vision" and "language".
PAPERS_SQL = """
SELECT p.paper_key, p.public_id, p.title, p.abstract, p.embedding,
       array(SELECT DISTINCT e.listing_key FROM listing_entries e WHERE e.paper_key = p.paper_key) AS listings,
       array(SELECT DISTINCT unnest(d.lexemes) FROM ts_debug('english', p.title) d
             WHERE d.alias NOT IN ('hword_asciipart', 'hword_part', 'hword_numpart')) AS stems
FROM papers p ORDER BY p.paper_key"""
LISTINGS_SQL = "SELECT listing_key, public_id, coalesce(listed_on::text, date_label) AS day FROM listings ORDER BY 1"


MODELS = ROOT / ".papers" / "models"


@dataclasses.dataclass(frozen=True)
class Paper:
    """A stored seed paper: keys, text, the listings it is in and its title's stems."""

    key: int
    id: str
    title: str
    abstract: str
    listings: frozenset[int]
    stems: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Listing:
    """A stored seed listing and the public ids of its papers."""

    key: int
    id: str
    day: str | None
    members: frozenset[str]


@dataclasses.dataclass
class Seeds:
    """The seed collection as stored, with what embedding it cost."""

    directory: str
    files: int
    papers: list[Paper]
    listings: list[Listing]
    vectors: np.ndarray  # stored embeddings, rows aligned with papers
    embedder: LocalEmbedder | OnnxEmbedder
    embedded: int
    load_seconds: float
    embed_seconds: float


def seed_files(directory: Path) -> list[Path]:
    """The listing files of a seed directory (read in place, never copied)."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise SystemExit(f"no seed listings in {directory}")
    return files


async def load(conn: asyncpg.Connection, directory: Path, label: str) -> Seeds:
    """Ingest every seed listing, embed every paper with the local model, and read the papers back."""
    files = seed_files(directory)
    for path in files:
        result = await ingest_source(conn, Source(path.name, path.read_bytes()))
        if result.error:
            raise SystemExit(f"{path.name}: {result.error.message}")
    # The shipped default: ONNX int8, cached in the repository's default data directory (exported on first use).
    embedder = OnnxEmbedder(MODELS)
    started = time.perf_counter()
    embedder.load()
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    embedded = await embed_pending(conn, embedder)
    embed_seconds = time.perf_counter() - started
    rows = await conn.fetch(PAPERS_SQL)
    papers = [
        Paper(
            r["paper_key"], r["public_id"], r["title"], r["abstract"], frozenset(r["listings"]), frozenset(r["stems"])
        )
        for r in rows
    ]
    vectors = np.stack([np.asarray(r["embedding"].to_numpy(), dtype=np.float32) for r in rows])
    listings = [
        Listing(
            r["listing_key"],
            r["public_id"],
            r["day"],
            frozenset(p.id for p in papers if r["listing_key"] in p.listings),
        )
        for r in await conn.fetch(LISTINGS_SQL)
    ]
    return Seeds(label, len(files), papers, listings, vectors, embedder, embedded.embedded, load_seconds, embed_seconds)


def render(seeds: Seeds) -> str:
    """The data paragraph: what was ingested and embedded, and how long embedding took."""
    multi = sum(1 for p in seeds.papers if len(p.listings) > 1)
    sizes = ", ".join(fmt(n) for n in sorted(len(lst.members) for lst in seeds.listings))
    return (
        f"Data: {seeds.files} seed listings from `{seeds.directory}` -> {len(seeds.listings)} listings,"
        f" {len(seeds.papers)} papers ({multi} appear in more than one listing; listing sizes {sizes})."
        f" Embedded {seeds.embedded} papers with {seeds.embedder.model} on {seeds.embedder.backend}"
        f" {seeds.embedder.quantization} (max_seq_length {seeds.embedder.max_tokens})"
        f" in {seeds.embed_seconds:.1f} s via `ingest.embed.embed_pending` (model load {seeds.load_seconds:.1f} s)."
    )
