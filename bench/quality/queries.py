"""Labelled queries built deterministically from seed papers: reworded titles, abstract sentences, descriptions.

The relevant document of each query is the paper it was built from. Only the generated queries and our own
descriptions appear in the report, never the seed text itself.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence

from bench.quality.seeds import Paper

KINDS = ("reworded title", "abstract sentence")
ACRONYM_PREFIX = re.compile(r"^\s*[^\s:]+:\s+")  # "C3oT: ..." -> "..."; multi-word heads are kept
WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
# Dropped from reworded titles and from title keywords: words that name no topic.
_STOP_TEXT = """a an the of for and or in on with to via by from at as is are be been its it their our we you your
    this that these those into towards toward using through do does can how what when why which all need
    about than then"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
# Multi-word swaps first (on the lower-cased title), then single words; one pass, so swaps never chain.
PHRASE_SYNONYMS = (
    ("large language models", "llms"),
    ("large language model", "llm"),
    ("vision-language models", "vlms"),
    ("vision-language model", "vlm"),
    ("reinforcement learning", "rl"),
    ("chain-of-thought", "cot"),
    ("neural networks", "neural nets"),
)
WORD_SYNONYMS = {
    "model": "network",
    "models": "networks",
    "learning": "training",
    "learn": "train",
    "efficient": "fast",
    "efficiently": "quickly",
    "method": "approach",
    "methods": "approaches",
    "generation": "synthesis",
    "generating": "synthesizing",
    "improving": "boosting",
    "improve": "boost",
    "enhancing": "boosting",
    "enhance": "boost",
    "framework": "system",
    "image": "picture",
    "images": "pictures",
    "evaluation": "assessment",
    "evaluating": "assessing",
    "understanding": "comprehension",
    "benchmark": "testbed",
    "dataset": "corpus",
    "datasets": "corpora",
    "robust": "resilient",
    "scalable": "scaling",
    "novel": "new",
}
# The "done when" check: hand-written descriptions (our own wording) of three seed papers, found by the
# start of their title. Each must reach the top 5 in semantic and hybrid search.
DESCRIPTIONS = (
    ("C3oT:", "make a chatbot write a much shorter step-by-step explanation before its answer without losing accuracy"),
    (
        "LatentSync:",
        "talking head video where the mouth movements follow a speech recording,"
        " made by a diffusion network in a compressed space",
    ),
    (
        "Just One Byte",
        "fine-tune a language model across many computers sending only one byte per update by sharing a random seed",
    ),
)


@dataclasses.dataclass(frozen=True)
class Query:
    """A query text and the public id of its one relevant paper."""

    text: str
    target: str


@dataclasses.dataclass(frozen=True)
class Described:
    """A hand-written description and the seed paper it describes (None when the seeds lack it)."""

    prefix: str
    text: str
    paper: Paper | None


@dataclasses.dataclass
class QuerySet:
    """The labelled queries of one run."""

    seed: int
    sampled: int
    labelled: dict[str, list[Query]]
    described: list[Described]

    def texts(self) -> list[str]:
        """Every query text: the labelled ones, then the descriptions."""
        return [q.text for kind in KINDS for q in self.labelled[kind]] + [d.text for d in self.described]


def reworded_title(title: str, rng: random.Random) -> str | None:
    """The title without an 'Acronym:' head, lower-cased, synonyms swapped, stop words dropped, shuffled."""
    text = ACRONYM_PREFIX.sub("", title).lower()
    for phrase, swap in PHRASE_SYNONYMS:
        text = re.sub(rf"\b{re.escape(phrase)}\b", swap, text)
    words = [WORD_SYNONYMS.get(w, w) for w in WORD.findall(text) if w not in STOP_WORDS]
    if len(words) < 2:
        return None
    rng.shuffle(words)
    return " ".join(words)


def abstract_sentence(abstract: str, rng: random.Random) -> str | None:
    """One sentence from the middle of the abstract: never the first, the last only when there are two."""
    sentences = [s.strip() for s in SENTENCE_END.split(abstract.strip()) if s.strip()]
    if len(sentences) < 2:
        return None
    middle = sentences[1:-1] if len(sentences) >= 3 else sentences[1:]
    long_enough = [s for s in middle if len(s.split()) >= 6]
    return rng.choice(long_enough or middle)


def build(papers: Sequence[Paper], *, sample: int, seed: int) -> QuerySet:
    """Two queries from each of `sample` papers drawn with `seed`, and the described papers looked up."""
    rng = random.Random(seed)
    drawn = rng.sample(list(papers), min(sample, len(papers)))
    labelled: dict[str, list[Query]] = {kind: [] for kind in KINDS}
    for paper in drawn:  # one rng for both kinds, in this order, so a seed always gives the same queries
        title = reworded_title(paper.title, rng)
        if title:
            labelled["reworded title"].append(Query(title, paper.id))
        sentence = abstract_sentence(paper.abstract, rng)
        if sentence:
            labelled["abstract sentence"].append(Query(sentence, paper.id))
    described = [
        Described(prefix, text, next((p for p in papers if p.title.startswith(prefix)), None))
        for prefix, text in DESCRIPTIONS
    ]
    return QuerySet(seed, len(drawn), labelled, described)
