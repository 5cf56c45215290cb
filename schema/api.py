"""Read-side contracts shared by the query layer, REST and GraphQL.

Field descriptions and examples live here once: they appear in the OpenAPI document and as
GraphQL field descriptions.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

PaperSort = Literal["recent", "title", "first_seen"]
MAX_PAGE = 100


def doc(kind: Any, description: str, example: Any) -> Any:
    """A field type with its description and one example."""
    return Annotated[kind, msgspec.Meta(description=description, examples=[example])]


PaperId = doc(str, "stable public id of a paper (derived from its title fingerprint)", "pap_z77nqhjb6zugfnc4")
ListingId = doc(str, "public id of a listing (derived from its content)", "lst_vjq5i63cxesyipki")
DateLabel = doc(str | None, "the date label as printed on the listing", "Mar 11")
ResolvedDate = doc(dt.date | None, "the resolved calendar date of the listing", "2024-03-11")


class ListingRef(msgspec.Struct, frozen=True):
    """Where a paper appeared: the listing, its date label and resolved date, and the paper's rank."""

    id: ListingId
    date_label: DateLabel
    date: ResolvedDate
    rank: doc(int, "1-based position of the paper in the listing", 3)


class Paper(msgspec.Struct, frozen=True):
    """One distinct paper."""

    id: PaperId
    title: doc(str, "the title as first seen", "One Epoch Is All You Need")
    abstract: doc(
        str,
        "the canonical abstract",
        "In unsupervised learning, collecting more data is not always a costly process...",
    )
    arxiv_id: doc(str | None, "arXiv identifier without version, when known", "2306.00001")
    first_seen: doc(dt.datetime, "when the paper was first ingested", "2024-03-11T09:30:00Z")
    last_seen: doc(dt.datetime, "when a listing with the paper was last ingested", "2024-08-01T09:30:00Z")
    first_listed: doc(dt.date | None, "earliest resolved date of a listing with the paper", "2024-03-11")
    last_listed: doc(dt.date | None, "latest resolved date of a listing with the paper", "2024-08-01")


PAPER_FIELDS = frozenset(Paper.__struct_fields__)


class PaperDetail(Paper, frozen=True):
    """A paper with the listings it appeared in."""

    listings: list[ListingRef] = []


class PaperFilter(msgspec.Struct, frozen=True):
    """Filters on the paper collection."""

    q: doc(str | None, "full-text keywords (web search syntax: quotes, or, -)", "reward model") = None
    listing: doc(str | None, "only papers that appeared in this listing", "lst_vjq5i63cxesyipki") = None
    listed_from: doc(dt.date | None, "only papers listed on or after this date", "2024-03-01") = None
    listed_to: doc(dt.date | None, "only papers listed on or before this date", "2024-03-31") = None
    arxiv: doc(bool | None, "only papers with (true) or without (false) an arXiv id", True) = None


class Listing(msgspec.Struct, frozen=True):
    """One ingested listing (without its raw input)."""

    id: ListingId
    source: doc(str, "the name the input was ingested under (file name, api, graphql)", "daily-2024-03-11.txt")
    kind: doc(str, "input format: page, hf_daily or jsonl", "page")
    date_label: DateLabel
    date: ResolvedDate
    heading: doc(str | None, "page heading, when printed", "Daily Papers")
    entry_count: doc(int, "number of entries", 98)
    reject_count: doc(int, "number of blocks that could not be read, kept with their reason", 0)
    ingested_at: doc(dt.datetime, "when the listing was ingested", "2024-03-11T09:30:00Z")


class ListingEntry(msgspec.Struct, frozen=True):
    """A ranked entry of a listing: the paper, and the text as printed where it differs."""

    rank: doc(int, "1-based position in the listing", 1)
    paper: Paper
    title_as_printed: doc(str | None, "the title as printed, only where it differs from the paper's", None) = None
    abstract_as_printed: doc(str | None, "the abstract as printed, only where it differs from the paper's", None) = None


class TitleMatch(msgspec.Struct, frozen=True):
    """A fuzzy title match and its trigram similarity (0..1)."""

    paper: Paper
    score: doc(float, "trigram similarity of the titles, 0..1", 0.82)


class Stats(msgspec.Struct, frozen=True):
    """Collection totals."""

    papers: doc(int, "distinct papers", 559)
    listings: doc(int, "ingested listings", 5)
    entries: doc(int, "listing entries", 598)
    rejects: doc(int, "unreadable blocks kept with their reason", 0)
    embedded: doc(int, "papers with an embedding", 559)
    jobs_queued: doc(int, "ingest jobs queued or running", 0)
    jobs_failed: doc(int, "ingest jobs that failed for good", 0)


class JobStatusView(msgspec.Struct, frozen=True):
    """A submitted listing's ingest job as clients see it."""

    id: doc(str, "job id", "job_3f9c2a7b1d4e5f60a1b2")
    status: doc(str, "queued, running, done or failed", "done")
    attempts: doc(int, "attempts so far", 1)
    last_error: doc(str | None, "the last failure, if any", None)
    result: doc(dict | None, "the ingest result when done", {"entries": 98, "papers_new": 12, "unchanged": False})
    created_at: doc(dt.datetime | None, "when the job was queued", "2024-03-11T09:30:00Z")
    finished_at: doc(dt.datetime | None, "when the job finished", "2024-03-11T09:30:02Z")


SearchMode = Literal["keyword", "semantic", "hybrid"]


class ScoredPaper(Paper, frozen=True):
    """A paper found by search, similarity or recommendation, with its score."""

    score: doc(float, "relevance: cosine similarity (semantic), ts_rank (keyword) or fused RRF score (hybrid)", 0.71)
    snippet: doc(
        str | None,
        "abstract fragment with the keyword matches in <mark> (keyword and hybrid)",
        "... we propose a <mark>reward</mark> <mark>model</mark> that ...",
    ) = None


class RecommendRequest(msgspec.Struct, frozen=True):
    """Papers like the positives (and the free text) and unlike the negatives."""

    positive: doc(list[str], "paper ids (public or arXiv) to find more like", ["pap_z77nqhjb6zugfnc4"]) = []
    negative: doc(list[str], "paper ids to steer away from", []) = []
    text: doc(str | None, "free text, e.g. a pasted abstract; counts as a positive", None) = None
    limit: doc(int, "how many papers, at most 100", 10) = 10
    filters: PaperFilter = PaperFilter()
