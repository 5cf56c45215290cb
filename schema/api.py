"""Read-side contracts shared by the query layer, REST and GraphQL."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

PaperSort = Literal["recent", "title", "first_seen"]
MAX_PAGE = 100


class ListingRef(msgspec.Struct, frozen=True):
    """Where a paper appeared: the listing, its date label and resolved date, and the paper's rank."""

    id: str
    date_label: str | None
    date: dt.date | None
    rank: int


class Paper(msgspec.Struct, frozen=True):
    """One distinct paper."""

    id: str
    title: str
    abstract: str
    arxiv_id: str | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    first_listed: dt.date | None
    last_listed: dt.date | None


PAPER_FIELDS = frozenset(Paper.__struct_fields__) | {"listings"}


class PaperDetail(Paper, frozen=True):
    """A paper with the listings it appeared in."""

    listings: list[ListingRef] = []


class PaperFilter(msgspec.Struct, frozen=True):
    """Filters on the paper collection."""

    q: str | None = None
    listing: str | None = None
    listed_from: dt.date | None = None
    listed_to: dt.date | None = None
    arxiv: bool | None = None


class Listing(msgspec.Struct, frozen=True):
    """One ingested listing (without its raw input)."""

    id: str
    source: str
    kind: str
    date_label: str | None
    date: dt.date | None
    heading: str | None
    entry_count: int
    reject_count: int
    ingested_at: dt.datetime


class ListingEntry(msgspec.Struct, frozen=True):
    """A ranked entry of a listing: the paper, and the text as printed where it differs."""

    rank: int
    paper: Paper
    title_as_printed: str | None = None
    abstract_as_printed: str | None = None


class TitleMatch(msgspec.Struct, frozen=True):
    """A fuzzy title match and its trigram similarity (0..1)."""

    paper: Paper
    score: float


class Stats(msgspec.Struct, frozen=True):
    """Collection totals."""

    papers: int
    listings: int
    entries: int
    rejects: int
    embedded: int
    jobs_queued: int
    jobs_failed: int


class JobStatusView(msgspec.Struct, frozen=True):
    """A submitted listing's ingest job as clients see it."""

    id: str
    status: str
    attempts: int
    last_error: str | None
    result: dict | None
    created_at: dt.datetime | None
    finished_at: dt.datetime | None
