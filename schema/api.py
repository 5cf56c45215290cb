"""Read-side contracts shared by the query layer, REST and GraphQL.

Field descriptions and examples live here once: they appear in the OpenAPI document and as
GraphQL field descriptions.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from schema.ingest import ListingFormat
from schema.jobs import JobStatus

PaperSort = Literal["recent", "title", "first_seen"]
MAX_PAGE = 100


def doc(description: str, example: Any) -> msgspec.Meta:
    """A field's description and one example: `Annotated[T, doc(description, example)]`."""
    return msgspec.Meta(description=description, examples=[example])


PaperId = Annotated[
    str, doc("stable public id of a paper (derived from its title fingerprint)", "pap_z77nqhjb6zugfnc4")
]
ListingId = Annotated[str, doc("public id of a listing (derived from its content)", "lst_vjq5i63cxesyipki")]
DateLabel = Annotated[str | None, doc("the date label as printed on the listing", "Mar 11")]
ResolvedDate = Annotated[dt.date | None, doc("the resolved calendar date of the listing", "2024-03-11")]


class ListingRef(msgspec.Struct, frozen=True):
    """Where a paper appeared: the listing, its date label and resolved date, and the paper's rank."""

    id: ListingId
    date_label: DateLabel
    date: ResolvedDate
    rank: Annotated[int, doc("1-based position of the paper in the listing", 3)]


class Paper(msgspec.Struct, frozen=True):
    """One distinct paper."""

    id: PaperId
    title: Annotated[str, doc("the title as first seen", "One Epoch Is All You Need")]
    abstract: Annotated[
        str,
        doc(
            "the canonical abstract", "In unsupervised learning, collecting more data is not always a costly process..."
        ),
    ]
    arxiv_id: Annotated[str | None, doc("arXiv identifier without version, when known", "2306.00001")]
    first_seen: Annotated[dt.datetime, doc("when the paper was first ingested", "2024-03-11T09:30:00Z")]
    last_seen: Annotated[dt.datetime, doc("when a listing with the paper was last ingested", "2024-08-01T09:30:00Z")]
    first_listed: Annotated[dt.date | None, doc("earliest resolved date of a listing with the paper", "2024-03-11")]
    last_listed: Annotated[dt.date | None, doc("latest resolved date of a listing with the paper", "2024-08-01")]


PAPER_FIELDS = frozenset(Paper.__struct_fields__)


class PaperDetail(Paper, frozen=True):
    """A paper with the listings it appeared in."""

    listings: list[ListingRef] = []


class PaperFilter(msgspec.Struct, frozen=True):
    """Filters on the paper collection."""

    q: Annotated[str | None, doc("full-text keywords (web search syntax: quotes, or, -)", "reward model")] = None
    listing: Annotated[str | None, doc("only papers that appeared in this listing", "lst_vjq5i63cxesyipki")] = None
    listed_from: Annotated[dt.date | None, doc("only papers listed on or after this date", "2024-03-01")] = None
    listed_to: Annotated[dt.date | None, doc("only papers listed on or before this date", "2024-03-31")] = None
    arxiv: Annotated[bool | None, doc("only papers with (true) or without (false) an arXiv id", True)] = None


class Listing(msgspec.Struct, frozen=True):
    """One ingested listing (without its raw input)."""

    id: ListingId
    source: Annotated[
        str, doc("the name the input was ingested under (file name, api, graphql)", "daily-2024-03-11.txt")
    ]
    kind: Annotated[ListingFormat, doc("input format: page, hf_daily, jsonl, json, atom, rss or html", "page")]
    date_label: DateLabel
    date: ResolvedDate
    heading: Annotated[str | None, doc("page heading, when printed", "Daily Papers")]
    entry_count: Annotated[int, doc("number of entries", 98)]
    reject_count: Annotated[int, doc("number of blocks that could not be read, kept with their reason", 0)]
    ingested_at: Annotated[dt.datetime, doc("when the listing was ingested", "2024-03-11T09:30:00Z")]


class ListingEntry(msgspec.Struct, frozen=True):
    """A ranked entry of a listing: the paper, and the text as printed where it differs."""

    rank: Annotated[int, doc("1-based position in the listing", 1)]
    paper: Paper
    title_as_printed: Annotated[
        str | None, doc("the title as printed, only where it differs from the paper's", None)
    ] = None
    abstract_as_printed: Annotated[
        str | None, doc("the abstract as printed, only where it differs from the paper's", None)
    ] = None


class TitleMatch(msgspec.Struct, frozen=True):
    """A fuzzy title match and its trigram similarity (0..1)."""

    paper: Paper
    score: Annotated[float, doc("trigram similarity of the titles, 0..1", 0.82)]


class DatabaseStatus(msgspec.Struct, frozen=True):
    """One database the service reads or writes: its role, whether it takes requests, and how far behind it is."""

    name: Annotated[str, doc("primary, or replica-N in the order of DATABASE_REPLICA_URLS", "replica-1")]
    role: Annotated[str, doc("primary (writes, and reads when no replica is fit) or replica (reads)", "replica")]
    healthy: Annotated[bool, doc("answering; for a replica, in rotation (reachable, within the lag bound)", True)]
    state: Annotated[str, doc("ok, lagging, unreachable or not_a_standby (a replica URL that names a primary)", "ok")]
    lag_seconds: Annotated[
        float | None, doc("how long ago the primary was where this replica's replay is now; 0 for the primary", 0.0)
    ] = None
    lag_bytes: Annotated[int | None, doc("WAL bytes between the primary's position and this replica's replay", 0)] = (
        None
    )


class Readiness(msgspec.Struct, frozen=True):
    """Ready to serve, and the databases behind the service."""

    status: Annotated[str, doc("ready", "ready")]
    databases: Annotated[list[DatabaseStatus], doc("the primary, then each replica", [])]


class Stats(msgspec.Struct, frozen=True):
    """Collection totals."""

    papers: Annotated[int, doc("distinct papers", 559)]
    listings: Annotated[int, doc("ingested listings", 5)]
    entries: Annotated[int, doc("listing entries", 598)]
    rejects: Annotated[int, doc("unreadable blocks kept with their reason", 0)]
    embedded: Annotated[int, doc("papers with an embedding", 559)]
    jobs_queued: Annotated[int, doc("ingest jobs queued or running", 0)]
    jobs_failed: Annotated[int, doc("ingest jobs that failed for good", 0)]
    databases: Annotated[list[DatabaseStatus], doc("the primary, then each replica: role, health and lag", [])] = (
        msgspec.field(default_factory=list)
    )


class JobStatusView(msgspec.Struct, frozen=True):
    """A submitted listing's ingest job as clients see it."""

    id: Annotated[str, doc("job id", "job_3f9c2a7b1d4e5f60a1b2")]
    status: Annotated[JobStatus, doc("queued, running, done or failed", "done")]
    attempts: Annotated[int, doc("attempts so far", 1)]
    last_error: Annotated[str | None, doc("the last failure, if any", None)]
    result: Annotated[
        dict | None, doc("the ingest result when done", {"entries": 98, "papers_new": 12, "unchanged": False})
    ]
    created_at: Annotated[dt.datetime | None, doc("when the job was queued", "2024-03-11T09:30:00Z")]
    finished_at: Annotated[dt.datetime | None, doc("when the job finished", "2024-03-11T09:30:02Z")]
    papers_to_embed: Annotated[
        int | None,
        doc("papers of the ingested listing still waiting for their embedding (0: all embedded); null until done", 0),
    ] = None


SearchMode = Literal["keyword", "semantic", "hybrid"]


class ScoredPaper(Paper, frozen=True):
    """A paper found by search, similarity or recommendation, with its score."""

    score: Annotated[
        float,
        doc(
            "relevance: cosine similarity (semantic), BM25 (keyword) or the fused score (hybrid: 0.7 x BM25 +"
            " 0.3 x cosine, each min-max scaled over its top 50)",
            0.71,
        ),
    ]
    snippet: Annotated[
        str | None,
        doc(
            "up to two fragments of the abstract around the query's words, HTML-escaped with those words in <mark>,"
            " '...' where text is left out (keyword hits in keyword and hybrid search)",
            "... we propose a <mark>reward</mark> <mark>model</mark> that ...",
        ),
    ] = None


class RecommendRequest(msgspec.Struct, frozen=True):
    """Papers like the positives (and the free text) and unlike the negatives."""

    positive: Annotated[list[str], doc("paper ids (public or arXiv) to find more like", ["pap_z77nqhjb6zugfnc4"])] = []
    negative: Annotated[list[str], doc("paper ids to steer away from", [])] = []
    text: Annotated[str | None, doc("free text, e.g. a pasted abstract; counts as a positive", None)] = None
    limit: Annotated[int, doc("how many papers, at most 100", 10)] = 10
    filters: PaperFilter = PaperFilter()


FacetField = Literal["listing", "listed_month", "listed_year", "has_arxiv"]
FACET_FIELDS: tuple[FacetField, ...] = ("listing", "listed_month", "listed_year", "has_arxiv")


class FacetCount(msgspec.Struct, frozen=True):
    """How many matching papers share one value of the grouped field."""

    key: Annotated[
        str | None,
        doc(
            "the value: a listing id, a month (2024-03) or year (2024) of the paper's first listing, or true/false"
            " for has_arxiv; null for papers never listed on a known day",
            "2024-03",
        ),
    ]
    count: Annotated[int, doc("matching papers with this value", 98)]


class Suggestion(msgspec.Struct, frozen=True):
    """A title that completes what was typed."""

    id: PaperId
    title: Annotated[str, doc("the paper's title", "One Epoch Is All You Need")]


ExportFormat = Literal["jsonl", "csv"]
