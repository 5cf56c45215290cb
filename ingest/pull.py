"""Pulling listings from where they are published: Hugging Face daily papers and arXiv feeds, over httpx.

Politely: one User-Agent that names the service, at most one request per `interval_seconds` to a
host, retries with exponential backoff (honouring `Retry-After`) on 429, 5xx and transport errors,
and conditional requests (`If-None-Match` / `If-Modified-Since` from the last answer), so an
unchanged feed costs a 304. A body that arrives is ingested like any other input, raw bytes kept;
the same bytes twice are one listing (ingest is idempotent by content).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import msgspec

from ingest.pipeline import Source, ingest_source
from schema.errors import UnavailableError
from schema.ingest import ListingResult
from schema.pull import PullSettings, PullTarget
from sql import pulls

log = logging.getLogger("papers.pull")
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 300.0
MAX_BODY_BYTES = 50_000_000  # a day's listing is well under 10 MB; anything past this is not one


class Fetched(msgspec.Struct, frozen=True):
    """One answer: 200 with its body and validators, or 304."""

    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


class PullResult(msgspec.Struct):
    """What pulling one target did."""

    target: str
    url: str
    not_modified: bool = False
    listing: ListingResult | None = None
    note: str | None = None
    error: str | None = None

    def describe(self) -> str:
        """One line for a person."""
        if self.error:
            return f"{self.target}: {self.error}"
        if self.not_modified:
            return f"{self.target}: not modified since the last pull (304)"
        if self.note or self.listing is None:
            return f"{self.target}: {self.note}"
        r = self.listing
        if r.error is not None:
            return f"{self.target}: not a listing: {r.error.message}"
        if r.unchanged:
            return f"{self.target}: unchanged (the same content is stored)"
        return (
            f"{self.target}: {r.listings_new} new listing(s), {r.entries} entries, {r.papers_new} new papers,"
            f" {r.rejected} rejected"
        )

    @property
    def failed(self) -> bool:
        """Whether the pull or its ingest failed."""
        return self.error is not None or (self.listing is not None and self.listing.error is not None)


def url_for(target: PullTarget, settings: PullSettings, today: dt.date | None = None) -> str:
    """The URL a target is published at."""
    if target.site == "hf":
        day = target.day or today or dt.datetime.now(dt.UTC).date()
        return f"{settings.hf_url}/api/daily_papers?date={day.isoformat()}"
    if target.category:
        return f"{settings.arxiv_rss_url}/rss/{target.category}"
    query = urllib.parse.urlencode(
        {"search_query": target.query, "start": 0, "max_results": target.max_results, "sortBy": "submittedDate"}
    )
    return f"{settings.arxiv_api_url}/api/query?{query}"


def format_of(target: PullTarget) -> str:
    """The format each site answers in."""
    if target.site == "hf":
        return "hf_daily"
    return "rss" if target.category else "atom"


def _retry_after(response: httpx.Response) -> float | None:
    """A Retry-After in seconds (capped); a date or nothing leaves the backoff to us."""
    value = response.headers.get("Retry-After", "").strip()
    return min(float(value), MAX_RETRY_AFTER) if value.isdigit() else None


class Fetcher:
    """An httpx client with the pull manners: User-Agent, per-host spacing, retries and backoff."""

    def __init__(
        self,
        settings: PullSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.client = httpx.AsyncClient(
            headers={"User-Agent": settings.user_agent},
            timeout=httpx.Timeout(30.0, connect=10.0),
            follow_redirects=True,
            transport=transport,
        )
        self._last: dict[str, float] = {}

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def _wait_turn(self, url: str) -> None:
        host = urllib.parse.urlsplit(url).netloc
        last = self._last.get(host)
        if last is not None:
            wait = self.settings.interval_seconds - (time.monotonic() - last)
            if wait > 0:
                await self.sleep(wait)
        self._last[host] = time.monotonic()

    async def get(self, url: str, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """GET url conditionally; retry what may pass; UnavailableError when every try failed."""
        headers = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", last_modified)) if v}
        problem, retry_after = "", None
        for attempt in range(self.settings.retries + 1):
            if attempt:  # the server's Retry-After when it sent one, else backoff_seconds × 2^(attempt-1)
                await self.sleep(
                    retry_after if retry_after is not None else self.settings.backoff_seconds * 2 ** (attempt - 1)
                )
            await self._wait_turn(url)
            try:
                response = await self.client.get(url, headers=headers)
            except httpx.TransportError as exc:
                problem, retry_after = f"{type(exc).__name__}: {exc}", None
                continue
            if response.status_code in RETRY_STATUSES:
                problem, retry_after = f"HTTP {response.status_code}", _retry_after(response)
                continue
            return self._answer(url, response)
        raise UnavailableError(f"{url}: no answer after {self.settings.retries + 1} tries ({problem})")

    @staticmethod
    def _answer(url: str, response: httpx.Response) -> Fetched:
        if response.status_code == 304:
            return Fetched(304)
        if response.status_code != 200:
            raise UnavailableError(f"{url}: HTTP {response.status_code}", retry_after=60)
        if len(response.content) > MAX_BODY_BYTES:
            raise UnavailableError(f"{url}: answer of {len(response.content)} bytes is too large to be a listing")
        headers = response.headers
        return Fetched(200, response.content, headers.get("ETag"), headers.get("Last-Modified"))


async def pull(
    conn: asyncpg.Connection, fetcher: Fetcher, target: PullTarget, *, today: dt.date | None = None
) -> PullResult:
    """Fetch one target (conditionally) and ingest what it answered; 304 and known bytes change nothing."""
    url = url_for(target, fetcher.settings, today)
    known = await pulls.state(conn, url)
    answer = await fetcher.get(url, known.etag if known else None, known.last_modified if known else None)
    if answer.status == 304:
        await pulls.record(conn, url, 304, None)
        return PullResult(target.name, url, not_modified=True)
    sha256 = hashlib.sha256(answer.body).hexdigest()
    await pulls.record(conn, url, 200, pulls.UrlState(answer.etag, answer.last_modified, sha256))
    if target.site == "hf" and answer.body.strip() == b"[]":
        return PullResult(target.name, url, note="no papers listed that day")
    result = await ingest_source(conn, Source(url, answer.body), fmt=format_of(target))
    return PullResult(target.name, url, listing=result)


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from first to last, both included."""
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


async def pull_all(conn: asyncpg.Connection, fetcher: Fetcher, targets: list[PullTarget]) -> list[PullResult]:
    """Pull each target in turn; a target that cannot be fetched is reported, the others still pulled."""
    results = []
    for target in targets:
        try:
            results.append(await pull(conn, fetcher, target))
        except UnavailableError as exc:
            results.append(PullResult(target.name, url_for(target, fetcher.settings), error=exc.message))
    return results
