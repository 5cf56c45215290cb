"""Contracts between the parsers, the normalizer, the store and the ingest reports."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from typing import Literal, NamedTuple, get_args

import msgspec

ListingKind = Literal["page", "hf_daily", "jsonl", "json", "atom", "rss", "html"]
FORMATS: tuple[str, ...] = get_args(ListingKind)
# The same choices as one named type, where a schema (OpenAPI) must name the concept once; made from the
# Literal so the two cannot drift (mypy reads members only from a literal list, hence the pragma).
ListingFormat = enum.StrEnum("ListingFormat", [(name, name) for name in FORMATS])  # type: ignore[misc]


class ParsedEntry(msgspec.Struct, frozen=True):
    """One title + abstract pair as found in a listing, already normalized."""

    rank: int
    title: str
    abstract: str
    line_start: int
    line_end: int
    arxiv_id: str | None = None
    listed_on: dt.date | None = None
    raw: str | None = None  # the item's own text, kept by the JSON formats so a file can split by day


class Reject(msgspec.Struct, frozen=True):
    """A part of the input that could not be read as an entry, kept with its reason."""

    line_start: int
    line_end: int
    reason: str
    raw: str


class ParsedListing(msgspec.Struct, frozen=True):
    """Everything a parser found in one input: its header, entries and rejects."""

    kind: ListingKind
    entries: list[ParsedEntry]
    rejects: list[Reject] = []
    date_label: str | None = None
    listed_on: dt.date | None = None
    heading: str | None = None
    raw: str | None = None  # this listing's own text when its input held several listings (one per day)


MAP_FIELDS = ("items", "title", "abstract", "arxiv_id", "date")


class FieldMap(msgspec.Struct, frozen=True):
    """Where a JSON layout keeps each field (`--map title=paper.name,...`): dotted paths, None for the rule's guess.

    `items` is the path from the document to its list of items; the others are paths inside one item.
    """

    items: tuple[str, ...] | None = None
    title: tuple[str, ...] | None = None
    abstract: tuple[str, ...] | None = None
    arxiv_id: tuple[str, ...] | None = None
    date: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, spec: str) -> FieldMap:
        """Read `title=PATH,abstract=PATH,...`; ValueError names what is wrong."""
        paths: dict[str, tuple[str, ...]] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, path = part.partition("=")
            name, keys = name.strip(), tuple(k.strip() for k in path.split("."))
            if not sep or name not in MAP_FIELDS or not all(keys):
                raise ValueError(f"--map expects NAME=PATH[,NAME=PATH...] with NAME one of {', '.join(MAP_FIELDS)}")
            if name in paths:
                raise ValueError(f"--map names {name!r} twice")
            paths[name] = keys
        if not paths:
            raise ValueError("--map is empty")
        return cls(**paths)


class ListingInput(msgspec.Struct, frozen=True):
    """One raw input, parsed, with its resolved date: everything needed to store it."""

    source: str
    raw: bytes
    parsed: ParsedListing
    listed_on: dt.date | None

    @property
    def sha256(self) -> str:
        """The content hash that makes ingest idempotent."""
        return hashlib.sha256(self.raw).hexdigest()


class PaperRecord(msgspec.Struct):
    """A paper as the ingest write path sees it: what a listing says of it, or its stored row (with `key`).

    `old_abstract` and `changed` record what merging a listing into a stored paper did.
    """

    fingerprint: str
    public_id: str
    title: str
    abstract: str
    from_arxiv: bool
    arxiv_id: str | None
    first_listed: dt.date | None
    last_listed: dt.date | None
    key: int | None = None
    old_abstract: str | None = None
    changed: bool = False


class EntryRow(NamedTuple):
    """One listing entry as stored: the paper it names and its text as printed where that differs."""

    rank: int
    paper_key: int
    title_variant: str | None
    abstract_variant: str | None
    listed_on: dt.date | None
    line_start: int
    line_end: int


class IngestError(msgspec.Struct, frozen=True):
    """Why one input could not be ingested at all."""

    source: str
    message: str
    line: int | None = None


class ListingResult(msgspec.Struct):
    """What ingesting one input did."""

    source: str
    listing_id: str | None = None
    unchanged: bool = False
    entries: int = 0
    papers_new: int = 0
    papers_updated: int = 0
    rejected: int = 0
    error: IngestError | None = None
    # Every listing the input gave: several when its items carry several listing days.
    listing_ids: list[str] = []
    listings_new: int = 0
    listings_unchanged: int = 0


class IngestSummary(msgspec.Struct):
    """The `papers ingest --json` summary: counts over all inputs and the errors."""

    listings: int = 0
    listings_unchanged: int = 0
    entries: int = 0
    papers_new: int = 0
    papers_updated: int = 0
    rejected: int = 0
    errors: list[IngestError] = []
    embedded: int = 0
    embed_failed: int = 0

    def add(self, result: ListingResult) -> None:
        """Fold one listing's result into the totals."""
        if result.error is not None:
            self.errors.append(result.error)
            return
        self.listings += result.listings_new
        self.listings_unchanged += result.listings_unchanged
        self.entries += result.entries
        self.papers_new += result.papers_new
        self.papers_updated += result.papers_updated
        self.rejected += result.rejected
