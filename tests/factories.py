"""Invented listings in every supported format, for tests (never third-party text)."""

from __future__ import annotations

import json
import random

_TOPICS = [
    "Sparse Routing",
    "Contrastive Retrieval",
    "Diffusion Priors",
    "Token Pruning",
    "Graph Rewiring",
    "Reward Shaping",
    "Speculative Decoding",
    "Neural Fields",
    "Curriculum Search",
    "Latent Planning",
]
_TAILS = [
    "for Long-Context Models",
    "in Low-Resource Settings",
    "without Labels",
    "at Scale",
    "for Embodied Agents",
    "under Distribution Shift",
    "with Guarantees",
    "for Code Generation",
]
# Prose is easier to read and edit than a 37-item list literal.
_WORDS = (  # noqa: SIM905
    "we propose a method that improves model quality while reducing compute across several "
    "benchmarks and settings our analysis shows consistent gains over strong baselines and "
    "ablations confirm each component matters results hold for language vision and speech"
).split()


def paper(i: int, *, words: int = 60, seed: int = 0) -> tuple[str, str]:
    """An invented (title, abstract) pair; the same i gives the same title."""
    title = f"{_TOPICS[i % len(_TOPICS)]} {_TAILS[(i // len(_TOPICS)) % len(_TAILS)]} (Study {i})"
    rng = random.Random(i * 7919 + seed)
    body = " ".join(rng.choice(_WORDS) for _ in range(words))
    return title, f"Paper {i}: {body.capitalize()}."


def page(pairs: list[tuple[str, str]], *, label: str | None = "Mar 11", layout: str = "blocks") -> str:
    """A scraped listing page with chrome, in the blank-line ("blocks") or one-field-per-line layout."""
    if layout == "blocks":
        head = [
            "new",
            "Get trending papers in your email inbox!",
            "Subscribe",
            "Daily Papers",
            "byAK and the research community",
        ] + ([label] if label else [])
        body = [field for pair in pairs for field in pair]
        return "\n\n".join(head + body) + "\n"
    first_title, first_abstract = pairs[0]
    lines = [
        "Get trending papers in your email inbox once a day!",
        "Get trending papers in your email inbox!",
        *([label] if label else []),
        f"Subscribe{first_title}",
        first_abstract,
    ] + [field for pair in pairs[1:] for field in pair]
    return "\n".join(lines)


def hf_daily(items: list[tuple[str, str, str | None]], day: str = "2024-03-11") -> str:
    """A Hugging Face daily-papers payload: (title, abstract, arXiv id) items listed on day."""
    return json.dumps(
        [
            {
                "paper": {
                    "id": arxiv,
                    "title": title,
                    "summary": abstract,
                    "publishedAt": f"{day}T00:00:00.000Z",
                    "authors": [{"name": "Someone"}],
                },
                "publishedAt": f"{day}T13:00:00.000Z",
                "title": title,
                "numComments": 0,
            }
            for title, abstract, arxiv in items
        ],
        indent=2,
    )


def jsonl(rows: list[dict]) -> str:
    """JSON Lines for bulk loads."""
    return "\n".join(json.dumps(row) for row in rows) + "\n"
