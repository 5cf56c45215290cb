"""`papers pull` against a local server replaying recorded answers: retries, 304, idempotency, schedules."""

from __future__ import annotations

import asyncio

import pytest

from ingest.pull import Fetcher, pull, pull_all
from ingest.worker import Worker
from schema.pull import PullSettings, PullTarget, parse_schedule
from sql import db
from tests import factories
from tests.integration.test_cli import papers
from tests.replay import Answer, replaying
from tests.unit.test_parsers import FIXTURES

HF_PATH = "/api/daily_papers?date=2024-03-11"
RSS_PATH = "/rss/cs.LG"
HF_BODY = factories.hf_daily([(*factories.paper(i), f"2403.0100{i}") for i in range(3)], day="2024-03-11").encode()
RSS_BODY = (FIXTURES / "arxiv_rss2.xml").read_bytes()
ATOM_BODY = (FIXTURES / "arxiv_api.atom").read_bytes()
DAY = PullTarget.parse("hf:2024-03-11")


class Sleeps:
    """Records the pauses the fetcher asks for instead of waiting them out."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def settings(base: str, **kw) -> PullSettings:
    return PullSettings(hf_url=base, arxiv_rss_url=base, arxiv_api_url=base, user_agent="papers-test/1", **kw)


async def test_pull_stores_the_raw_answer_then_asks_conditionally(conn):
    answers = {HF_PATH: [Answer(200, HF_BODY, {"ETag": '"v1"', "Last-Modified": "Mon, 11 Mar 2024 20:00:00 GMT"}),
                         Answer(304)]}  # fmt: skip
    with replaying(answers) as server:
        fetcher = Fetcher(settings(server.base), sleep=Sleeps())
        first = await pull(conn, fetcher, DAY)
        second = await pull(conn, fetcher, DAY)
        await fetcher.aclose()
    assert first.listing is not None
    assert (first.listing.listings_new, first.listing.error) == (1, None)
    row = await conn.fetchrow("SELECT kind, source, raw FROM listings")
    assert (row["kind"], row["source"], bytes(row["raw"])) == ("hf_daily", server.base + HF_PATH, HF_BODY)
    assert server.requests[0].headers["user-agent"] == "papers-test/1"
    assert "if-none-match" not in server.requests[0].headers
    assert server.requests[1].headers["if-none-match"] == '"v1"'
    assert server.requests[1].headers["if-modified-since"] == "Mon, 11 Mar 2024 20:00:00 GMT"
    assert second.not_modified
    assert second.describe() == "hf:2024-03-11: not modified since the last pull (304)"
    assert await conn.fetchval("SELECT count(*) FROM listings") == 1


async def test_same_content_under_a_new_etag_is_unchanged(conn):
    answers = {RSS_PATH: [Answer(200, RSS_BODY, {"ETag": '"a"'}), Answer(200, RSS_BODY, {"ETag": '"b"'})]}
    with replaying(answers) as server:
        fetcher = Fetcher(settings(server.base), sleep=Sleeps())
        target = PullTarget.parse("arxiv:cs.LG")
        first, again = [await pull(conn, fetcher, target) for _ in range(2)]
        await fetcher.aclose()
    assert first.listing is not None and first.listing.listings_new == 1  # noqa: PT018 - narrows the Optional
    assert again.listing is not None and again.listing.unchanged  # noqa: PT018 - narrows the Optional
    assert await conn.fetchval("SELECT kind FROM listings") == "rss"


async def test_retries_back_off_and_honour_retry_after(conn):
    answers = {HF_PATH: [Answer(503), Answer(429, headers={"Retry-After": "7"}), Answer(502), Answer(200, HF_BODY)]}
    sleeps = Sleeps()
    with replaying(answers) as server:
        fetcher = Fetcher(settings(server.base, interval_seconds=0, backoff_seconds=2), sleep=sleeps)
        result = await pull(conn, fetcher, DAY)
        await fetcher.aclose()
    assert len(server.requests) == 4
    assert sleeps.seconds == [2, 7, 8]  # 2 × 2^0, the server's Retry-After, 2 × 2^2
    assert result.listing is not None and result.listing.entries > 0  # noqa: PT018 - narrows the Optional


async def test_a_site_that_never_answers_is_reported_not_raised(conn):
    answers = {HF_PATH: [Answer(500)], "/api/daily_papers?date=2024-03-12": [Answer(200, b"[]")]}
    with replaying(answers) as server:
        fetcher = Fetcher(settings(server.base, retries=2), sleep=Sleeps())
        failed, empty = await pull_all(conn, fetcher, [DAY, PullTarget.parse("hf:2024-03-12")])
        await fetcher.aclose()
    assert len([p for p in server.paths() if p == HF_PATH]) == 3
    assert failed.failed
    assert failed.error == f"{server.base}{HF_PATH}: no answer after 3 tries (HTTP 500)"
    assert (empty.failed, empty.note) == (False, "no papers listed that day")


async def test_requests_to_one_host_are_spaced(conn):
    sleeps = Sleeps()
    answers = {HF_PATH: [Answer(200, HF_BODY)], RSS_PATH: [Answer(200, RSS_BODY)]}
    with replaying(answers) as server:
        fetcher = Fetcher(settings(server.base, interval_seconds=3), sleep=sleeps)
        await pull_all(conn, fetcher, [DAY, PullTarget.parse("arxiv:cs.LG")])
        await fetcher.aclose()
    (wait,) = sleeps.seconds
    assert 0 < wait <= 3


async def test_a_schedule_runs_once_per_interval_across_two_workers(fresh_db):
    query = "/api/query?search_query=cat%3Acs.LG&start=0&max_results=100&sortBy=submittedDate"
    answers = {RSS_PATH: [Answer(200, RSS_BODY)], query: [Answer(200, ATOM_BODY)]}
    with replaying(answers) as server:
        pulls = settings(server.base, schedule=parse_schedule("arxiv:cs.LG@1d, arxiv-query:cat:cs.LG@6h"))
        now = 1_710_000_000.0
        workers = [Worker(fresh_db, name=f"w{i}", pulls=pulls, poll_seconds=0.01, clock=lambda: now) for i in range(2)]
        conns = [await db.connect(fresh_db) for _ in workers]
        try:
            queued = await asyncio.gather(*(w.schedule_pulls(c, now) for w, c in zip(workers, conns, strict=True)))
            assert sum(len(q) for q in queued) == 2  # one job per scheduled pull, whoever claimed it
            again = [await w.schedule_pulls(c, now + 3600) for w, c in zip(workers, conns, strict=True)]
            assert [len(q) for q in again] == [0, 0]  # same day, same 6-hour slot
            await asyncio.gather(*(w.run(once=True) for w in workers))
            assert sorted(server.paths()) == sorted([RSS_PATH, query])  # each pulled exactly once
            later = await workers[1].schedule_pulls(conns[1], now + 6 * 3600)
            assert len(later) == 1  # the next 6-hour slot of the query only
            kinds = await conns[0].fetch("SELECT kind FROM listings ORDER BY kind")
            assert [r["kind"] for r in kinds] == ["atom", "rss"]
            done = await conns[0].fetch("SELECT status, result FROM ingest_jobs WHERE status <> 'queued'")
            assert [r["status"] for r in done] == ["done", "done"]
        finally:
            for c in conns:
                await c.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hf", "--date", "2024-03-11", "--from", "2024-03-10"], "give --date or --from/--to, not both"),
        (["hf", "--from", "2024-03-12", "--to", "2024-03-10"], "--from must not be after --to"),
        (["arxiv"], "give --category CATEGORY or --query QUERY"),
        (["arxiv", "--category", "not a category"], "expected hf[:DATE], arxiv:CATEGORY"),
    ],
)
def test_cli_refuses_bad_targets(fresh_db, args, message):
    result = papers("pull", *args, "--no-embed", env={"DATABASE_URL": fresh_db})
    assert result.returncode == 1
    assert message in result.stderr


def test_cli_pulls_a_range_and_reports_each_day(fresh_db):
    answers = {HF_PATH: [Answer(200, HF_BODY)], "/api/daily_papers?date=2024-03-12": [Answer(200, b"[]")]}
    with replaying(answers) as server:
        env = {"DATABASE_URL": fresh_db, "PAPERS_HF_URL": server.base, "PAPERS_PULL_INTERVAL": "0"}
        result = papers("pull", "hf", "--from", "2024-03-11", "--to", "2024-03-12", "--no-embed", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("hf:2024-03-11: 1 new listing(s), ")
    assert lines[1] == "hf:2024-03-12: no papers listed that day"
    assert server.requests[0].headers["user-agent"].startswith("papers-api/")
