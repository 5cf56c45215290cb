"""Snippets made in the API process: which words are marked, which fragments are shown, and that the text is safe."""

from __future__ import annotations

import html
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from api.services import snippets
from api.services.snippets import ELLIPSIS, FRAGMENT_CHARS, MAX_FRAGMENTS, SCANNED_CHARS, Highlighter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_SUFFIX_LIST = """s es ed ing ly y ies ied ation ational ator ization izer iveness ivity ability ibility fulness ousness
    ence ency ance ancy ical icate ful ness ment al ally ism ist ogy ogist bly ably er est eed ingly edly"""
SUFFIXES = _SUFFIX_LIST.split()
_IRREGULAR_LIST = "dying lying tying skis skies idly gently ugly early only singly news atlas cosmos bias generation"
IRREGULAR = _IRREGULAR_LIST.split()
MARK = re.compile(r"<mark>(.*?)</mark>")


def fixture_words() -> set[str]:
    """Every word of the test fixtures, lower-cased, and short words ending in a double letter with -ed or -ing."""
    text = " ".join(p.read_text(errors="replace") for p in FIXTURES.iterdir() if p.is_file())
    ends = ("ed", "ing")
    short = {f"{h}{v}{c}{c}{e}" for h in ("", "b", "st") for v in "aeiou" for c in "bdfglmnprstz" for e in ends}
    return {w.lower() for w in re.findall(r"[^\W_]+", text)} | short


def test_a_word_always_starts_with_its_stem_but_for_the_last_two_letters():
    # The rule the candidate search rests on (Highlighter.__init__): checked on every fixture word with English
    # suffixes added, and the stemmer's own exceptions.
    words = fixture_words()
    words |= {w + s for w in list(words) for s in SUFFIXES} | set(IRREGULAR)
    stems = snippets.stems(sorted(words))
    broken = [(w, s) for w, s in zip(sorted(words), stems, strict=True) if not w.startswith(s[: max(len(s) - 2, 1)])]
    assert len(words) > 20_000
    assert broken == []


def test_marks_every_form_of_the_query_words_and_no_stop_word():
    text = "Reward models rewarded the modelling of rewards; the other model was not a rewarding one."
    out = Highlighter("the reward model").snippet(text)
    assert MARK.findall(out) == ["Reward", "models", "rewarded", "modelling", "rewards", "model", "rewarding"]
    assert "<mark>the</mark>" not in out.lower()
    assert Highlighter("the of and").snippet(text) == html.escape(text, quote=False)  # only stop words: none marked


def test_words_inside_longer_words_and_compounds():
    out = Highlighter("supervised tuning").snippet("Self-supervised fine-tuning beats unsupervised retuning.")
    assert MARK.findall(out) == ["supervised", "tuning"]  # parts of a compound, never the middle of a word


def test_abstract_text_is_escaped_so_a_snippet_is_safe_html():
    out = Highlighter("model").snippet('A model <script>alert("x")</script> & p < 0.05 for the model.')
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    assert "&amp; p &lt; 0.05" in out
    assert MARK.sub("", out).count("<") == 0


def test_fragments_show_distinct_terms_far_apart_and_mark_elisions():
    filler = " ".join(f"w{i}" for i in range(200))
    text = f"Opening words about graphs. {filler} Diffusion appears here. {filler} Closing words."
    out = Highlighter("graphs diffusion").snippet(text)
    parts = out.split(f" {ELLIPSIS} ")
    assert len(parts) == MAX_FRAGMENTS
    assert "<mark>graphs</mark>" in parts[0]
    assert "<mark>Diffusion</mark>" in parts[1]
    assert not out.startswith(ELLIPSIS)
    assert out.endswith(ELLIPSIS)
    assert all(len(MARK.sub(r"\1", p).strip(ELLIPSIS + " ")) <= FRAGMENT_CHARS for p in parts)


def test_no_match_in_the_abstract_shows_its_opening():
    text = "First sentence here. " + "word " * 100
    out = Highlighter("title-only").snippet(text)
    assert out.startswith("First sentence here.")
    assert out.endswith(ELLIPSIS)
    assert "<mark>" not in out
    assert Highlighter("x").snippet("Short.") == "Short."
    assert Highlighter("x").snippet("") == ""


def test_a_huge_abstract_is_searched_in_its_opening_only():
    # A listing may carry an abstract of any length; a query of single letters makes every word a candidate.
    opening = "Reward models are trained on preferences. " * 10
    text = opening + "filler " * (SCANNED_CHARS // 7) + "a late model " * 20_000
    out = Highlighter("model b c d e f g h").snippet(text)
    assert "<mark>models</mark>" in out
    assert out.endswith(ELLIPSIS)
    assert "late" not in out
    assert len(out) < 3 * FRAGMENT_CHARS


def test_a_letter_whose_lower_case_is_longer_keeps_the_marks_in_place():
    out = Highlighter("model").snippet("İİİ model İ models")
    assert MARK.findall(out) == ["model", "models"]


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab cdé<>&\"'.-_İ\n")), max_size=400),
    st.text(alphabet=st.sampled_from(list("abcdé -")), max_size=20),
)
def test_a_snippet_is_the_abstract_escaped_and_cut_with_only_query_words_marked(text, query):
    marks = Highlighter(query)
    out = marks.snippet(text)
    for word in MARK.findall(out):
        assert snippets.terms(html.unescape(word)) <= marks.terms
    plain = html.unescape(MARK.sub(r"\1", out))
    for piece in plain.split(ELLIPSIS):
        assert piece.strip() in text  # nothing invented, only elided
    assert MARK.sub("", out).count("<") == 0
