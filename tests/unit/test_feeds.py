"""arXiv feeds: Atom API answers, RSS 2.0 and RSS 1.0 daily feeds, and markup that is not a feed."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.parsers import detect_format, parse, parse_listings
from schema.errors import NotAListingError
from tests.unit.test_parsers import A1, T1, fixture_text

ATOM_HEAD = (
    '<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n<updated>2024-03-11T00:00:00-04:00</updated>\n'
)


def atom(*entries: str) -> str:
    return ATOM_HEAD + "".join(f"<entry>{e}</entry>\n" for e in entries) + "</feed>\n"


class TestAtom:
    @pytest.fixture
    def text(self):
        return fixture_text("arxiv_api.atom")

    def test_detected(self, text):
        assert detect_format(text) == "atom"

    def test_entries(self, text):
        listing = parse(text)
        assert listing.kind == "atom"
        assert listing.listed_on == dt.date(2024, 3, 11)  # the feed's `updated`, as printed
        assert [(e.rank, e.arxiv_id) for e in listing.entries] == [(1, "2403.05001"), (2, "cond-mat/0412498")]

    def test_wrapped_title_and_summary_unwrapped(self, text):
        first = parse(text).entries[0]
        assert first.title == "Sparse Routing Improves Long-Context Retrieval in Small Transformers"
        assert first.abstract.startswith(
            "Small transformers struggle to retrieve facts from long contexts because dense"
        )
        assert "\n" not in first.abstract
        assert first.abstract.endswith("twice their size.")

    def test_latex_kept_and_entities_decoded(self, text):
        second = parse(text).entries[1]
        assert second.title == r"Spin Glass Dynamics of $\mathcal{O}(N)$ Rotors with $1/r^{\alpha}$ Couplings"
        assert r"For $\alpha < d$ the model" in second.abstract

    def test_line_spans_cover_each_entry(self, text):
        lines = text.split("\n")
        listing = parse(text)
        for entry in listing.entries:
            assert lines[entry.line_start - 1].strip() == "<entry>"
            assert lines[entry.line_end - 1].strip() == "</entry>"
        (reject,) = listing.rejects
        assert reject.reason == "'summary' is missing or not a non-empty string"
        assert reject.raw.strip().startswith("<entry>")
        assert reject.raw.strip().endswith("</entry>")

    def test_one_listing_per_feed(self, text):
        (listing,) = parse_listings(text)
        assert listing.raw is None

    def test_no_entries_is_not_a_listing(self):
        with pytest.raises(NotAListingError, match="an atom feed with no entries"):
            parse(atom())

    def test_short_summaries_are_not_a_listing(self):
        with pytest.raises(NotAListingError, match="no abstract reads as one"):
            parse(atom("<title>Release 1.2</title><summary>Bug fixes.</summary>"))

    def test_entity_expansion_is_off(self):
        bomb = (
            '<?xml version="1.0"?>\n<!DOCTYPE feed [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&b;</title>'
            f"<summary>{A1}</summary></entry></feed>"
        )
        (entry,) = parse(bomb, "atom").entries
        assert entry.title == "&b;"  # the reference is left as written, never expanded

    def test_malformed_xml_names_its_line(self):
        with pytest.raises(NotAListingError) as info:
            parse(ATOM_HEAD + f"<entry><title>{T1}</title>\n<summary>{A1}</entry></feed>")
        assert str(info.value).startswith("malformed XML:")
        assert info.value.line == 5


class TestRss:
    def test_rss2_daily_feed(self):
        text = fixture_text("arxiv_rss2.xml")
        assert detect_format(text) == "rss"
        listing = parse(text)
        assert (listing.kind, listing.listed_on, listing.heading) == (
            "rss",
            dt.date(2024, 3, 11),
            "cs.LG updates on arXiv.org",
        )
        assert [e.arxiv_id for e in listing.entries] == ["2403.05101", "2402.11873"]  # versions stripped from guids
        first = listing.entries[0]
        assert first.abstract.startswith("Counting stacked and partially hidden objects")  # no "Announce Type" prefix

    def test_rss1_feed_of_before_2024(self):
        text = fixture_text("arxiv_rss1.rdf")
        assert detect_format(text) == "rss"
        listing = parse(text)
        assert listing.listed_on == dt.date(2019, 6, 12)  # dc:date as printed, not moved to UTC
        assert [(e.title, e.arxiv_id) for e in listing.entries] == [
            ("Federated Fine-Tuning of Speech Models on Edge Devices", "1906.04001"),
            ("Causal Probing of Arithmetic Circuits in Language Models", "1906.04002"),
        ]
        abstract = listing.entries[0].abstract
        assert abstract.startswith("Personalising speech recognition")
        assert "<p>" not in abstract

    def test_empty_channel_is_not_a_listing(self):
        text = '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
        with pytest.raises(NotAListingError, match="an rss feed with no entries"):
            parse(text)


class TestMarkupDetection:
    @pytest.mark.parametrize(
        ("text", "fmt"),
        [
            ("<!DOCTYPE html>\n<html><body></body></html>", "html"),
            ("<html lang='en'>", "html"),
            ("<?xml version='1.0'?>\n<!-- c -->\n<rdf:RDF xmlns:rdf='x'>", "rss"),
        ],
    )
    def test_roots(self, text, fmt):
        assert detect_format(text) == fmt

    def test_other_xml_says_what_it_is(self):
        with pytest.raises(NotAListingError, match=r"markup whose first element is <svg>"):
            detect_format('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>')
