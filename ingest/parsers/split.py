"""One listing per listing day: a JSON input whose items carry several days gives several listings."""

from __future__ import annotations

import bisect
import datetime as dt

from schema.ingest import ParsedEntry, ParsedListing, Reject

Part = tuple[list[ParsedEntry], list[Reject]]


def _order(day: dt.date | None) -> tuple[bool, dt.date]:
    return day is None, day or dt.date.min


def split_by_day(listing: ParsedListing) -> list[ParsedListing]:
    """The listing's items grouped by listing day, each group a listing of its own text; one day: the listing.

    An item that could not be read (a reject) goes with the entry before it in the input (the first
    day's listing when none is before it). Each part's text is its items' text joined by newlines,
    and its line spans and ranks count within that text.
    """
    entries = listing.entries
    days = {e.listed_on for e in entries}
    if len(days) < 2 or any(e.raw is None for e in entries):
        return [listing]
    parts: dict[dt.date | None, Part] = {day: ([], []) for day in sorted(days, key=_order)}
    for entry in entries:
        parts[entry.listed_on][0].append(entry)
    starts = [e.line_start for e in entries]
    for reject in listing.rejects:
        before = bisect.bisect_right(starts, reject.line_start) - 1
        parts[entries[max(before, 0)].listed_on][1].append(reject)
    return [_part(listing, day, *part) for day, part in parts.items()]


def _part(
    listing: ParsedListing, day: dt.date | None, entries: list[ParsedEntry], rejects: list[Reject]
) -> ParsedListing:
    """One day's listing: its items in input order, renumbered within its own text."""
    items: list[ParsedEntry | Reject] = sorted([*entries, *rejects], key=lambda i: i.line_start)
    texts: list[str] = []
    kept_entries: list[ParsedEntry] = []
    kept_rejects: list[Reject] = []
    line = 1
    for item in items:
        text = item.raw or ""
        end = line + text.count("\n")
        if isinstance(item, ParsedEntry):
            kept_entries.append(
                ParsedEntry(len(kept_entries) + 1, item.title, item.abstract, line, end, item.arxiv_id, day, text)
            )
        else:
            kept_rejects.append(Reject(line, end, item.reason, text))
        texts.append(text)
        line = end + 1
    return ParsedListing(listing.kind, kept_entries, kept_rejects, None, day, listing.heading, "\n".join(texts) + "\n")
