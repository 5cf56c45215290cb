"""Detection over the whole document, the generic JSON rule on several layouts, --map, and one listing per day."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ingest.parsers import detect_format, parse, parse_listings
from schema.errors import NotAListingError
from schema.ingest import FieldMap
from tests.unit.test_parsers import A1, A2, A3, A4, T1, T2, T3, T4, fixture_text

D11, D12 = dt.date(2024, 3, 11), dt.date(2024, 3, 12)


def lines(*items: dict) -> str:
    return "\n".join(json.dumps(item) for item in items) + "\n"


# =========================================================================== detection


class TestDetection:
    def test_pretty_printed_archive_day_is_one_document(self):
        assert detect_format(fixture_text("hf_archive.json")) == "json"

    @pytest.mark.parametrize(
        ("text", "fmt"),
        [
            (json.dumps([{"title": T1, "abstract": A1}], indent=2), "json"),
            (json.dumps({"papers": []}), "json"),  # one line, but an object that is no item: still one document
            (json.dumps({"title": T1, "abstract": A1}), "jsonl"),  # one line, one item
            (lines({"title": T1}, {"title": T2}), "jsonl"),
            (json.dumps([{"paper": {"title": T1}}]), "hf_daily"),
            ("[1, 2]\n[3]\n", "jsonl"),  # every line a JSON value
        ],
    )
    def test_formats(self, text, fmt):
        assert detect_format(text) == fmt

    def test_jsonl_with_a_broken_line_says_so(self):
        text = lines({"title": T1, "abstract": A1}) + "{not json\n" + lines({"title": T2, "abstract": A2})
        with pytest.raises(NotAListingError) as info:
            detect_format(text)
        assert info.value.line == 2
        assert "neither one JSON document nor JSON Lines: line 2 is not a JSON value" in str(info.value)
        assert "--format jsonl" in str(info.value)
        assert len(parse(text, "jsonl").rejects) == 1  # the override still reads the good lines

    def test_malformed_document_names_its_line_not_a_json_lines_error(self):
        text = json.dumps({"date": "2024-03-11", "papers": [{"title": T1, "abstract": A1}]}, indent=2)
        broken = text.replace('"abstract":', '"abstract"', 1)
        with pytest.raises(NotAListingError) as info:
            parse(broken)
        assert str(info.value) == "malformed JSON document: Expecting ':' delimiter"
        assert info.value.line == broken.split("\n").index(next(x for x in broken.split("\n") if '"abstract"' in x)) + 1

    def test_text_after_a_document(self):
        with pytest.raises(NotAListingError) as info:
            parse(json.dumps({"papers": []}, indent=2) + "\ntrailing words\n")
        assert "after the JSON" in str(info.value)


# =========================================================================== the generic rule


class TestGenericRule:
    def test_archive_day_object(self):
        listing = parse(fixture_text("hf_archive.json"))
        assert listing.kind == "json"
        assert [(e.rank, e.title, e.arxiv_id, e.listed_on) for e in listing.entries] == [
            (1, T1, "2403.06001", D11),
            (2, T2, "2403.06002", D11),
            (3, T3, "2403.06003", D11),  # version stripped
        ]
        assert listing.entries[2].abstract == A3  # wrapped, padded text normalized
        assert listing.listed_on == D11
        text = fixture_text("hf_archive.json").split("\n")
        first = listing.entries[0]
        assert text[first.line_start - 1].strip() == "{"
        assert text[first.line_end - 1].strip() == "},"

    def test_nested_one_level_with_summary_and_published_at(self):
        items = [
            {"paper": {"id": "cond-mat/0412498v3", "title": T1, "summary": A1}, "publishedAt": "2024-03-11T18:00:00Z"},
            {"paper": {"id": "not-arxiv", "title": T2, "summary": A2}, "publishedAt": "2024-03-11T01:00:00+00:00"},
        ]
        listing = parse(json.dumps({"results": items}))
        assert [(e.title, e.arxiv_id, e.listed_on) for e in listing.entries] == [
            (T1, "cond-mat/0412498", D11),
            (T2, None, D11),  # an `id` that is no arXiv id is not one
        ]

    def test_description_and_arxiv_id_camel_case(self):
        listing = parse(json.dumps([{"title": T1, "description": A1, "arxivId": "arXiv:2403.00001v1"}]))
        assert (listing.entries[0].abstract, listing.entries[0].arxiv_id) == (A1, "2403.00001")

    def test_named_arxiv_field_that_is_no_id_is_a_reject(self):
        listing = parse(json.dumps([{"title": T1, "abstract": A1}, {"title": T2, "abstract": A2, "arxiv_id": "x"}]))
        assert [r.reason for r in listing.rejects] == ["'arxiv_id' is not an arXiv identifier: 'x'"]

    def test_first_array_holding_titled_objects_is_the_list(self):
        doc = {"tags": [{"name": "nlp"}], "meta": {"count": 2}, "items": [{"title": T1, "abstract": A1}]}
        assert [e.title for e in parse(json.dumps(doc)).entries] == [T1]

    def test_document_date_and_item_date(self):
        doc = {
            "date": "2024-03-11",
            "papers": [{"title": T1, "abstract": A1}, {"title": T2, "abstract": A2, "listed_on": "2024-03-12"}],
        }
        assert [e.listed_on for e in parse(json.dumps(doc)).entries] == [D11, D12]

    def test_rfc_2822_dates(self):
        listing = parse(json.dumps([{"title": T1, "abstract": A1, "published": "Mon, 11 Mar 2024 20:00:00 -0400"}]))
        assert listing.entries[0].listed_on == D12  # the day in UTC

    def test_missing_fields_name_what_was_looked_for(self):
        listing = parse(json.dumps([{"title": T1, "abstract": A1}, {"title": T2}, {"headline": T3, "abstract": A3}]))
        assert [r.reason for r in listing.rejects] == [
            "no abstract (looked for 'abstract', 'summary', 'description')",
            "no title (looked for 'title')",
        ]


class TestNotAListing:
    @pytest.mark.parametrize(
        ("doc", "message"),
        [
            ({"name": "tool", "version": "1.0", "scripts": {"test": "pytest"}}, "a JSON object with no list of papers"),
            (["a", "b"], "a JSON array of strings, not of paper objects"),
            ([], "an empty JSON array"),
            ([[1, 2]], "a JSON array of arrays, not of paper objects"),
            ({"date": "yesterday", "papers": [{"title": T1, "abstract": A1}]}, "the document's 'date'"),
        ],
    )
    def test_says_what_was_found(self, doc, message):
        with pytest.raises(NotAListingError) as info:
            parse(json.dumps(doc, indent=2))
        assert message in str(info.value)

    def test_issue_tracker_export_is_not_a_listing(self):
        # Titles with short descriptions: the plausibility rule refuses them as it refuses a README.
        issues = [{"title": f"Crash on start {i}", "description": "Steps: run it. It crashes."} for i in range(5)]
        with pytest.raises(NotAListingError) as info:
            parse(json.dumps(issues, indent=2))
        assert "no abstract reads as one" in str(info.value)

    def test_mostly_unreadable_items_are_not_a_listing(self):
        items = [{"title": T1, "abstract": A1}] + [{"x": i} for i in range(3)]
        with pytest.raises(NotAListingError) as info:
            parse(json.dumps(items))
        assert "3 items are not title and abstract pairs against 1" in str(info.value)


# =========================================================================== --map


class TestFieldMap:
    def test_parse_spec(self):
        spec = FieldMap.parse("items=data.rows, title=meta.name,abstract=text,arxiv_id=ref.arxiv,date=day")
        assert spec == FieldMap(("data", "rows"), ("meta", "name"), ("text",), ("ref", "arxiv"), ("day",))

    @pytest.mark.parametrize("spec", ["", "title", "author=name", "title=a..b", "title=a,title=b"])
    def test_bad_specs(self, spec):
        with pytest.raises(ValueError, match="--map"):
            FieldMap.parse(spec)

    def test_layout_the_rule_cannot_guess(self):
        doc = {
            "data": {
                "rows": [{"meta": {"name": T1}, "text": A1, "ref": {"arxiv": "2403.00009v2"}, "day": "2024-03-12"}]
            }
        }
        with pytest.raises(NotAListingError, match="no list of papers"):
            parse(json.dumps(doc))
        fields = FieldMap.parse("items=data.rows,title=meta.name,abstract=text,arxiv_id=ref.arxiv,date=day")
        (entry,) = parse(json.dumps(doc, indent=1), fields=fields).entries
        assert (entry.title, entry.abstract, entry.arxiv_id, entry.listed_on) == (T1, A1, "2403.00009", D12)

    def test_map_applies_to_json_lines_and_names_missing_paths(self):
        text = lines({"name": T1, "body": A1}, {"name": T2})
        listing = parse(text, fields=FieldMap.parse("title=name,abstract=body"))
        assert [e.title for e in listing.entries] == [T1]
        assert [r.reason for r in listing.rejects] == ["'body' is missing or not a non-empty string"]

    def test_map_overrides_the_daily_papers_layout(self):
        text = json.dumps([{"paper": {"title": T1, "summary": "short"}, "ai_summary": A1}])
        listing = parse(text, fields=FieldMap.parse("title=paper.title,abstract=ai_summary"))
        assert listing.entries[0].abstract == A1

    def test_map_on_a_page_is_refused(self):
        with pytest.raises(NotAListingError, match="--map applies to JSON input"):
            parse(f"{T1}\n\n{A1}\n", fields=FieldMap.parse("title=t"))

    def test_items_path_that_is_not_an_array(self):
        with pytest.raises(NotAListingError, match="no JSON array there"):
            parse(json.dumps({"data": {}}), fields=FieldMap.parse("items=data"))


# =========================================================================== one listing per day


class TestOneListingPerDay:
    def test_json_lines_over_several_days(self):
        text = lines(
            {"title": T1, "abstract": A1, "listed_on": "2024-03-12"},
            {"title": T2, "abstract": A2, "listed_on": "2024-03-11"},
            {"title": "", "abstract": A3},  # a reject: goes with the entry before it
            {"title": T3, "abstract": A3, "listed_on": "2024-03-12"},
            {"title": T4, "abstract": A4},  # no day
        )
        parts = parse_listings(text)
        assert [(p.listed_on, [e.title for e in p.entries], len(p.rejects)) for p in parts] == [
            (D11, [T2], 1),
            (D12, [T1, T3], 0),
            (None, [T4], 0),
        ]
        day12 = parts[1]
        assert day12.raw == text.split("\n")[0] + "\n" + text.split("\n")[3] + "\n"
        assert [(e.rank, e.line_start, e.line_end, e.listed_on) for e in day12.entries] == [
            (1, 1, 1, D12),
            (2, 2, 2, D12),
        ]
        assert parts[0].rejects[0].line_start == 2
        assert parts[0].raw is not None
        assert parts[0].raw.split("\n")[1] == parts[0].rejects[0].raw

    def test_pretty_printed_items_keep_their_lines(self):
        items = [
            {"title": T1, "abstract": A1, "date": "2024-03-11"},
            {"title": T2, "abstract": A2, "date": "2024-03-12"},
            {"title": T3, "abstract": A3, "date": "2024-03-11"},
        ]
        parts = parse_listings(json.dumps(items, indent=2))
        assert [len(p.entries) for p in parts] == [2, 1]
        first = parts[0]
        assert first.raw is not None
        raw_lines = first.raw.split("\n")
        for entry in first.entries:
            item = json.loads("\n".join(raw_lines[entry.line_start - 1 : entry.line_end]))
            assert item["title"] == entry.title

    def test_one_day_is_one_listing_of_the_whole_input(self):
        (listing,) = parse_listings(fixture_text("hf_archive.json"))
        assert listing.raw is None  # stored as the input's own bytes

    def test_pages_never_split(self):
        (listing,) = parse_listings(fixture_text("page_blocks.txt"))
        assert listing.raw is None
