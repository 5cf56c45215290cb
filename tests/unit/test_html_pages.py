"""Saved HTML pages: a Hugging Face daily papers page, an arXiv /list/.../new page, and pages with no entries."""

from __future__ import annotations

import datetime as dt
import html
import json

import pytest

from ingest.parsers import detect_format, parse, parse_listings
from schema.errors import NotAListingError
from tests.unit.test_parsers import A1, A2, A4, T1, T2, T4, fixture_text


class TestHuggingFacePage:
    @pytest.fixture
    def text(self):
        return fixture_text("hf_papers_page.html")

    def test_detected(self, text):
        assert detect_format(text) == "html"

    def test_entries_from_the_embedded_daily_papers(self, text):
        listing = parse(text)
        assert (listing.kind, listing.listed_on, listing.heading) == ("html", dt.date(2024, 3, 11), "Daily Papers")
        assert [(e.title, e.abstract, e.arxiv_id) for e in listing.entries] == [
            (T1, A1, "2403.06001"),
            (T2, A2, "2403.06002"),  # the wrapped summary unwrapped
        ]
        (reject,) = listing.rejects
        assert "summary" in reject.reason
        assert json.loads(reject.raw)["paper"]["id"] == "2403.06003"

    def test_a_page_is_one_listing(self, text):
        (listing,) = parse_listings(text)
        assert listing.raw is None

    def test_empty_daily_papers_is_not_a_listing(self):
        props = html.escape(json.dumps({"dailyPapers": []}))
        page = f'<!doctype html><html><body><div data-target="DailyPapers" data-props="{props}"></div></body></html>'
        with pytest.raises(NotAListingError, match="DailyPapers list is empty"):
            parse(page)


class TestArxivListPage:
    @pytest.fixture
    def text(self):
        return fixture_text("arxiv_list_new.html")

    def test_entries(self, text):
        listing = parse(text)
        assert (listing.kind, listing.listed_on, listing.heading) == ("html", dt.date(2024, 3, 11), "Machine Learning")
        assert [(e.rank, e.arxiv_id, e.title) for e in listing.entries] == [
            (1, "2403.05201", T4),
            (2, "2403.05202", r"Bounds for $\ell_1$-Regularised Regression with $n \ll p$"),
        ]
        assert listing.entries[0].abstract == A4  # unwrapped from its 80-column lines

    def test_spans_and_the_entry_without_abstract(self, text):
        lines = text.split("\n")
        listing = parse(text)
        for entry in listing.entries:
            assert lines[entry.line_start - 1] == "<dt>"
            assert lines[entry.line_end - 1] == "</dd>"
        (reject,) = listing.rejects
        assert "no abstract" in reject.reason
        assert "cs/0601001" in reject.raw

    def test_older_dateline(self, text):
        older = text.replace("Showing new listings for Monday, 11 March 2024", "New submissions for Fri, 14 Jun 19")
        assert parse(older).listed_on == dt.date(2019, 6, 14)


class TestNoEntries:
    @pytest.mark.parametrize(
        "page",
        [
            "<!DOCTYPE html><html><head><title>Example</title></head><body><p>Hello.</p></body></html>",
            "<html><body><dl><dt>term</dt><dd>definition</dd></dl></body></html>",
        ],
    )
    def test_page_without_entries_says_what_was_looked_for(self, page):
        with pytest.raises(NotAListingError) as info:
            parse(page)
        assert str(info.value).startswith("an HTML page with no entries: neither a Hugging Face daily papers list")

    def test_list_of_titles_without_abstracts(self):
        # A list page saved in its "titles only" view: every <dd> lacks its p.mathjax.
        page = fixture_text("arxiv_list_new.html")
        stripped = "\n".join(line for line in page.split("\n") if "<p class='mathjax'>" not in line)
        with pytest.raises(NotAListingError, match="no usable entries: no abstract"):
            parse(stripped)
