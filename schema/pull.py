"""Contracts for pulling listings from where they are published: targets, schedules and settings."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

import msgspec

Site = Literal["hf", "arxiv"]
_CATEGORY = re.compile(r"^[a-z-]+(?:\.[A-Za-z-]+)?$")
_EVERY = re.compile(r"^(\d+)\s*([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_USER_AGENT = "papers-api/0.1 (listing metadata service; https://github.com/papers-api)"


class PullTarget(msgspec.Struct, frozen=True):
    """One thing to pull: a Hugging Face day, an arXiv category's daily feed, or an arXiv API query."""

    site: Site
    day: dt.date | None = None  # hf: the day (None: today, in UTC, when the pull runs)
    category: str | None = None  # arxiv: the RSS feed of this category
    query: str | None = None  # arxiv: an API search query instead
    max_results: int = 100

    @property
    def name(self) -> str:
        """How reports and schedules name the target: `hf:2024-03-11`, `arxiv:cs.LG`, `arxiv-query:...`."""
        if self.site == "hf":
            return f"hf:{self.day.isoformat() if self.day else 'today'}"
        return f"arxiv:{self.category}" if self.category else f"arxiv-query:{self.query}"

    @classmethod
    def parse(cls, spec: str) -> PullTarget:
        """Read `hf`, `hf:2024-03-11`, `arxiv:cs.LG` or `arxiv-query:QUERY`; ValueError says what is wrong."""
        site, _, arg = spec.strip().partition(":")
        if site == "hf":
            try:
                return cls("hf", dt.date.fromisoformat(arg) if arg and arg != "today" else None)
            except ValueError:
                raise ValueError(f"expected hf:YYYY-MM-DD, got {spec!r}") from None
        if site == "arxiv" and _CATEGORY.match(arg):
            return cls("arxiv", category=arg)
        if site == "arxiv-query" and arg.strip():
            return cls("arxiv", query=arg.strip())
        raise ValueError(f"expected hf[:DATE], arxiv:CATEGORY or arxiv-query:QUERY, got {spec!r}")


class ScheduledPull(msgspec.Struct, frozen=True):
    """A target pulled once per interval by whichever worker gets to it first."""

    target: PullTarget
    every_seconds: int


def parse_schedule(raw: str) -> tuple[ScheduledPull, ...]:
    """Read `arxiv:cs.LG@12h,hf@1d` (interval in s, m, h or d); ValueError says what is wrong."""
    pulls = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        spec, sep, every = part.rpartition("@")
        match = _EVERY.match(every.strip())
        if not sep or not match or int(match.group(1)) < 1:
            raise ValueError(f"expected TARGET@INTERVAL such as arxiv:cs.LG@12h, got {part!r}")
        pulls.append(ScheduledPull(PullTarget.parse(spec), int(match.group(1)) * _SECONDS[match.group(2)]))
    return tuple(pulls)


class PullSettings(msgspec.Struct, frozen=True):
    """Where the sites are, how politely to ask them, and what the workers pull on a schedule."""

    hf_url: str = "https://huggingface.co"
    arxiv_rss_url: str = "https://rss.arxiv.org"
    arxiv_api_url: str = "https://export.arxiv.org"
    user_agent: str = DEFAULT_USER_AGENT
    interval_seconds: float = 3.0  # between two requests to one host (arXiv asks for 3 s)
    retries: int = 4
    backoff_seconds: float = 2.0
    schedule: tuple[ScheduledPull, ...] = ()
