"""The API process's idea of a word (api/services/snippets.py) against PostgreSQL's index, on a real server."""

from __future__ import annotations

import re
from pathlib import Path

from api.services import snippets
from ingest.parsers import parse
from tests.unit.test_snippets import SUFFIXES, fixture_words


async def assert_stems_as_postgresql(conn, words: set[str]) -> None:
    rows = await conn.fetch(
        "SELECT w, ts_lexize('english_stem', w) AS lexemes FROM unnest($1::text[]) AS w", sorted(words)
    )
    postgres = {r["w"]: (r["lexemes"] or [None])[0] for r in rows}
    ours: dict[str, str | None] = dict(zip(sorted(words), snippets.stems(sorted(words)), strict=True))
    for word in words:
        ours[word] = None if word in snippets.STOP_WORDS else ours[word]
    assert {w: (ours[w], postgres[w]) for w in words if ours[w] != postgres[w]} == {}


async def test_stop_words_and_stems_are_postgresqls(conn):
    assert len(snippets.STOP_WORDS) == 127
    words = fixture_words() | set(snippets.STOP_WORDS)
    await assert_stems_as_postgresql(conn, words | {w + s for w in words for s in SUFFIXES})


async def test_the_seed_listings_words_stem_as_postgresql_does(conn, seeds: Path):
    text = " ".join(p.read_text(errors="replace") for p in seeds.iterdir())
    await assert_stems_as_postgresql(conn, {w.lower() for w in re.findall(r"[^\W_]+", text)})


async def test_a_texts_terms_are_the_plain_words_of_its_tsvector(conn):
    listing = parse((Path(__file__).resolve().parents[1] / "fixtures" / "page_blocks.txt").read_text())
    text = " ".join(f"{e.title} {e.abstract}" for e in listing.entries)
    lexemes = set(await conn.fetchval("SELECT tsvector_to_array(to_tsvector('english', $1))", text))
    # PostgreSQL also keeps compounds (self-supervis) and numbers with a point (8.7) whole; their parts are words.
    assert snippets.terms(text) == {x for x in lexemes if re.fullmatch(r"[^\W_]+", x)}
