"""A corpus with real vocabulary: papers recombined at bench time from the seed listings beside the repository.

The synthetic corpus (corpus.py) draws every word from about 200; real abstracts have tens of thousands of
distinct words with a long tail, which is what a keyword index's cost depends on. Each paper here takes a
seed title with about a third of its words swapped for words of other seed titles, and four to eight
sentences drawn from all seed abstracts. Nothing of the seeds is stored in the repository.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import numpy as np

from bench.harness.corpus import Corpus, SyntheticPaper, generate
from ingest.parsers import parse
from ingest.text import decode

# ../shared/seeds beside the repository; PAPERS_BENCH_SEEDS names another place (a git worktree kept elsewhere).
SEEDS = Path(os.environ.get("PAPERS_BENCH_SEEDS") or Path(__file__).resolve().parents[3] / "shared" / "seeds")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z][A-Za-z-]{3,}")
_STOP = frozenset(
    ("with", "from", "that", "this", "into", "over", "than", "their", "them", "these", "those", "what", "when", "which")
)


def seed_pairs(directory: Path = SEEDS) -> list[tuple[str, str]]:
    """(title, abstract) of every seed entry; exits with the reason when the seeds are absent."""
    if not directory.is_dir():
        raise SystemExit(f"seed listings not found at {directory} (../shared/seeds beside the repository)")
    pairs = []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        pairs += [(e.title, e.abstract) for e in parse(decode(path.read_bytes())).entries]
    return pairs


def real_vocabulary(n: int, *, seed: int = 7) -> Corpus:
    """n papers of recombined seed text, with the synthetic corpus's dates and clustered vectors."""
    pairs = seed_pairs()
    rng = np.random.default_rng(seed)
    sentences = [s for _, a in pairs for s in _SENTENCE.split(a) if len(s.split()) >= 5]
    title_words = [w for t, _ in pairs for w in t.split()]
    base = generate(n, seed=seed)
    papers = []
    for i, synthetic in enumerate(base.papers):
        words = pairs[int(rng.integers(len(pairs)))][0].split()
        swap = rng.random(len(words)) < 0.33
        title = " ".join(
            title_words[int(rng.integers(len(title_words)))] if s else w for w, s in zip(words, swap, strict=True)
        )
        picked = rng.integers(0, len(sentences), int(rng.integers(4, 9)))
        abstract = " ".join(sentences[int(k)] for k in picked)
        papers.append(SyntheticPaper(f"{title} ({i})", abstract, synthetic.listed_on, synthetic.topic))
    return Corpus(papers, base.vectors)


def queries(count: int, *, seed: int = 11) -> list[str]:
    """Queries of two to four words a reader would type: content words of one seed title."""
    rng = np.random.default_rng(seed)
    titles = [t for t, _ in seed_pairs()]
    found: list[str] = []
    while len(found) < count:
        words = [w.lower() for w in _WORD.findall(titles[int(rng.integers(len(titles)))])]
        if len(words) >= 2:
            k = min(len(words), int(rng.integers(2, 5)))
            found.append(" ".join(words[int(j)] for j in sorted(rng.choice(len(words), k, replace=False))))
    return found


def phrases(count: int, *, seed: int = 13) -> list[str]:
    """Quoted phrases a reader would type: two adjacent words of one seed title, neither a stop word."""
    rng = np.random.default_rng(seed)
    titles = [t for t, _ in seed_pairs()]
    found: list[str] = []
    while len(found) < count:
        words = [w.strip(".,:;!?()[]'\"") for w in titles[int(rng.integers(len(titles)))].split()]
        pairs = [(a, b) for a, b in itertools.pairwise(words) if _phrase_word(a) and _phrase_word(b)]
        if pairs:
            a, b = pairs[int(rng.integers(len(pairs)))]
            phrase = f'"{a.lower()} {b.lower()}"'
            if phrase not in found:
                found.append(phrase)
    return found


def _phrase_word(word: str) -> bool:
    return _WORD.fullmatch(word) is not None and word.lower() not in _STOP
