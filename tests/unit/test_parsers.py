"""Unit tests for the listing parsers: scraped pages, HF daily-papers JSON and JSON Lines."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import dates
from ingest.parsers import detect_format, parse
from ingest.parsers.page import MOSTLY_NOT_PAIRS, looks_like_abstract
from ingest.text import decode, normalize
from schema.errors import InvalidInputError, NotAListingError
from schema.ingest import FORMATS, ParsedEntry, ParsedListing, Reject

FIXTURES = Path(__file__).parents[1] / "fixtures"


def fixture_text(name: str) -> str:
    return decode((FIXTURES / name).read_bytes())


# Invented titles and abstracts for inline pages.
T1 = "Sparse Routing Improves Long-Context Retrieval in Small Transformers"
A1 = (
    "Small transformers struggle to retrieve facts from long contexts because dense attention spreads its "
    "capacity across every position. We add a sparse routing layer that selects a handful of candidate "
    "spans before attention is computed and train it jointly with the model. On synthetic needle tasks and "
    "two document question answering benchmarks the routed models match dense models twice their size."
)
T2 = "A Benchmark for Counting Objects in Cluttered Warehouse Images"
A2 = (
    "Counting stacked and partially hidden objects is a routine task in warehouses, yet existing counting "
    "benchmarks show tidy scenes with well separated items. We collect twelve thousand photographs of real "
    "shelves, pallets and bins with point annotations for every visible item. Current class-agnostic "
    "counters lose more than half their accuracy on this data, and errors grow quickly with occlusion."
)
T3 = "Learning Rate Warmup Is Implicit Gradient Clipping"
A3 = (
    "Learning rate warmup is used almost universally when training large networks, but the reason it helps "
    "remains debated. We show analytically and empirically that warmup limits the size of early parameter "
    "updates in the same way as adaptive gradient clipping. Replacing warmup with a matched clipping "
    "schedule reproduces its benefits on language and vision models across a range of batch sizes."
)
T4 = "Federated Fine-Tuning of Speech Models on Edge Devices"
A4 = (
    "Personalising speech recognition on phones requires adapting large models without collecting user "
    "audio on a server. We combine low-rank adapters with federated averaging and a memory-aware schedule "
    "that fits training into the idle time of commodity devices. In a simulated population of ten thousand "
    "users the approach lowers word error rate for accented speakers while keeping uploads small."
)
T5 = "Causal Probing of Arithmetic Circuits in Language Models"
A5 = (
    "Language models can add and multiply small numbers, but it is unclear which components carry out the "
    "computation. We use causal interventions on attention heads and feed-forward neurons to locate a "
    "compact circuit responsible for carrying digits. Ablating the circuit removes arithmetic ability while "
    "leaving other skills intact, and patching it into a smaller model partially transfers the skill."
)
ABSTRACTS = [A1, A2, A3, A4, A5]
TITLES = [T1, T2, T3, T4, T5]

HEADER = [
    "new",
    "Get trending papers in your email inbox!",
    "Subscribe",
    "byAK and the research community",
    "Daily Papers",
    "Mar 11",
]


def block_page(*fields: str, header: list[str] = HEADER) -> str:
    """Fields separated by blank lines, after the header (also blank-line separated)."""
    return "\n\n".join([*header, *fields])


def line_page(*fields: str, header: list[str] = HEADER) -> str:
    """One field per line, no blank lines."""
    return "\n".join([*header, *fields])


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of text containing needle."""
    for number, line in enumerate(text.split("\n"), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def spans(listing: ParsedListing) -> list[tuple[int, int]]:
    return [(e.line_start, e.line_end) for e in listing.entries]


def test_abstract_constants_look_like_abstracts():
    for abstract in ABSTRACTS:
        assert len(abstract.split()) >= 40
        assert looks_like_abstract(abstract)
    for title in TITLES:
        assert not looks_like_abstract(title)


# =========================================================================== page: fixtures


class TestPageBlocksFixture:
    @pytest.fixture
    def text(self) -> str:
        return fixture_text("page_blocks.txt")

    @pytest.fixture
    def listing(self, text) -> ParsedListing:
        return parse(text)

    def test_detected_as_page(self, text):
        assert detect_format(text) == "page"

    def test_header(self, listing):
        assert isinstance(listing, ParsedListing)
        assert listing.kind == "page"
        assert listing.heading == "Daily Papers"
        assert listing.date_label == "Mar 11"
        assert listing.listed_on is None

    def test_entries(self, listing):
        assert [e.title for e in listing.entries] == [
            "Sparse Lattice Adapters for Low-Resource Speech Translation",
            "Counterfactual Rollouts Teach Small Models to Plan",
            "Tides & Turbidity: Mapping Coastal Sediment Plumes from Satellite Time Series",
            "Self-Correcting Retrieval for Long-Horizon Question Answering",
        ]
        assert [e.rank for e in listing.entries] == [1, 2, 3, 4]
        assert listing.rejects == []

    def test_line_spans(self, listing, text):
        assert spans(listing) == [(13, 15), (17, 22), (24, 26), (28, 30)]
        lines = text.split("\n")
        for entry in listing.entries:
            assert normalize(lines[entry.line_start - 1]) == entry.title
            assert entry.abstract.endswith(normalize(lines[entry.line_end - 1]))

    def test_wrapped_abstract_joined_with_space(self, listing):
        abstract = listing.entries[1].abstract
        assert "\n" not in abstract
        assert "simulates the resulting failure, and asks" in abstract
        assert "during training. We propose" in abstract
        assert abstract.startswith("Small language models often fail")
        assert abstract.endswith("without further tuning.")

    def test_abstracts_normalized(self, listing):
        for entry in listing.entries:
            assert entry.abstract == normalize(entry.abstract)
            assert looks_like_abstract(entry.abstract)
            assert entry.arxiv_id is None
            assert entry.listed_on is None

    def test_chrome_not_in_entries(self, listing):
        chrome = {"new", "subscribe", "daily papers", "mar 11", "byak and the research community"}
        for entry in listing.entries:
            assert entry.title.casefold() not in chrome
            assert "Get trending papers" not in entry.title

    def test_crlf_input(self, text, listing):
        raw = text.replace("\n", "\r\n").encode("utf-8")
        assert parse(decode(raw)) == listing
        # Even undecoded CRLF text parses to the same entries.
        direct = parse(text.replace("\n", "\r\n"))
        assert direct.entries == listing.entries
        assert direct.date_label == "Mar 11"
        assert direct.heading == "Daily Papers"

    def test_trailing_blank_lines_are_harmless(self, text, listing):
        assert parse(text + "\n\n\n").entries == listing.entries

    def test_utf8_bom_and_utf16(self, text, listing):
        assert parse(decode(b"\xef\xbb\xbf" + text.encode("utf-8"))) == listing
        assert parse(decode(text.encode("utf-16"))) == listing


class TestPageLinesFixture:
    @pytest.fixture
    def text(self) -> str:
        return fixture_text("page_lines.txt")

    @pytest.fixture
    def listing(self, text) -> ParsedListing:
        return parse(text)

    def test_has_no_blank_lines(self, text):
        assert all(line.strip() for line in text.split("\n"))

    def test_header(self, listing):
        assert listing.kind == "page"
        assert listing.heading == "Daily Papers"
        assert listing.date_label == "Mar 11"

    def test_glued_subscribe_removed_from_first_title(self, listing):
        assert listing.entries[0].title == "Graph Neural Solvers for Sparse Linear Systems"

    def test_entries(self, listing):
        assert [e.title for e in listing.entries] == [
            "Graph Neural Solvers for Sparse Linear Systems",
            "Quiet Tokens: Detecting Unused Vocabulary in Pretrained Language Models",
            "Bench & Field: Evaluating Soil Moisture Sensors Under Freeze-Thaw Cycles",
            "Curriculum Distillation for Multilingual Code Models",
        ]
        assert [e.rank for e in listing.entries] == [1, 2, 3, 4]
        assert spans(listing) == [(6, 7), (8, 9), (10, 11), (12, 13)]
        assert listing.rejects == []

    def test_abstracts(self, listing, text):
        lines = text.split("\n")
        for entry in listing.entries:
            assert entry.abstract == lines[entry.line_end - 1]
            assert looks_like_abstract(entry.abstract)

    def test_crlf_input(self, text, listing):
        assert parse(decode(text.replace("\n", "\r\n").encode("utf-8"))) == listing

    def test_trailing_newline(self, text, listing):
        assert parse(text + "\n").entries == listing.entries


# =========================================================================== page: chrome and header


class TestPageChrome:
    @pytest.mark.parametrize("layout", [block_page, line_page])
    def test_both_banners_dropped(self, layout):
        for banner in [
            "Get trending papers in your email inbox!",
            "Get trending papers in your email inbox once a day!",
        ]:
            text = layout(T1, A1, T2, A2, header=["new", banner, "Daily Papers", "Mar 11"])
            listing = parse(text)
            assert [e.title for e in listing.entries] == [T1, T2]
            assert listing.rejects == []

    @pytest.mark.parametrize("layout", [block_page, line_page])
    def test_subscribe_glued_to_first_title(self, layout):
        header = ["new", "Get trending papers in your email inbox!", "byAK and the research community", "Mar 11"]
        text = layout("SubscribeSome Title Here", A1, T2, A2, header=header)
        listing = parse(text)
        assert [e.title for e in listing.entries] == ["Some Title Here", T2]
        assert listing.entries[0].line_start == line_of(text, "SubscribeSome")
        assert listing.date_label == "Mar 11"
        assert listing.heading is None

    def test_title_starting_with_subscriber_is_not_unglued(self):
        text = line_page("Subscriber Churn Forecasting with Survival Forests", A1)
        assert parse(text).entries[0].title == "Subscriber Churn Forecasting with Survival Forests"

    def test_subscribe_glued_to_title_starting_with_digit(self):
        text = line_page("Subscribe3D Scene Graphs from Sparse Views", A1, header=["new", "Mar 11"])
        assert parse(text).entries[0].title == "3D Scene Graphs from Sparse Views"

    def test_chrome_is_case_insensitive(self):
        text = block_page(T1, A1, header=["NEW", "SUBSCRIBE", "BYAK AND THE RESEARCH COMMUNITY", "daily papers"])
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1]
        assert listing.heading == "daily papers"

    def test_no_header_at_all(self):
        listing = parse(f"{T1}\n\n{A1}")
        assert listing.heading is None
        assert listing.date_label is None
        assert spans(listing) == [(1, 3)]
        assert listing.entries[0].title == T1
        assert listing.entries[0].abstract == A1

    def test_leading_blank_lines(self):
        listing = parse(f"\n\n\n{T1}\n{A1}")
        assert spans(listing) == [(4, 5)]

    @pytest.mark.parametrize("label", ["March 11, 2024", "Mar 11", "May 9", "Feb 29", "Dec 1, 2023"])
    def test_date_label_kept_verbatim(self, label):
        listing = parse(block_page(T1, A1, header=["new", "Daily Papers", label]))
        assert listing.date_label == label
        assert dates.parse_label(label) is not None

    def test_invalid_date_label_becomes_body(self):
        # "Feb 30" is no date; it is read as the first title, with no abstract after it.
        text = block_page(T1, A1, header=["Daily Papers", "Feb 30"])
        listing = parse(text)
        assert listing.date_label is None
        assert [e.title for e in listing.entries] == [T1]
        assert [(r.line_start, r.raw) for r in listing.rejects] == [(3, "Feb 30")]

    def test_only_first_date_label_is_header(self):
        text = line_page(T1, A1, header=["Daily Papers", "Mar 11", "Mar 12"])
        listing = parse(text)
        assert listing.date_label == "Mar 11"
        assert listing.rejects
        assert listing.rejects[0].raw == "Mar 12"

    def test_date_label_line_with_entities_and_spaces(self):
        listing = parse(block_page(T1, A1, header=["  Mar   11  "]))
        assert listing.date_label == "Mar 11"


# =========================================================================== page: body edge cases


@pytest.mark.parametrize("layout", [block_page, line_page], ids=["blocks", "lines"])
class TestPageBody:
    def test_rank_and_spans(self, layout):
        text = layout(T1, A1, T2, A2, T3, A3)
        listing = parse(text)
        assert [e.rank for e in listing.entries] == [1, 2, 3]
        for entry, title in zip(listing.entries, [T1, T2, T3], strict=True):
            assert entry.title == title
            assert entry.line_start == line_of(text, title)
        for entry, abstract in zip(listing.entries, [A1, A2, A3], strict=True):
            assert entry.abstract == abstract
            assert entry.line_end == line_of(text, abstract[:40])

    def test_title_without_abstract_in_the_middle(self, layout):
        missing = "Diffusion Priors for Inverse Problems in Seismology"
        text = layout(T1, A1, missing, T2, A2, T3, A3)
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1, T2, T3]
        assert [e.abstract for e in listing.entries] == [A1, A2, A3]
        assert [e.rank for e in listing.entries] == [1, 2, 3]
        assert len(listing.rejects) == 1
        reject = listing.rejects[0]
        assert isinstance(reject, Reject)
        assert reject.line_start == reject.line_end == line_of(text, missing)
        assert reject.raw == missing
        assert "no abstract" in reject.reason
        assert listing.entries[1].line_start == line_of(text, T2)

    def test_abstract_without_title(self, layout):
        text = layout(T1, A1, A4, T2, A2)
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1, T2]
        assert [e.abstract for e in listing.entries] == [A1, A2]
        assert len(listing.rejects) == 1
        reject = listing.rejects[0]
        assert reject.line_start == reject.line_end == line_of(text, A4[:40])
        assert "no title" in reject.reason
        assert reject.raw == A4

    def test_abstract_without_title_first(self, layout):
        text = layout(A4, T1, A1)
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1]
        assert [(r.line_start, r.raw) for r in listing.rejects] == [(line_of(text, A4[:40]), A4)]

    def test_title_at_end_of_input(self, layout):
        last = "Open Problems in Tabular Foundation Models"
        text = layout(T1, A1, T2, A2, last)
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1, T2]
        assert len(listing.rejects) == 1
        reject = listing.rejects[0]
        assert reject.line_start == reject.line_end == len(text.split("\n"))
        assert reject.raw == last
        assert "end of input" in reject.reason

    def test_two_titles_without_abstracts_at_end(self, layout):
        text = layout(T1, A1, T2, A2, "Orphan Title One", "Orphan Title Two")
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1, T2]
        assert [r.raw for r in listing.rejects] == ["Orphan Title One", "Orphan Title Two"]

    def test_title_without_letters_or_digits(self, layout):
        text = layout(T1, A1, "* * *", T2, A2)
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1, T2]
        assert [(r.line_start, r.reason) for r in listing.rejects] == [
            (line_of(text, "* * *"), "markup, code or a key-value line, not a title or an abstract")
        ]

    def test_several_defects_at_once(self, layout):
        text = layout(A5, T1, A1, "Orphan Title One", T2, A2, A3, T3, A3, "Orphan Title Two")
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1, T2, T3]
        assert [e.rank for e in listing.entries] == [1, 2, 3]
        assert [r.raw for r in listing.rejects] == [A5, "Orphan Title One", A3, "Orphan Title Two"]
        assert [r.line_start for r in listing.rejects] == sorted(r.line_start for r in listing.rejects)

    def test_html_entities(self, layout):
        title = "Bits &amp; Bytes: Caf&eacute; Benchmarks for &lt;Tiny&gt; Models"
        abstract = A1.replace("dense attention", "&quot;dense&quot; attention")
        listing = parse(layout(title, abstract))
        assert listing.entries[0].title == "Bits & Bytes: Café Benchmarks for <Tiny> Models"
        assert '"dense" attention' in listing.entries[0].abstract

    def test_nfc_and_whitespace_in_fields(self, layout):
        title = "  Re\u0301sume\u0301   Parsing\twith   Layout Models  "
        listing = parse(layout(title, A2))
        assert listing.entries[0].title == "Résumé Parsing with Layout Models"

    def test_short_abstract_accepted_next_to_real_ones(self, layout):
        text = layout(T1, A1, T2, "Withdrawn by the authors.", T3, A3)
        listing = parse(text)
        assert [(e.title, e.abstract) for e in listing.entries] == [
            (T1, A1),
            (T2, "Withdrawn by the authors."),
            (T3, A3),
        ]

    def test_crlf(self, layout):
        text = layout(T1, A1, "Lonely Title", T2, A2)
        lf = parse(text)
        crlf = parse(decode(text.replace("\n", "\r\n").encode()))
        assert crlf == lf
        cr = parse(decode(text.replace("\n", "\r").encode()))
        assert cr == lf

    def test_reject_raw_is_verbatim(self, layout):
        orphan = "An   Orphan &amp; Title"
        text = layout(T1, A1, orphan, T2, A2)
        reject = parse(text).rejects[0]
        assert reject.raw == orphan


class TestBlockLayoutWrapping:
    def test_wrapped_title_and_abstract(self):
        title_lines = ["Sparse Routing Improves Long-Context", "Retrieval in Small Transformers"]
        words = A1.split()
        abstract_lines = [" ".join(words[i : i + 9]) for i in range(0, len(words), 9)]
        text = block_page("\n".join(title_lines), "\n".join(abstract_lines), T2, A2)
        listing = parse(text)
        first = listing.entries[0]
        assert first.title == "Sparse Routing Improves Long-Context Retrieval in Small Transformers"
        assert first.abstract == A1
        start = line_of(text, title_lines[0])
        assert (first.line_start, first.line_end) == (start, start + 1 + 1 + len(abstract_lines))
        second = listing.entries[1]
        assert second.line_start == first.line_end + 2

    def test_wrapped_lines_with_surrounding_spaces(self):
        cut = A1.index(" ", 200)
        text = block_page(T1, "  " + A1[:cut] + "   \n   " + A1[cut + 1 :] + "  ")
        assert parse(text).entries[0].abstract == A1

    def test_wrapped_orphan_title_reject_span(self):
        text = block_page(T1, A1, "A Title That Wraps\nOver Two Lines", T2, A2)
        listing = parse(text)
        reject = listing.rejects[0]
        start = line_of(text, "A Title That Wraps")
        assert (reject.line_start, reject.line_end) == (start, start + 1)
        assert reject.raw == "A Title That Wraps\nOver Two Lines"

    def test_whitespace_only_lines_separate_blocks(self):
        text = "\n \t \n".join([*HEADER, T1, A1, T2, A2])
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1, T2]
        assert spans(listing) == [(13, 15), (17, 19)]


# =========================================================================== page: not a listing


class TestPageNotAListing:
    README = (
        "# papers-tool\n"
        "\n"
        "A small command line tool.\n"
        "\n"
        "## Install\n"
        "\n"
        "pip install papers-tool\n"
        "\n"
        "## Usage\n"
        "\n"
        "papers ingest FILE\n"
    )
    PYTHON = (
        "import sys\n"
        "\n"
        "\n"
        "def main(argv):\n"
        "    for arg in argv:\n"
        "        print(arg)\n"
        "    return 0\n"
        "\n"
        "\n"
        'if __name__ == "__main__":\n'
        "    sys.exit(main(sys.argv[1:]))\n"
    )

    @pytest.mark.parametrize("text", [README, PYTHON], ids=["readme", "python"])
    def test_short_texts(self, text):
        assert detect_format(text) == "page"
        with pytest.raises(NotAListingError) as info:
            parse(text)
        assert info.value.line == 1

    @pytest.mark.parametrize(
        "text",
        ["", "\n\n", "   \n\t\n", "\n\n".join(HEADER), "\n".join(HEADER)],
        ids=["empty", "newlines", "whitespace", "header-blocks", "header-lines"],
    )
    def test_nothing_in_body(self, text):
        with pytest.raises(NotAListingError) as info:
            parse(text)
        assert info.value.line is None

    def test_only_short_pairs(self):
        text = line_page("Alpha Title", "Short line", "Beta Title", "Another short line")
        with pytest.raises(NotAListingError) as info:
            parse(text)
        assert info.value.line == len(HEADER) + 1

    def test_only_abstracts(self):
        with pytest.raises(NotAListingError):
            parse(block_page(A1, A2, A3))

    def test_only_titles(self):
        with pytest.raises(NotAListingError):
            parse(block_page(T1, T2, T3, T4, T5))

    def test_one_long_paragraph(self):
        with pytest.raises(NotAListingError):
            parse(" ".join(ABSTRACTS))

    def test_not_a_listing_is_a_client_error(self):
        with pytest.raises(InvalidInputError) as info:
            parse("hello")
        assert info.value.status == 400
        assert info.value.code == "BAD_USER_INPUT"


# =========================================================================== hf daily JSON


def hf_item(title, summary, arxiv_id="2403.01234", published="2024-03-11T04:00:00.000Z", **extra):
    paper = {"id": arxiv_id, "authors": [{"name": "Someone Else"}], "title": title}
    if summary is not None:
        paper["summary"] = summary
    item = {"paper": paper, "publishedAt": published, "title": title, "numComments": 0}
    item.update(extra)
    return item


class TestHfDailyFixture:
    @pytest.fixture
    def text(self) -> str:
        return fixture_text("hf_daily.json")

    @pytest.fixture
    def listing(self, text) -> ParsedListing:
        return parse(text)

    def test_detected(self, text):
        assert detect_format(text) == "hf_daily"

    def test_listing(self, listing):
        assert listing.kind == "hf_daily"
        assert listing.date_label is None
        assert listing.heading is None
        assert listing.rejects == []
        assert listing.listed_on == dt.date(2024, 3, 11)

    def test_entries(self, listing):
        assert [e.rank for e in listing.entries] == [1, 2, 3, 4]
        assert [e.title for e in listing.entries] == [
            "Event Cameras Meet Neural Radiance Fields Under Low Light",
            "Budgeted Tool Use for Language Agents",
            "Protein Pocket Generation with Equivariant Flow Matching",
            "Scaling Laws for Data Pruning in Speech Recognition",
        ]
        assert [e.arxiv_id for e in listing.entries] == ["2403.06217", "2403.05980", "2403.04411", "2403.06633"]

    def test_entry_day_is_outer_published_at(self, listing):
        assert [e.listed_on for e in listing.entries] == [
            dt.date(2024, 3, 11),
            dt.date(2024, 3, 11),
            dt.date(2024, 3, 10),
            dt.date(2024, 3, 11),
        ]

    def test_line_spans(self, listing, text):
        assert spans(listing) == [(2, 34), (35, 62), (63, 100), (101, 133)]
        lines = text.split("\n")
        for entry in listing.entries:
            assert lines[entry.line_start - 1].strip() == "{"
            assert lines[entry.line_end - 1].strip() in ("}", "},")

    def test_summary_normalized(self, listing, text):
        raw = json.loads(text)[0]["paper"]["summary"]
        assert "\n" in raw
        assert listing.entries[0].abstract == normalize(raw)
        assert "\n" not in listing.entries[0].abstract

    def test_authors_ignored(self, listing):
        for entry in listing.entries:
            assert "Okafor" not in entry.title + entry.abstract
        assert not hasattr(listing.entries[0], "authors")

    def test_compact_json_all_on_line_one(self, text, listing):
        compact = json.dumps(json.loads(text))
        parsed = parse(compact)
        assert [(e.title, e.abstract, e.arxiv_id, e.listed_on) for e in parsed.entries] == [
            (e.title, e.abstract, e.arxiv_id, e.listed_on) for e in listing.entries
        ]
        assert spans(parsed) == [(1, 1)] * 4

    def test_crlf(self, text, listing):
        assert parse(decode(text.replace("\n", "\r\n").encode())) == listing


class TestHfDaily:
    def test_missing_summary_is_rejected_with_lines(self):
        items = [
            hf_item(T1, A1, "2403.00001"),
            hf_item(T2, None, "2403.00002"),
            hf_item(T3, A3, "2403.00003"),
        ]
        text = json.dumps(items, indent=2)
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1, T3]
        assert [e.rank for e in listing.entries] == [1, 2]
        assert len(listing.rejects) == 1
        reject = listing.rejects[0]
        assert "summary" in reject.reason
        assert reject.line_start == listing.entries[0].line_end + 1
        assert reject.line_end == listing.entries[1].line_start - 1
        assert json.loads(reject.raw) == items[1]
        lines = text.split("\n")
        assert T2 in "\n".join(lines[reject.line_start - 1 : reject.line_end])

    @pytest.mark.parametrize(
        ("mutate", "reason_part"),
        [
            (lambda i: i["paper"].update(summary="   "), "summary"),
            (lambda i: i["paper"].update(summary=42), "summary"),
            (lambda i: i["paper"].pop("title"), "title"),
            (lambda i: i["paper"].update(title="?!"), "letters or digits"),
            (lambda i: i["paper"].update(id="not-an-id"), "paper.id"),
            (lambda i: i["paper"].update(id=2403.01234), "paper.id"),
            (lambda i: i.update(publishedAt="last tuesday"), "publishedAt"),
            (lambda i: i.update(publishedAt=20240311), "publishedAt"),
            (lambda i: i.update(paper="2403.01234"), "paper"),
            (lambda i: i.pop("paper"), "paper"),
        ],
    )
    def test_bad_items_rejected(self, mutate, reason_part):
        bad = hf_item(T2, A2)
        mutate(bad)
        text = json.dumps([hf_item(T1, A1), bad], indent=1)
        listing = parse(text)
        assert [e.title for e in listing.entries] == [T1]
        assert len(listing.rejects) == 1
        assert reason_part in listing.rejects[0].reason
        assert listing.rejects[0].line_start > listing.entries[0].line_end

    @pytest.mark.parametrize("item", [1, "text", None, [1, 2]])
    def test_non_object_items_rejected(self, item):
        listing = parse(json.dumps([hf_item(T1, A1), item]))
        assert len(listing.entries) == 1
        assert len(listing.rejects) == 1

    def test_missing_id_is_fine(self):
        item = hf_item(T1, A1)
        del item["paper"]["id"]
        assert parse(json.dumps([item])).entries[0].arxiv_id is None

    def test_legacy_and_prefixed_ids(self):
        items = [hf_item(T1, A1, "arXiv:2403.01234v3"), hf_item(T2, A2, "cs/0601001")]
        assert [e.arxiv_id for e in parse(json.dumps(items)).entries] == ["2403.01234", "cs/0601001"]

    def test_missing_published_at(self):
        item = hf_item(T1, A1)
        del item["publishedAt"]
        listing = parse(json.dumps([item]))
        assert listing.entries[0].listed_on is None
        assert listing.listed_on is None

    def test_inner_published_at_is_not_the_listing_day(self):
        item = hf_item(T1, A1, published="2024-03-11T04:00:00Z")
        item["paper"]["publishedAt"] = "2024-03-01T04:00:00Z"
        assert parse(json.dumps([item])).entries[0].listed_on == dt.date(2024, 3, 11)

    @pytest.mark.parametrize(
        ("stamp", "day"),
        [
            ("2024-03-11T23:59:59.999Z", dt.date(2024, 3, 11)),
            ("2024-03-11T01:00:00+05:00", dt.date(2024, 3, 10)),
            ("2024-03-10T22:00:00-03:00", dt.date(2024, 3, 11)),
            ("2024-03-11T12:00:00", dt.date(2024, 3, 11)),
            ("2024-03-11", dt.date(2024, 3, 11)),
        ],
    )
    def test_published_at_day_in_utc(self, stamp, day):
        assert parse(json.dumps([hf_item(T1, A1, published=stamp)])).entries[0].listed_on == day

    def test_listing_day_is_most_common(self):
        items = [
            hf_item(T1, A1, published="2024-03-08T10:00:00Z"),
            hf_item(T2, A2, published="2024-03-11T10:00:00Z"),
            hf_item(T3, A3, published="2024-03-11T11:00:00Z"),
            hf_item(T4, A4, published="2024-03-12T10:00:00Z"),
        ]
        assert parse(json.dumps(items)).listed_on == dt.date(2024, 3, 11)

    def test_listing_day_tie_takes_earliest(self):
        items = [
            hf_item(T1, A1, published="2024-03-12T10:00:00Z"),
            hf_item(T2, A2, published="2024-03-11T10:00:00Z"),
            hf_item(T3, A3, published="2024-03-12T11:00:00Z"),
            hf_item(T4, A4, published="2024-03-11T10:00:00Z"),
        ]
        assert parse(json.dumps(items)).listed_on == dt.date(2024, 3, 11)

    def test_listing_day_ignores_rejected_items(self):
        bad = hf_item(T3, None, published="2024-03-09T10:00:00Z")
        items = [hf_item(T1, A1, published="2024-03-11T10:00:00Z"), bad, dict(bad), dict(bad)]
        listing = parse(json.dumps(items))
        assert listing.listed_on == dt.date(2024, 3, 11)
        assert len(listing.rejects) == 3

    def test_html_entities_and_whitespace(self):
        listing = parse(json.dumps([hf_item("Bits &amp; Bytes:\n  Tiny   Models", "  " + A1 + "\n")]))
        assert listing.entries[0].title == "Bits & Bytes: Tiny Models"
        assert listing.entries[0].abstract == A1

    @pytest.mark.parametrize("text", ["[]", "  [ \n ]  \n", "\n[\n]\n"])
    def test_empty_array(self, text):
        with pytest.raises(NotAListingError) as info:
            parse(text)
        assert info.value.line == 1

    def test_all_items_bad(self):
        text = json.dumps([hf_item(T1, None), hf_item(T2, None)], indent=2)
        with pytest.raises(NotAListingError) as info:
            parse(text)
        assert info.value.line == 2
        assert "summary" in str(info.value)

    def test_missing_comma_between_items(self):
        items = [hf_item(T1, A1), hf_item(T2, A2)]
        text = json.dumps(items, indent=2)
        lines = text.split("\n")
        cut = lines.index("  },")
        lines[cut] = "  }"
        with pytest.raises(NotAListingError) as info:
            parse("\n".join(lines))
        assert info.value.line == cut + 2

    def test_malformed_inside_item(self):
        text = json.dumps([hf_item(T1, A1), hf_item(T2, A2)], indent=2)
        lines = text.split("\n")
        target = next(i for i, line in enumerate(lines) if T2 in line and '"title"' in line)
        lines[target] = lines[target].replace('": "', '" "', 1)
        with pytest.raises(NotAListingError) as info:
            parse("\n".join(lines))
        assert info.value.line == target + 1
        assert "malformed JSON" in str(info.value)

    def test_truncated(self):
        text = json.dumps([hf_item(T1, A1), hf_item(T2, A2)], indent=2)
        with pytest.raises(NotAListingError) as info:
            parse(text[: len(text) // 2])
        assert isinstance(info.value.line, int)
        assert info.value.line >= 1

    def test_unterminated_array(self):
        text = json.dumps([hf_item(T1, A1)], indent=2)[:-1]
        with pytest.raises(NotAListingError):
            parse(text)

    def test_trailing_comma(self):
        with pytest.raises(NotAListingError):
            parse(json.dumps([hf_item(T1, A1)])[:-1] + ",]")

    def test_text_after_array(self):
        text = json.dumps([hf_item(T1, A1)], indent=2) + " garbage\n"
        with pytest.raises(NotAListingError) as info:
            parse(text)
        assert "after the JSON array" in str(info.value)
        assert info.value.line == text.count("\n")

    def test_text_after_array_line_number(self):
        text = json.dumps([hf_item(T1, A1)], indent=2) + "\n\ngarbage\n"
        with pytest.raises(NotAListingError) as info:
            parse(text)
        assert info.value.line == len(text.split("\n")) - 1

    def test_whitespace_after_array_is_fine(self):
        assert len(parse(json.dumps([hf_item(T1, A1)]) + "\n\n  \n").entries) == 1

    def test_object_given_as_hf_daily(self):
        with pytest.raises(NotAListingError) as info:
            parse(json.dumps(hf_item(T1, A1)), "hf_daily")
        assert info.value.line == 1

    def test_huge_integer_is_not_a_crash(self):
        text = "[" + json.dumps(hf_item(T1, A1))[:-1] + ', "upvotes": ' + "9" * 5000 + "}]"
        with contextlib.suppress(NotAListingError):
            parse(text)

    def test_deep_nesting_is_not_a_crash(self):
        with contextlib.suppress(NotAListingError):
            parse("[" * 100_000)


# =========================================================================== JSON Lines


def jl(**fields) -> str:
    return json.dumps(fields)


class TestJsonlFixture:
    @pytest.fixture
    def text(self) -> str:
        return fixture_text("bulk.jsonl")

    @pytest.fixture
    def listing(self, text) -> ParsedListing:
        return parse(text)

    def test_detected(self, text):
        assert detect_format(text) == "jsonl"

    def test_listing(self, listing):
        assert listing.kind == "jsonl"
        assert listing.rejects == []
        assert listing.date_label is None
        assert listing.heading is None
        assert listing.listed_on == dt.date(2024, 2, 20)

    def test_entries(self, listing, text):
        rows = [json.loads(line) for line in text.splitlines()]
        assert [e.title for e in listing.entries] == [r["title"] for r in rows]
        assert [e.abstract for e in listing.entries] == [r["abstract"] for r in rows]
        assert [e.rank for e in listing.entries] == [1, 2, 3, 4]
        assert spans(listing) == [(1, 1), (2, 2), (3, 3), (4, 4)]
        assert [e.arxiv_id for e in listing.entries] == ["2402.11873", "2402.09001", None, None]
        assert [e.listed_on for e in listing.entries] == [
            dt.date(2024, 2, 20),
            None,
            dt.date(2024, 2, 20),
            dt.date(2024, 2, 19),
        ]


class TestJsonl:
    def test_bad_lines_become_rejects(self):
        lines = [
            jl(title=T1, abstract=A1),  # 1
            "{not json",  # 2
            jl(abstract=A2),  # 3 missing title
            "",  # 4 blank
            jl(title=T2, abstract=A2, arxiv_id="not-an-id"),  # 5
            jl(title=T3, abstract=A3, listed_on="2024-02-30"),  # 6
            jl(title=T3, abstract=A3, listed_on="yesterday"),  # 7
            "[1, 2, 3]",  # 8 not an object
            jl(title=T4, abstract=A4, arxiv_id="2402.00004", listed_on="2024-02-21"),  # 9
            jl(title="", abstract=A5),  # 10
            jl(title=T5),  # 11 missing abstract
            jl(title=T5, abstract=A5, arxiv_id=12345),  # 12
            jl(title="...", abstract=A5),  # 13
            jl(title=T5, abstract=A5, listed_on=20240221),  # 14
            jl(title=T5, abstract=A5),  # 15
        ]
        listing = parse("\n".join(lines) + "\n", "jsonl")
        assert [(e.rank, e.title, e.line_start, e.line_end) for e in listing.entries] == [
            (1, T1, 1, 1),
            (2, T4, 9, 9),
            (3, T5, 15, 15),
        ]
        rejects = {r.line_start: r for r in listing.rejects}
        assert sorted(rejects) == [2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 14]
        for number, reject in rejects.items():
            assert reject.line_end == number
            assert reject.raw == lines[number - 1]
        assert "malformed JSON" in rejects[2].reason
        assert "title" in rejects[3].reason
        assert "arxiv_id" in rejects[5].reason
        assert "listed_on" in rejects[6].reason
        assert "listed_on" in rejects[7].reason
        assert "object" in rejects[8].reason
        assert "title" in rejects[10].reason
        assert "abstract" in rejects[11].reason
        assert "arxiv_id" in rejects[12].reason
        assert "letters or digits" in rejects[13].reason
        assert "listed_on" in rejects[14].reason

    def test_all_bad_raises(self):
        text = "\n".join(["", "{oops", jl(title=T1), jl(abstract=A1)])
        with pytest.raises(NotAListingError) as info:
            parse(text, "jsonl")
        assert info.value.line == 2
        assert "malformed JSON" in str(info.value)

    @pytest.mark.parametrize("text", ["{}", "{}\n{}\n", jl(title=T1, abstract=A1, arxiv_id="garbage")])
    def test_no_usable_entries(self, text):
        with pytest.raises(NotAListingError) as info:
            parse(text)
        assert info.value.line == 1

    @pytest.mark.parametrize("text", ["", "\n\n  \n"])
    def test_empty_jsonl(self, text):
        with pytest.raises(NotAListingError) as info:
            parse(text, "jsonl")
        assert info.value.line == 1

    def test_ids_and_dates_normalized(self):
        text = "\n".join(
            [
                jl(title=T1, abstract=A1, arxiv_id="arXiv:2402.11873v4", listed_on="2024-02-20T23:30:00-02:00"),
                jl(title=T2, abstract=A2, arxiv_id="cs/0601001v1", listed_on="2024-02-20"),
                jl(title=T3, abstract=A3, arxiv_id="", listed_on=None),
                jl(title=T4, abstract=A4, arxiv_id=None),
            ]
        )
        listing = parse(text)
        assert [e.arxiv_id for e in listing.entries] == ["2402.11873", "cs/0601001", None, None]
        assert [e.listed_on for e in listing.entries] == [dt.date(2024, 2, 21), dt.date(2024, 2, 20), None, None]

    def test_listing_day_most_common(self):
        text = "\n".join(
            [
                jl(title=T1, abstract=A1, listed_on="2024-02-19"),
                jl(title=T2, abstract=A2, listed_on="2024-02-20"),
                jl(title=T3, abstract=A3, listed_on="2024-02-20"),
                jl(title=T4, abstract=A4),
                jl(title=T5, abstract=A5),
            ]
        )
        assert parse(text).listed_on == dt.date(2024, 2, 20)

    def test_listing_day_none_when_no_dates(self):
        assert parse(jl(title=T1, abstract=A1)).listed_on is None

    def test_text_normalized(self):
        listing = parse(jl(title="  Bits &amp; Bytes\n\tfor  Tiny Models ", abstract="Re\u0301sume\u0301 " + A1))
        assert listing.entries[0].title == "Bits & Bytes for Tiny Models"
        assert listing.entries[0].abstract == "Résumé " + A1

    def test_unknown_keys_ignored(self):
        listing = parse(jl(title=T1, abstract=A1, authors=["X"], score=3.5, extra={"a": 1}))
        assert len(listing.entries) == 1

    def test_crlf_without_decoding(self):
        text = "\r\n".join([jl(title=T1, abstract=A1), "{bad", jl(title=T2, abstract=A2)]) + "\r\n"
        listing = parse(text, "jsonl")
        assert [e.line_start for e in listing.entries] == [1, 3]
        assert [r.line_start for r in listing.rejects] == [2]

    def test_pretty_printed_object_is_one_document(self):
        # The issue-13 bug: a multi-line JSON document was read as JSON Lines and refused as malformed.
        text = json.dumps({"title": T1, "abstract": A1}, indent=2)
        assert detect_format(text) == "json"
        listing = parse(text)
        assert [(e.title, e.line_start, e.line_end) for e in listing.entries] == [(T1, 1, 4)]

    def test_huge_integer_line_is_rejected(self):
        text = "\n".join([jl(title=T1, abstract=A1), '{"title": "x", "n": ' + "9" * 5000 + "}"])
        listing = parse(text, "jsonl")
        assert [r.line_start for r in listing.rejects] == [2]

    def test_deeply_nested_line_is_rejected(self):
        text = "\n".join([jl(title=T1, abstract=A1), "[" * 100_000 + "]" * 100_000])
        listing = parse(text, "jsonl")
        assert [r.line_start for r in listing.rejects] == [2]


# =========================================================================== dispatch


class TestDispatch:
    def test_formats(self):
        assert set(FORMATS) == {"page", "hf_daily", "jsonl", "json", "atom", "rss", "html"}

    @pytest.mark.parametrize(
        ("text", "fmt"),
        [
            ("[]", "json"),
            ('{"title": 1}', "jsonl"),
            ('\n\n  {"a": 1}\n{"b": 2}', "jsonl"),
            ("Daily Papers\n\nMar 11", "page"),
            ("", "page"),
            ("title [with] {braces}", "page"),
        ],
    )
    def test_detect_format(self, text, fmt):
        assert detect_format(text) == fmt

    def test_format_override_jsonl(self):
        text = fixture_text("bulk.jsonl")
        assert parse(text, "jsonl") == parse(text)

    def test_format_override_page_on_jsonl_text(self):
        # Read as a page, JSON lines are single-field lines; long ones look like abstracts.
        text = fixture_text("bulk.jsonl")
        with pytest.raises(NotAListingError):
            parse(text, "page")

    def test_jsonl_override_on_hf_payload(self):
        with pytest.raises(NotAListingError) as info:
            parse(fixture_text("hf_daily.json"), "jsonl")
        assert info.value.line == 1

    def test_single_line_array_as_jsonl(self):
        with pytest.raises(NotAListingError) as info:
            parse(json.dumps([hf_item(T1, A1)]), "jsonl")
        assert "object" in str(info.value)

    def test_override_page_on_page(self):
        text = fixture_text("page_blocks.txt")
        assert parse(text, "page") == parse(text)

    def test_none_format_means_detect(self):
        text = fixture_text("hf_daily.json")
        assert parse(text, None).kind == "hf_daily"

    @pytest.mark.parametrize("fmt", ["csv", "PAGE", "JSON", "hf-daily", " jsonl"])
    def test_unknown_format(self, fmt):
        with pytest.raises(NotAListingError) as info:
            parse(fixture_text("bulk.jsonl"), fmt)
        assert repr(fmt) in str(info.value)
        for known in FORMATS:
            assert known in str(info.value)
        assert info.value.line is None


# =========================================================================== properties

CHROME_LINES = [
    "new",
    "Subscribe",
    "Daily Papers",
    "byAK and the research community",
    "Get trending papers in your email inbox!",
    "Get trending papers in your email inbox once a day!",
    "Mar 11",
]
LINE_POOL = [
    "",
    " ",
    *CHROME_LINES,
    *TITLES,
    *ABSTRACTS,
    "SubscribeSome Title Here",
    "Feb 29",
    "Feb 30",
    "* * *",
    "&amp; &lt;",
    "[",
    "]",
    "{",
    "}",
    ",",
    jl(title=T1, abstract=A1),
    jl(title=T2),
    json.dumps(hf_item(T1, A1)),
    '{"paper": {"title": "x", "summary": "y"}, "publishedAt": "2024-13-45"}',
    "\r",
    "\x0b\x0c",
]


def _check_listing(listing: ParsedListing, text: str) -> None:
    assert isinstance(listing, ParsedListing)
    assert listing.kind in FORMATS
    n_lines = len(text.split("\n"))
    assert [e.rank for e in listing.entries] == list(range(1, len(listing.entries) + 1))
    assert listing.entries, "a listing has at least one entry"
    spans: list[ParsedEntry | Reject] = [*listing.entries, *listing.rejects]
    for item in spans:
        assert 1 <= item.line_start <= item.line_end <= n_lines
    for entry in listing.entries:
        assert isinstance(entry, ParsedEntry)
        assert entry.title
        assert entry.abstract
        assert entry.title == normalize(entry.title)


def _is_header_line(line: str) -> bool:
    line = normalize(line)
    folded = line.casefold()
    return (
        not line
        or folded in {"new", "subscribe", "byak and the research community", "daily papers"}
        or folded.startswith("get trending papers in your email inbox")
        or dates.parse_label(line) is not None
    )


def _check_page_accounting(listing: ParsedListing, text: str) -> None:
    """Every non-blank line is in exactly one entry or reject span, or is header chrome before them."""
    lines = text.split("\n")
    owner: dict[int, object] = {}
    spans: list[ParsedEntry | Reject] = [*listing.entries, *listing.rejects]
    for item in spans:
        for number in range(item.line_start, item.line_end + 1):
            assert number not in owner, f"line {number} in two spans"
            owner[number] = item
    first = min(owner) if owner else len(lines) + 1
    for number, line in enumerate(lines, start=1):
        if not line.strip() or number in owner:
            continue
        assert number < first, f"line {number} {line!r} is unaccounted for"
        assert _is_header_line(line), f"line {number} {line!r} is unaccounted for"
    # Entries and rejects appear in input order and entries keep their ranks in that order.
    assert [e.line_start for e in listing.entries] == sorted(e.line_start for e in listing.entries)


def _parse_or_not_a_listing(text: str, fmt: str | None = None) -> ParsedListing | None:
    try:
        listing = parse(text, fmt)
    except NotAListingError as exc:
        line = exc.line
    else:
        _check_listing(listing, text)
        return listing
    assert line is None or isinstance(line, int)
    return None


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(st.text(), st.sampled_from([None, "page", "hf_daily", "jsonl"]))
def test_arbitrary_text_parses_or_is_not_a_listing(text, fmt):
    _parse_or_not_a_listing(text, fmt)


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(LINE_POOL), max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_arbitrary_line_soup_parses_or_is_not_a_listing(lines, sep):
    text = sep.join(lines)
    listing = _parse_or_not_a_listing(text)
    if listing is not None and listing.kind == "page" and sep == "\n":
        _check_page_accounting(listing, text)


def _mutations(lines: list[str]):
    """Strategy: a valid page's lines with some dropped, some duplicated and some moved."""
    n = len(lines)
    op = st.one_of(
        st.tuples(st.just("drop"), st.integers(0, n - 1)),
        st.tuples(st.just("dup"), st.integers(0, n - 1)),
        st.tuples(st.just("move"), st.integers(0, n - 1), st.integers(0, n - 1)),
        st.tuples(st.just("swap"), st.integers(0, n - 1), st.integers(0, n - 1)),
    )

    def apply(ops):
        out = list(lines)
        for o in ops:
            if not out:
                break
            i = o[1] % len(out)
            if o[0] == "drop":
                del out[i]
            elif o[0] == "dup":
                out.insert(i, out[i])
            elif o[0] == "move":
                out.insert(o[2] % len(out), out.pop(i))
            else:
                j = o[2] % len(out)
                out[i], out[j] = out[j], out[i]
        return out

    return st.one_of(
        st.lists(op, min_size=1, max_size=12).map(apply),
        st.permutations(lines),
    )


def _page_lines(name: str) -> list[str]:
    return fixture_text(name).rstrip("\n").split("\n")


@pytest.mark.parametrize("name", ["page_blocks.txt", "page_lines.txt"])
def test_valid_pages_account_for_every_line(name):
    text = "\n".join(_page_lines(name))
    listing = parse(text)
    _check_listing(listing, text)
    _check_page_accounting(listing, text)
    assert listing.rejects == []


@PROPERTY_SETTINGS
@given(_mutations(_page_lines("page_blocks.txt")))
def test_mutated_block_page(lines):
    text = "\n".join(lines)
    listing = _parse_or_not_a_listing(text)
    if listing is not None:
        assert listing.kind == "page"
        _check_page_accounting(listing, text)


@PROPERTY_SETTINGS
@given(_mutations(_page_lines("page_lines.txt")))
def test_mutated_line_page(lines):
    text = "\n".join(lines)
    listing = _parse_or_not_a_listing(text)
    if listing is not None:
        assert listing.kind == "page"
        _check_page_accounting(listing, text)


@PROPERTY_SETTINGS
@given(
    st.lists(st.sampled_from(list(range(5))), min_size=1, max_size=8),
    st.sets(st.integers(0, 15), max_size=4),
    st.sampled_from([block_page, line_page]),
)
def test_generated_pages_with_dropped_fields(order, dropped, layout):
    """Pages built from known entries with some fields removed: every surviving complete pair is found."""
    fields: list[str] = []
    for k in order:
        fields += [TITLES[k], ABSTRACTS[k]]
    kept = [f for i, f in enumerate(fields) if i not in dropped]
    text = layout(*kept)
    listing = _parse_or_not_a_listing(text)
    pairs = [(kept[i], kept[i + 1]) for i in range(len(kept) - 1) if kept[i] in TITLES and kept[i + 1] in ABSTRACTS]
    if not pairs or len(kept) - 2 * len(pairs) > MOSTLY_NOT_PAIRS * len(pairs):
        assert listing is None  # no pair, or mostly not pairs: not a listing
        return
    assert listing is not None
    _check_page_accounting(listing, text)
    found = [(e.title, e.abstract) for e in listing.entries]
    # Every title directly followed by an abstract is found, in order; nothing else has a real abstract.
    assert [pair for pair in found if pair in pairs or looks_like_abstract(pair[1])] == pairs
    # Each field is used exactly once: two per entry, one per reject.
    assert 2 * len(listing.entries) + len(listing.rejects) == len(kept)


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.one_of(
            st.builds(lambda k: jl(title=TITLES[k], abstract=ABSTRACTS[k]), st.integers(0, 4)),
            st.text(max_size=40),
            st.builds(
                json.dumps,
                st.dictionaries(
                    st.sampled_from(["title", "abstract", "arxiv_id", "listed_on"]),
                    st.one_of(st.none(), st.text(max_size=20), st.integers()),
                ),
            ),
        ),
        max_size=12,
    )
)
def test_jsonl_lines_each_entry_or_reject(lines):
    text = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines)
    listing = _parse_or_not_a_listing(text, "jsonl")
    if listing is None:
        return
    numbered = [n for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    covered = sorted([e.line_start for e in listing.entries] + [r.line_start for r in listing.rejects])
    assert covered == numbered


def test_accounting_check_detects_a_lost_line():
    """The line-accounting helper itself must notice a body line that no span covers."""
    text = line_page(T1, A1, "Orphan Title", T2, A2)
    listing = parse(text)
    _check_page_accounting(listing, text)
    lost = ParsedListing(listing.kind, listing.entries, [], listing.date_label, None, listing.heading)
    with pytest.raises(AssertionError, match="unaccounted"):
        _check_page_accounting(lost, text)
