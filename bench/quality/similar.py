"""Section 2: similar_papers against two label-free notions of "related", with a random baseline."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence

import asyncpg

from api.services.search import QueryEmbeddings, similar_papers
from bench.harness.report import fmt, table
from bench.quality.metrics import K, graded, ms
from bench.quality.queries import STOP_WORDS
from bench.quality.seeds import Listing, Paper, Seeds

SAME_LISTING = "same listing"
RARE_WORDS = "shared rare title words"
SIMILAR = "similar_papers"
RANDOM = "random"
MIN_SHARED = 2  # two shared rare title words make a strong signal of a common topic; one is often chance

Gains = dict[str, dict[str, float]]  # query paper id -> related paper id -> gain


def title_keywords(paper: Paper) -> frozenset[str]:
    """A title's stems that can be keywords: at least 3 characters, not a number, not a stop word."""
    return frozenset(s for s in paper.stems if len(s) >= 3 and not s.lstrip("-").isdigit() and s not in STOP_WORDS)


@dataclasses.dataclass(frozen=True)
class RareWords:
    """Title keywords found in at least 2 and at most `cap` titles, with their IDF = ln(N/df)."""

    share: float
    cap: int
    idf: dict[str, float]


def rare_words(papers: Sequence[Paper], share: float) -> RareWords:
    """The rare title keywords: in at least two titles and at most `share` of them."""
    df = Counter(s for p in papers for s in title_keywords(p))
    cap = max(2, int(share * len(papers)))
    return RareWords(share, cap, {s: math.log(len(papers) / c) for s, c in df.items() if 2 <= c <= cap})


def rare_word_gains(papers: Sequence[Paper], rare: RareWords) -> Gains:
    """Related = titles share at least two rare keywords; the gain is the sum of the shared keywords' IDF."""
    keywords = {p.id: title_keywords(p) & rare.idf.keys() for p in papers}
    gains: Gains = {}
    for p in papers:
        shared = ((o.id, keywords[p.id] & keywords[o.id]) for o in papers if o.key != p.key)
        gains[p.id] = {oid: sum(rare.idf[s] for s in words) for oid, words in shared if len(words) >= MIN_SHARED}
    return gains


def listing_gains(papers: Sequence[Paper]) -> Gains:
    """Related = in a listing together; every related paper has gain 1."""
    return {p.id: {o.id: 1.0 for o in papers if o.key != p.key and o.listings & p.listings} for p in papers}


@dataclasses.dataclass(frozen=True)
class ProxyRow:
    """One method's scores against one relatedness proxy."""

    proxy: str
    queried: int
    avg_related: float
    method: str
    ndcg: float
    recall: float


@dataclasses.dataclass(frozen=True)
class ListingRow:
    """How many of a listing's papers' similar papers come from the same listing, against chance."""

    listing: Listing
    base_rate: float
    share: float

    @property
    def lift(self) -> float:
        """share / base rate: 1 means the listing is not topical."""
        return self.share / self.base_rate


@dataclasses.dataclass
class SimilarResult:
    """similar_papers against the proxies and the random baseline, latency, and per-listing lift."""

    papers: int
    rare: RareWords
    draws: int
    rows: list[ProxyRow]
    latency: list[float]
    listings: list[ListingRow]

    def row(self, proxy: str, method: str) -> ProxyRow:
        """The row of one proxy and method."""
        return next(r for r in self.rows if r.proxy == proxy and r.method == method)


def _score(
    proxy: str,
    gains: Gains,
    similar: dict[str, list[str]],
    draws: int,
    rng: random.Random,
) -> list[ProxyRow]:
    queried = [pid for pid, g in gains.items() if g]  # papers with at least one related paper
    ids = list(gains)
    sims = [graded(similar[pid], gains[pid]) for pid in queried]
    rand = []
    for pid in queried:
        others = [o for o in ids if o != pid]
        rand += [graded(rng.sample(others, K), gains[pid]) for _ in range(draws)]
    avg = statistics.mean(len(gains[pid]) for pid in queried) if queried else 0.0
    return [
        ProxyRow(
            proxy,
            len(queried),
            avg,
            method,
            statistics.mean(v[0] for v in values),
            statistics.mean(v[1] for v in values),
        )
        for method, values in ((SIMILAR, sims), (RANDOM, rand))
    ]


async def measure(
    conn: asyncpg.Connection, embeddings: QueryEmbeddings, seeds: Seeds, *, rare_share: float, draws: int, seed: int
) -> SimilarResult:
    """Ask similar_papers for every seed paper's top 10 and score it against both proxies and random rankings."""
    similar: dict[str, list[str]] = {}
    latency = []
    for p in seeds.papers:
        started = time.perf_counter()
        hits = await similar_papers(conn, embeddings, p.id, limit=K)
        latency.append(time.perf_counter() - started)
        similar[p.id] = [h.id for h in hits]
    rare = rare_words(seeds.papers, rare_share)
    rng = random.Random(seed + 1)  # its own stream: the baseline does not shift the queries of section 1
    rows = _score(SAME_LISTING, listing_gains(seeds.papers), similar, draws, rng)
    rows += _score(RARE_WORDS, rare_word_gains(seeds.papers, rare), similar, draws, rng)
    n = len(seeds.papers)
    listings = [
        ListingRow(
            lst,
            (len(lst.members) - 1) / (n - 1),
            statistics.mean(sum(d in lst.members for d in similar[pid]) / K for pid in lst.members),
        )
        for lst in seeds.listings
        if lst.members
    ]
    return SimilarResult(n, rare, draws, rows, latency, listings)


def _tables(r: SimilarResult) -> tuple[str, str]:
    """The proxy table and the per-listing table."""
    rows = [
        (
            x.proxy,
            f"{x.queried}/{r.papers}",
            fmt(x.avg_related, 1),
            x.method if x.method == SIMILAR else f"random ({r.draws} draws)",
            fmt(x.ndcg, 3),
            fmt(x.recall, 3),
        )
        for x in r.rows
    ]
    headers = ("relatedness proxy", "query papers", "avg #related", "method", "nDCG@10", "recall@10")
    listings = [
        (
            x.listing.id,
            x.listing.day or "-",
            len(x.listing.members),
            fmt(x.base_rate, 3),
            fmt(x.share, 3),
            fmt(x.lift, 3),
        )
        for x in r.listings
    ]
    listing_headers = ("listing", "date", "papers", "random share", "similar_papers share", "lift")
    return table(headers, rows, align="lrrlrr"), table(listing_headers, listings)


def render(r: SimilarResult) -> str:
    """Section 2 of the report."""
    proxies, listings = _tables(r)
    return f"""## 2. Similar-paper quality

There are no human labels, so "related" is approximated two ways, each query paper being every seed paper that has \
at least one related paper:

- **{SAME_LISTING}**: related = appears in a listing together with the query paper. This is a *weak* proxy: a daily \
listing collects whatever was posted that day, so most pairs in it are not topically related, and a big listing \
makes many papers "related" to everything in it; a good similarity function beats random here only to the extent \
that listings happen to be topical (the per-listing table below shows how far each seed listing is).
- **{RARE_WORDS}** (stronger, still label-free): the titles' Snowball stems (PostgreSQL's `english` configuration \
via `ts_debug`, stop words dropped, a hyphenated word kept as one stem rather than also its parts, at least 3 \
characters) that appear in at least 2 and at most {r.rare.cap} titles ({r.rare.share:.0%} of {r.papers}) are *rare \
keywords*, with IDF = ln(N/df). Two papers are related when their titles share **at least {MIN_SHARED}** rare \
keywords; the graded gain is the sum of the shared keywords' IDF (so sharing two rare words counts more than \
sharing two mid-frequency stems). Shared rare words are a strong signal of a common topic; the proxy misses related \
papers worded differently (its recall is low) and it is lexical, so it slightly favours whatever sees the title \
words (the title is part of the embedded text).

nDCG@10 uses the graded gains (1 for {SAME_LISTING}); recall@10 is capped: related papers in the top 10 / \
min(#related, 10) (for {SAME_LISTING} this equals precision@10). The random baseline ranks 10 other papers \
uniformly at random.

{proxies}

`similar_papers` latency: p50 {ms(r.latency, 50):.1f} ms, p95 {ms(r.latency, 95):.1f} ms.

Per listing: the share of a member paper's 10 similar papers that come from the same listing, against the share \
expected at random (listing size - 1) / (papers - 1). A lift near 1 means the listing is not topical; a high lift \
means its papers share a topic (for instance a listing that is really a search-results page).

{listings}"""


def conclusion(r: SimilarResult) -> str:
    """The similar-papers bullet: how far above random each proxy puts similar_papers, and how topical listings are."""
    parts = []
    for proxy in (RARE_WORDS, SAME_LISTING):
        sim, rand = r.row(proxy, SIMILAR), r.row(proxy, RANDOM)
        ratio = f"{sim.ndcg / rand.ndcg:.1f}x" if rand.ndcg else "random scores 0"
        verb = "beats" if sim.ndcg > rand.ndcg else "does not beat"
        parts.append(f"{verb} random on the {proxy} proxy (nDCG@10 {sim.ndcg:.2f} vs {rand.ndcg:.3f}, {ratio})")
    lifts = sorted(r.listings, key=lambda x: x.lift)
    return (
        f"- **Similar papers**: `similar_papers` {'; it '.join(parts)}. The {SAME_LISTING} proxy measures how"
        f" topical each listing is as much as similarity: the share of a paper's similar papers that come from its"
        f" own listing is {lifts[0].lift:.1f}x ({lifts[0].listing.id}) to {lifts[-1].lift:.1f}x"
        f" ({lifts[-1].listing.id}) the share expected at random."
    )
