"""Snippets: fragments of an abstract with the query's words marked, made in the API process.

A word here is what the keyword index (`to_tsvector('english')`) makes one: a run of letters and digits,
lower-cased, PostgreSQL's English stop words dropped, stemmed by Snowball's English stemmer (PyStemmer, pinned to
the Snowball release PostgreSQL ships; tests/integration/test_snippets.py compares both on a real server). Made
here rather than by `ts_headline`, which parses every abstract again inside PostgreSQL: ~250 µs each, as much as
the whole ranking of a search (docs/design.md, "Snippets").
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import NamedTuple

import Stemmer

FRAGMENT_CHARS = 200  # about 25 words of an abstract
MAX_FRAGMENTS = 2
# Only an abstract's opening is searched for the query's words: arXiv caps abstracts at 1,920 characters, but a listing
# may carry any length, and a query of single letters makes every word a candidate (~170 ms for 500 kB).
SCANNED_CHARS = 10_000
ELLIPSIS = "..."
# PostgreSQL's share/tsearch_data/english.stop (Snowball's English list), which to_tsvector('english') drops.
_STOP_LIST = """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
    hers herself it its itself they them their theirs themselves what which who whom this that these those am is are
    was were be been being have has had having do does did doing a an the and but if or because as until while
    of at by for with about against between into through during before after above below to from up down in out
    on off over under again further then once here there when where why how all any both each few more most other
    some such no nor not only own same so than too very s t can will just don should now"""
STOP_WORDS = frozenset(_STOP_LIST.split())
_WORD = re.compile(r"[^\W_]+")
# One per process; searches run on its event loop's thread, and the stemmer keeps its own cache of words seen.
_STEMMER = Stemmer.Stemmer("english")
_DOUBLES = "bdfgmnprt"  # the letters Snowball's English stemmer undoubles at a stem's end


def stems(words: Sequence[str]) -> list[str]:
    """The stems PostgreSQL's english_stem gives these lower-cased words."""
    return [_as_postgresql(w, s) for w, s in zip(words, _STEMMER.stemWords(words), strict=True)]


def _as_postgresql(word: str, stem: str) -> str:
    # PostgreSQL's Snowball is newer than PyStemmer 2.2's (and older than PyStemmer 3's, which changed more): taking
    # -ed or -ing off, it keeps the double letter of a vowel-led two-letter stem, "added" -> "add", "erred" -> "err"
    # (but "upped" -> "up"). tests/integration/test_snippets.py compares both on every such word.
    double = stem + stem[-1:]
    if len(stem) == 2 and stem[0] in "aeo" and stem[1] in _DOUBLES and word[3:].startswith(("ed", "ing")):
        return double if word.startswith(double) else stem
    return stem


def terms(text: str) -> frozenset[str]:
    """The stems of a text's words that the keyword index would keep (stop words dropped)."""
    return frozenset(stems([w for w in (m.lower() for m in _WORD.findall(text)) if w not in STOP_WORDS]))


class _Hit(NamedTuple):
    start: int
    end: int
    term: str


class Highlighter:
    """Marks a query's words in abstracts: the words whose stems are the query's."""

    def __init__(self, query: str) -> None:
        self.terms = terms(query)
        # Finding candidates first, rather than stemming every word of an abstract (~5x slower): a Snowball English
        # stem always starts with all but its last two letters of the word (its first letter at least), so a word
        # that does not start so cannot have one of the query's stems (tests/unit/test_snippets.py checks the rule
        # on every word of the seeds with English suffixes added). One pattern per prefix, each a literal that the
        # regular expression engine finds by a fast scan (an alternation or a word-boundary test is ~10x slower).
        prefixes = sorted({t[: max(len(t) - 2, 1)] for t in self.terms})
        # A prefix that starts with another finds no word the other does not (and would find them twice).
        kept = [p for i, p in enumerate(prefixes) if not any(p.startswith(q) for q in prefixes[:i])]
        self._patterns = [re.compile(re.escape(p) + r"[^\W_]*") for p in kept]
        self._terms: dict[str, str | None] = {}  # each candidate word seen: its stem if a query term, else None

    def snippet(self, abstract: str) -> str:
        """HTML-escaped fragments of the abstract around its words with the query's stems, each in <mark>.

        Up to MAX_FRAGMENTS fragments of about FRAGMENT_CHARS, chosen to show as many different query terms as they
        can, joined by an ellipsis; the abstract's opening when none of its words match.
        """
        text = abstract[:SCANNED_CHARS]
        more = len(abstract) > len(text)
        hits = self._hits(text)
        if not hits:
            return _render(text, [_opening(text)], [], more)
        return _render(text, _choose(text, hits), hits, more)

    def _hits(self, text: str) -> list[_Hit]:
        lowered = text.lower()
        if len(lowered) != len(text):  # a letter whose lower case is longer: positions would not line up
            lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        found: list[tuple[int, int, str]] = []
        for pattern in self._patterns:
            for m in pattern.finditer(lowered):
                start = m.start()
                if start == 0 or not lowered[start - 1].isalnum():  # at a word's start
                    found.append((start, m.end(), m.group()))
        if not found:
            return []
        known = self._terms
        new = list({w for _, _, w in found if w not in known})
        for word, stem in zip(new, stems(new), strict=True):
            known[word] = stem if stem in self.terms and word not in STOP_WORDS else None
        hits = [_Hit(a, b, term) for a, b, w in found if (term := known[w]) is not None]
        return sorted(hits) if len(self._patterns) > 1 else hits


def _opening(text: str) -> tuple[int, int]:
    return 0, _word_end(text, min(len(text), FRAGMENT_CHARS))


def _word_end(text: str, at: int) -> int:
    """`at`, moved back to the end of the word it falls in (or past the end of the text)."""
    if at >= len(text) or text[at].isspace():
        return min(at, len(text))
    space = text.rfind(" ", 0, at)
    return at if space <= 0 else space


def _choose(text: str, hits: Sequence[_Hit]) -> list[tuple[int, int]]:
    """Up to MAX_FRAGMENTS (start, end) ranges that don't overlap, greedily by new terms shown, then hits."""
    if hits[-1].end - hits[0].start <= FRAGMENT_CHARS:  # one fragment shows them all
        return [_centred(text, hits, ())]
    chosen: list[tuple[int, int]] = []
    shown: set[str] = set()
    starts, ends, words = [h.start for h in hits], [h.end for h in hits], [h.term for h in hits]
    for _ in range(MAX_FRAGMENTS):
        best: tuple[tuple[int, int, int], int, int] | None = None
        last = 0
        for first, start in enumerate(starts):  # the hits [first, last) fit in one fragment; `last` only moves on
            last = max(last, first + 1)
            while last < len(hits) and ends[last] <= start + FRAGMENT_CHARS:
                last += 1
            if chosen and any(start < b and a < ends[last - 1] for a, b in chosen):
                continue
            key = (len(set(words[first:last]) - shown), last - first, -start)
            if best is None or key > best[0]:
                best = (key, first, last)
        if best is None:
            break
        inside = hits[best[1] : best[2]]
        chosen.append(_centred(text, inside, chosen))
        shown.update(words[best[1] : best[2]])
    return sorted(chosen)


def _centred(text: str, inside: Sequence[_Hit], chosen: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """A range about FRAGMENT_CHARS long with these hits in its middle, clear of the fragments chosen before."""
    low, high = 0, len(text)
    for a, b in chosen:
        low = b if inside[0].start >= b > low else low
        high = a if inside[-1].end <= a < high else high
    spare = max(0, FRAGMENT_CHARS - (inside[-1].end - inside[0].start))
    start = max(low, inside[0].start - spare // 2)
    end = min(high, start + FRAGMENT_CHARS)
    if start > 0:  # begin at a word's start
        space = text.find(" ", start, inside[0].start)
        start = start if space < 0 or text[start - 1].isspace() else space + 1
    return start, max(inside[-1].end, _word_end(text, end))


def _render(text: str, fragments: Sequence[tuple[int, int]], hits: Sequence[_Hit], more: bool) -> str:
    """The fragments' text, escaped, hits in <mark>, an ellipsis wherever text is left out (`more`: text follows)."""
    escape = _escape if "<" in text or ">" in text or "&" in text else str  # most abstracts have nothing to escape
    parts: list[str] = []
    for start, end in fragments:
        pieces: list[str] = []
        position = start
        for hit in hits:
            if start <= hit.start and hit.end <= end:  # a hit is letters and digits: nothing to escape
                pieces += (escape(text[position : hit.start]), "<mark>", text[hit.start : hit.end], "</mark>")
                position = hit.end
        pieces.append(escape(text[position:end]))
        parts.append("".join(pieces).strip())
    head = ELLIPSIS + " " if text[: fragments[0][0]].strip() else ""
    tail = " " + ELLIPSIS if more or text[fragments[-1][1] :].strip() else ""
    return head + f" {ELLIPSIS} ".join(parts) + tail


def _escape(text: str) -> str:
    return html.escape(text, quote=False)
