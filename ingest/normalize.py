"""From parsed entries to paper candidates: identity, dates and the canonical-abstract rule."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from schema.identity import paper_public_id, title_fingerprint
from schema.ingest import PaperRecord, ParsedEntry

DateSpan = tuple[dt.date | None, dt.date | None]


def prefer_abstract(new: tuple[str, bool], current: tuple[str, bool]) -> bool:
    """Tell whether abstract `new` (text, from arXiv) should replace `current` as the canonical one.

    Rule: an abstract from a source that names the arXiv id wins, then the longer one, then the
    lexically smaller. It depends only on the set of abstracts seen, never on ingest order, so
    every database that has ingested the same listings holds the same canonical abstract.
    """
    (text, from_arxiv), (current_text, current_from_arxiv) = new, current
    if (from_arxiv, len(text)) != (current_from_arxiv, len(current_text)):
        return (from_arxiv, len(text)) > (current_from_arxiv, len(current_text))
    return text < current_text


def _pick(a: dt.date | None, b: dt.date | None, pick: Callable[[Iterable[dt.date]], dt.date]) -> dt.date | None:
    dates = [d for d in (a, b) if d is not None]
    return pick(dates) if dates else None


def merge_dates(a: DateSpan, b: DateSpan) -> DateSpan:
    """Combine two (first_listed, last_listed) spans."""
    return _pick(a[0], b[0], min), _pick(a[1], b[1], max)


def merge_into(paper: PaperRecord, seen: PaperRecord, *, arxiv_free: bool) -> None:
    """Fold what a listing says (`seen`) into a stored paper; mark it changed when a public field changes.

    `arxiv_free` says no other stored paper holds the listing's arXiv id for this paper.
    """
    if prefer_abstract((seen.abstract, seen.from_arxiv), (paper.abstract, paper.from_arxiv)):
        paper.old_abstract = paper.old_abstract or paper.abstract
        paper.abstract, paper.from_arxiv, paper.changed = seen.abstract, seen.from_arxiv, True
    if paper.arxiv_id is None and seen.arxiv_id and arxiv_free:
        paper.arxiv_id, paper.changed = seen.arxiv_id, True
    paper.first_listed, paper.last_listed = merge_dates(
        (paper.first_listed, paper.last_listed), (seen.first_listed, seen.last_listed)
    )


def candidates(entries: list[ParsedEntry], listed_on: dt.date | None) -> tuple[dict[str, PaperRecord], list[str]]:
    """Fold a listing's entries into one candidate per paper, and name each entry's candidate.

    Entries are the same paper when their title fingerprints match or when they carry the same arXiv id.
    """
    found: dict[str, PaperRecord] = {}
    by_arxiv: dict[str, str] = {}
    owners: list[str] = []
    for entry in entries:
        fingerprint = title_fingerprint(entry.title)
        if fingerprint not in found and entry.arxiv_id in by_arxiv:
            fingerprint = by_arxiv[entry.arxiv_id]
        owners.append(fingerprint)
        day = entry.listed_on or listed_on
        from_arxiv = entry.arxiv_id is not None
        seen = found.get(fingerprint)
        if seen is None:
            found[fingerprint] = PaperRecord(
                fingerprint,
                paper_public_id(fingerprint),
                entry.title,
                entry.abstract,
                from_arxiv,
                entry.arxiv_id,
                day,
                day,
            )
        else:
            if prefer_abstract((entry.abstract, from_arxiv), (seen.abstract, seen.from_arxiv)):
                seen.abstract, seen.from_arxiv = entry.abstract, from_arxiv
            if seen.arxiv_id is None and entry.arxiv_id not in by_arxiv:
                seen.arxiv_id = entry.arxiv_id
            seen.first_listed, seen.last_listed = merge_dates((seen.first_listed, seen.last_listed), (day, day))
        arxiv_id = found[fingerprint].arxiv_id
        if arxiv_id:
            by_arxiv.setdefault(arxiv_id, fingerprint)
    return found, owners
